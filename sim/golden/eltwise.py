"""Golden element-wise arithmetic, in numpy: the float32 evaluation of onnxruntime's
QLinearAdd kernel (MLAS, x86-64 with AVX2), once its constants are known.

The ONNX compiler derives the constants from the tensors' scales and zero points
(:mod:`rvnpu.compiler.onnx.layers.add`); the firmware (``rvnpu_qlinear_add``) and the engine's
post-processing unit (QLINEAR_ADD) take them as they are, and both are checked against this.
"""

import numpy as np


__all__ = ["fma32", "qlinear_add_scaled"]


def fma32(a, b, c):
    """float32 fused multiply-add, rounded once. The float64 product of two float32 values is
    exact, and so is its float64 sum with ``c`` whenever their exponents span at most 53 bits,
    which holds for the small integers, scale ratios and zero-point terms of QLinearAdd."""
    f64 = np.float64
    return (np.asarray(a, f64) * np.asarray(b, f64) + np.asarray(c, f64)).astype(np.float32)


def qlinear_add_scaled(a, b, ratio_a, ratio_b, fixed, clamp):
    """``fma(a, ratio_a, fma(b, ratio_b, fixed))`` in float32, rounded half to even and
    saturated to ``clamp`` (a ``(lo, hi)`` pair); the constants are float32 values."""
    f32 = np.float32
    v = fma32(np.asarray(a, f32), f32(ratio_a), fma32(np.asarray(b, f32), f32(ratio_b),
                                                         f32(fixed)))
    return np.clip(np.rint(v.astype(np.float64)).astype(np.int64), *clamp)
