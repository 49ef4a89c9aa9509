"""QLinearAdd (and a QDQ Add), with ``rvnpu_qlinear_add`` of ``rvnpu_eltwise.h``, and the
float32 arithmetic of onnxruntime's kernel that both follow."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rvnpu.compiler.onnx.emit import CTYPE, c_array, c_float
from rvnpu.compiler.onnx.layers.base import Layer
from rvnpu.sim.golden.eltwise import fma32, qlinear_add_scaled

if TYPE_CHECKING:       # ir imports the layer kinds, so only for the annotation
    from rvnpu.compiler.onnx.ir import Tensor


__all__ = ["AddLayer", "qlinear_add", "qlinear_add_constants", "fma32"]


def qlinear_add_constants(ta, tb, tc):
    """MLAS's QLinearAdd constants on x86-64 (AVX2 kernel), float32: the ratios of the input
    scales to the output scale, and ``c_zero - (ratio_a * a_zero + ratio_b * b_zero)``, whose
    first product and sum the compiler fused (measured: the unfused form disagrees with
    onnxruntime where results are ties)."""
    f32 = np.float32
    ratio_a = f32(f32(ta.scale) / f32(tc.scale))
    ratio_b = f32(f32(tb.scale) / f32(tc.scale))
    fixed = f32(f32(tc.zero) - fma32(ratio_a, f32(ta.zero), f32(ratio_b * f32(tb.zero))))
    return ratio_a, ratio_b, fixed


def qlinear_add(a, b, ta, tb, tc, clamp):
    """MLAS's QLinearAdd on x86-64 with AVX2: ``fma(a, ratio_a, fma(b, ratio_b, fixed))`` in
    float32, rounded half to even, saturated."""
    return qlinear_add_scaled(a, b, *qlinear_add_constants(ta, tb, tc), clamp)


@dataclass
class AddLayer(Layer):
    """QLinearAdd of two tensors of one shape, or of a tensor and a constant of as many
    elements: ``constant`` holds its integers in the output's shape, ``constant_tensor`` its
    quantisation, ``constant_index`` whether it is the first (0) or second (1) operand (the
    order matters to the rounding); ``inputs`` then has one name."""
    clamp: tuple = (-128, 127)
    constant: np.ndarray | None = None
    constant_tensor: "Tensor | None" = None
    constant_index: int = 1

    def _operands(self, model, values, constant):
        """The two ``(Tensor, value)`` operands in the node's order: ``values`` are those of
        ``inputs``, ``constant`` stands for the constant operand if there is one."""
        operands = [(model.tensors[name], v) for name, v in zip(self.inputs, values)]
        if self.constant is not None:
            operands.insert(self.constant_index, (self.constant_tensor, constant))
        return operands

    def emit_c(self, c):
        y = c.model.tensors[self.output]
        if self.constant is not None:
            values = self.constant
            if values.ndim == 4:
                values = values.transpose(0, 2, 3, 1)       # stored NHWC
            c.data.append(c_array(CTYPE[self.constant_tensor.dtype], f"{c.prefix}_constant",
                                  (str(int(v)) for v in values.ravel())))
        (ta, a_ref), (tb, b_ref) = self._operands(
            c.model, [c.buf(name) for name in self.inputs], f"{c.prefix}_constant")
        ra, rb, fixed = qlinear_add_constants(ta, tb, y)
        c.code.append(
            f"    {{\n        rvnpu_qadd_t q = {{.count = {y.size}, .a = {a_ref}, "
            f".b = {b_ref}, .c = {c.buf(y.name)},\n"
            f"            .ratio_a = {c_float(ra)}, .ratio_b = {c_float(rb)}, "
            f".fixed = {c_float(fixed)},\n"
            f"            .clamp_min = {self.clamp[0]}, .clamp_max = {self.clamp[1]}, "
            f".is_unsigned = {int(not y.signed)}}};\n"
            f"        result = rvnpu_qlinear_add(&q);\n    }}")

    def reference(self, model, inputs):
        (ta, a), (tb, b) = self._operands(model, inputs, self.constant)
        return qlinear_add(a, b, ta, tb, model.tensors[self.output], self.clamp)
