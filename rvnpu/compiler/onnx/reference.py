"""The chip's computation of a compiled model, in numpy.

Every layer is evaluated by its kind's ``reference`` (:mod:`rvnpu.compiler.onnx.layers`) with
the golden models the firmware library is tested against
(:func:`rvnpu.sim.golden.gemm.gemm_reference` with ONNX Runtime requantisation, the im2col
convolution and max-pool of :mod:`rvnpu.sim.golden.conv`, onnxruntime's QLinearAdd in
float32), so when the chip and onnxruntime disagree this tells which side moved: the chip (it
differs from this reference too) or the model of onnxruntime's arithmetic (this reference
agrees with the chip).
"""

import math

import numpy as np

# Named here too for the callers that test the firmware's QLinearAdd against it.
from rvnpu.compiler.onnx.layers.add import qlinear_add, qlinear_add_constants


__all__ = ["quantize_input", "run_layers", "apply_post", "run_reference", "qlinear_add",
           "qlinear_add_constants", "qlinear_softmax"]


def quantize_input(model, x):
    """The host's QuantizeLinear of the float input (as MLAS: ``x / scale`` in float32,
    rounded half to even, plus the zero point, saturated: ±Inf to the ends of the range, and
    NaN to its lower end, as onnxruntime's CPU kernel gives, whatever the zero point)."""
    x = np.asarray(x, np.float32).reshape(model.input_shape)
    t = model.tensors[model.chip_input]
    op, = model.pre
    with np.errstate(all="ignore"):
        q = np.rint(x / np.float32(op.value)).astype(np.float64) + op.zero
    lo, hi = t.range
    return np.clip(np.nan_to_num(q, nan=lo), lo, hi).astype(np.int64)


def run_layers(model, q_input):
    """All chip tensors (logical ONNX shapes, int64) for a quantised input."""
    values = {model.chip_input: np.asarray(q_input, np.int64)}

    def get(name):      # a view (reshape) has its own shape
        shape = model.tensors[name].shape
        while name not in values and name in model.aliases:
            name = model.aliases[name]
        return values[name].reshape(shape)

    for layer in model.layers:
        y = layer.reference(model, [get(name) for name in layer.inputs])
        shape = model.tensors[layer.output].shape
        values[layer.output] = np.asarray(y, np.int64).reshape(shape)
    for name in model.aliases:
        values[name] = get(name).reshape(model.tensors[name].shape)
    return values


def qlinear_softmax(x, x_scale, y_scale, y_zero, dtype):
    """onnxruntime's QLinearSoftmax over the last axis (which its graph optimiser also makes of
    a QDQ ``DequantizeLinear -> Softmax -> QuantizeLinear``): a float32 table of
    ``exp((d + shift) * x_scale)`` for the distances ``d <= 0`` from the row's maximum, computed
    in double with the shift that keeps the row's float32 sum finite; each output is
    ``nearbyint(table * floor(1 / y_scale) / sum) + y_zero`` in float32, saturated above at 255
    (for int8 too, which then wraps, as onnxruntime's kernel does)."""
    f32 = np.float32
    x = np.asarray(x, np.int64)
    depth = x.shape[-1]
    shift = math.log(float(f32(np.finfo(f32).max) / f32(depth)))
    shift = max(0.0, shift - 5) / float(f32(x_scale))
    table = np.array([f32(math.exp((i - 255 + shift) * float(f32(x_scale))))
                      for i in range(256)], f32)
    scale = f32(math.floor(f32(1.0) / f32(y_scale)))
    rows = x.reshape(-1, depth)
    out = np.empty_like(rows)
    for r, row in enumerate(rows):
        e = table[255 + row - row.max()]
        total = f32(0)
        for v in e:
            total = f32(total + v)
        q = np.rint(((e * scale).astype(f32) / total).astype(f32).astype(np.float64))
        q = np.minimum(q.astype(np.int64) + y_zero, 255)
        out[r] = q if dtype == "uint8" else (q + 128) % 256 - 128
    return out.reshape(x.shape)


#: The float operations the host applies to the chip's output, by HostOp name.
HOST_OPS = {
    "DequantizeLinear":
        lambda y, op: (y.astype(np.int32) - np.int32(op.zero)).astype(np.float32) * op.value,
    "Cast": lambda y, op: y.astype(np.float32),
    "Mul": lambda y, op: (y * op.value).astype(np.float32),
    "Add": lambda y, op: (y + op.value).astype(np.float32),
    "QLinearSoftmax": lambda y, op: qlinear_softmax(
        y, op.attrs["x_scale"], op.value, op.zero, op.dtype).astype(op.dtype),
}


def apply_post(model, q_output):
    """The host's tail on the chip's output (nothing: the integers themselves)."""
    y = np.asarray(q_output)
    for op in model.post:
        if op.op not in HOST_OPS:
            raise TypeError(f"unknown host operation {op.op}")
        y = HOST_OPS[op.op](y, op)
    if not model.post:
        y = y.astype(model.tensors[model.chip_output].dtype)
    return y


def run_reference(model, x):
    """``(final output, chip output integers)`` of the numpy model for a float input."""
    values = run_layers(model, quantize_input(model, x))
    q = values[model.chip_output]
    return apply_post(model, q), q
