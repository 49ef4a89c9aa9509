"""The chip's computation of a compiled model, in numpy.

Every layer is evaluated by its kind's ``reference`` (:mod:`rvnpu.compiler.onnx.layers`) with
the golden models the firmware library is tested against
(:func:`rvnpu.sim.golden.gemm.gemm_reference` with ONNX Runtime requantisation, the im2col
convolution and max-pool of :mod:`rvnpu.sim.golden.conv`, onnxruntime's QLinearAdd in
float32), so when the chip and onnxruntime disagree this tells which side moved: the chip (it
differs from this reference too) or the model of onnxruntime's arithmetic (this reference
agrees with the chip).
"""

import numpy as np

# Named here too for the callers that test the firmware's QLinearAdd against it.
from rvnpu.compiler.onnx.layers.add import qlinear_add, qlinear_add_constants


__all__ = ["quantize_input", "run_layers", "apply_post", "run_reference", "qlinear_add",
           "qlinear_add_constants"]


def quantize_input(model, x):
    """The host's QuantizeLinear of the float input (as MLAS: ``x / scale`` in float32,
    rounded half to even, plus the zero point, saturated)."""
    x = np.asarray(x, np.float32).reshape(model.input_shape)
    t = model.tensors[model.chip_input]
    op, = model.pre
    with np.errstate(all="ignore"):
        q = np.rint(x / np.float32(op.value)).astype(np.float64) + op.zero
    lo, hi = t.range
    return np.clip(np.nan_to_num(q, nan=op.zero), lo, hi).astype(np.int64)


def run_layers(model, q_input):
    """All chip tensors (logical ONNX shapes, int64) for a quantised input."""
    values = {model.chip_input: np.asarray(q_input, np.int64)}

    def get(name):
        while name not in values and name in model.aliases:
            name = model.aliases[name]
        return values[name]

    for layer in model.layers:
        y = layer.reference(model, [get(name) for name in layer.inputs])
        shape = model.tensors[layer.output].shape
        values[layer.output] = np.asarray(y, np.int64).reshape(shape)
    for name in model.aliases:
        values[name] = get(name).reshape(model.tensors[name].shape)
    return values


#: The float operations the host applies to the chip's output, by HostOp name.
HOST_OPS = {
    "DequantizeLinear":
        lambda y, op: (y.astype(np.int32) - np.int32(op.zero)).astype(np.float32) * op.value,
    "Cast": lambda y, op: y.astype(np.float32),
    "Mul": lambda y, op: (y * op.value).astype(np.float32),
    "Add": lambda y, op: (y + op.value).astype(np.float32),
}


def apply_post(model, q_output):
    """The host's float tail on the chip's output (nothing: the integers themselves)."""
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
