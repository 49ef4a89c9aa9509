"""An element-wise function of one 8-bit tensor, tabulated: ``rvnpu_lookup8`` of
``rvnpu_eltwise.h``. A standalone requantisation (onnxruntime's DequantizeLinear, float Relu
or Clip, QuantizeLinear) and an integer Relu or Clip that cannot be fused into the layer before
it become one."""

from dataclasses import dataclass

import numpy as np

from rvnpu.compiler.onnx.emit import c_array
from rvnpu.compiler.onnx.layers.base import Layer


__all__ = ["LookupLayer", "requantise_table", "clamp_table"]


def _inputs(dtype):
    """Every value of an 8-bit type, in the order of its bytes 0..255."""
    return np.arange(256) if dtype == "uint8" else np.arange(256).astype(np.uint8).view(
        np.int8).astype(np.int64)


def requantise_table(tx, ty, clamp):
    """onnxruntime's DequantizeLinear of ``tx`` then QuantizeLinear into ``ty``, for each
    input byte: ``float32(x - x_zero) * x_scale``, divided by ``y_scale`` in float32, rounded
    half to even, plus ``y_zero``, clamped to ``clamp`` (the type's range, or a Relu's or
    Clip's: quantising is monotonic, so clamping the float and the integer agree)."""
    f32 = np.float32
    x = _inputs(tx.dtype)
    v = ((x - tx.zero).astype(f32) * f32(tx.scale)).astype(f32)
    q = np.rint((v / f32(ty.scale)).astype(f32).astype(np.float64)) + ty.zero
    return np.clip(q, *clamp).astype(np.int64)


def clamp_table(tx, clamp):
    """An integer Relu or Clip: the values themselves, clamped."""
    return np.clip(_inputs(tx.dtype), *clamp)


@dataclass
class LookupLayer(Layer):
    """``output = table[input byte]``; ``table`` holds the 256 output values (as integers of
    the output type) in the order of the input's bytes 0..255."""
    table: np.ndarray = None

    def emit_c(self, c):
        x, y = c.model.tensors[self.inputs[0]], c.model.tensors[self.output]
        c.data.append(c_array("uint8_t", f"{c.prefix}_table",
                              (str(int(v) & 0xFF) for v in self.table)))
        c.code.append(f"    rvnpu_lookup8({c.prefix}_table, {c.buf(x.name)}, {c.buf(y.name)}, "
                      f"{x.size});\n    result = RVNPU_GEMM_OK;")

    def reference(self, model, inputs):
        x, = inputs
        return np.asarray(self.table, np.int64)[np.asarray(x, np.int64) & 0xFF]
