"""The golden model of a requantised GEMM: what every GEMM, convolution and fully connected
layer on the chip must compute, in numpy, with no engine in sight.

:class:`Requant` is the one description of how int32 sums become output elements; the
compiler, the ONNX importer and the benchmarks all pass it around.
"""

from dataclasses import dataclass

import numpy as np

from rvnpu.spec.requant import mode_named
from rvnpu.sim.golden.requant import qp_values, qp_words, requantize


__all__ = ["Requant", "gemm_reference"]


@dataclass
class Requant:
    """How int32 sums become output elements.

    ``mode`` names a mode of :mod:`rvnpu.spec.requant`: ``"tflite"`` (``multiplier``/``shift``
    per output channel, gemmlowp rounding) or ``"ort"`` (float32 ``scale`` per channel, ONNX
    Runtime rounding); each mode reads the attributes its spec lists as parameters. Scalars mean
    per-tensor. ``mode=None`` stores the raw int32 sums (plus nothing: no bias).
    """
    mode: str | None = "tflite"
    multiplier: object = 1 << 30
    shift: object = 0
    scale: object = 1.0
    out_zero: int = 0
    clamp_min: int = -128
    clamp_max: int = 127

    def param_words(self, n):
        """``{QP row: uint32 words}`` of this mode's per-channel parameters for ``n``
        channels (the rows after the bias)."""
        return {p.row: qp_words(np.broadcast_to(getattr(self, p.name), n), p.kind)
                for p in mode_named(self.mode).params}


def gemm_reference(a, b, bias=None, requant=Requant(), *, a_zero=0, b_zero=0):
    """The mathematics being compiled, straight from numpy and the requant golden functions."""
    acc = (np.asarray(a, np.int64) - a_zero) @ (np.asarray(b, np.int64) - b_zero)
    acc = ((acc + (1 << 31)) % (1 << 32)) - (1 << 31)
    if requant.mode is None:
        return acc
    n = acc.shape[1]
    bias = np.zeros(n, np.int64) if bias is None else np.asarray(bias, np.int64)
    mode = mode_named(requant.mode)
    words = requant.param_words(n)
    params = [qp_values(words[p.row], p.kind) for p in mode.params]
    return requantize(mode, acc, bias, params, requant.out_zero, requant.clamp_min,
                      requant.clamp_max)
