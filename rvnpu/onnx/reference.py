"""The chip's computation of a compiled model, in numpy.

Every layer is evaluated with the golden models the firmware library is tested against
(:func:`rvnpu.sim.gemm.gemm_reference` with ONNX Runtime requantisation, the im2col
convolution and max-pool of :mod:`rvnpu.sim.conv_golden`), so when the chip and onnxruntime
disagree this tells which side moved: the chip (it differs from this reference too) or the
model of onnxruntime's arithmetic (this reference agrees with the chip).
"""

import numpy as np

from rvnpu.onnx.ir import AddLayer, ConvLayer, FlattenLayer, GemmLayer, PoolLayer
from rvnpu.sim.conv_golden import conv2d, maxpool2d
from rvnpu.sim.gemm import Requant, gemm_reference


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


def _requant(layer, out):
    if layer.scale is None:
        return Requant(mode=None)
    return Requant(mode="ort", scale=layer.scale, out_zero=out.zero, clamp_min=layer.clamp[0],
                   clamp_max=layer.clamp[1])


def fma32(a, b, c):
    """float32 fused multiply-add, rounded once. The float64 product of two float32 values is
    exact, and so is its float64 sum with ``c`` whenever their exponents span at most 53 bits,
    which holds for the small integers, scale ratios and zero-point terms of QLinearAdd."""
    f64 = np.float64
    return (np.asarray(a, f64) * np.asarray(b, f64) + np.asarray(c, f64)).astype(np.float32)


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
    ratio_a, ratio_b, fixed = qlinear_add_constants(ta, tb, tc)
    v = fma32(np.asarray(a, np.float32), ratio_a,
              fma32(np.asarray(b, np.float32), ratio_b, fixed))
    return np.clip(np.rint(v.astype(np.float64)).astype(np.int64), *clamp)


def run_layers(model, q_input):
    """All chip tensors (logical ONNX shapes, int64) for a quantised input."""
    values = {model.chip_input: np.asarray(q_input, np.int64)}

    def get(name):
        while name not in values and name in model.aliases:
            name = model.aliases[name]
        return values[name]

    for layer in model.layers:
        out = model.tensors[layer.output]
        x = get(layer.inputs[0])
        xt = model.tensors[layer.inputs[0]]
        if isinstance(layer, GemmLayer):
            y = gemm_reference(x, layer.weights, layer.bias, _requant(layer, out),
                               a_zero=xt.zero, b_zero=layer.weight_zero)
        elif isinstance(layer, ConvLayer):
            y = conv2d(x[0].transpose(1, 2, 0), layer.weights, layer.bias,
                       _requant(layer, out), stride=layer.stride, pad=layer.pad,
                       in_zero=xt.zero, weight_zero=layer.weight_zero)
            y = y.transpose(2, 0, 1)[None]
        elif isinstance(layer, PoolLayer):
            y = maxpool2d(x[0].transpose(1, 2, 0), layer.kernel, layer.stride)
            y = y.transpose(2, 0, 1)[None]
        elif isinstance(layer, FlattenLayer):
            y = x.reshape(out.shape)
        elif isinstance(layer, AddLayer):
            if layer.constant is None:
                b, bt = get(layer.inputs[1]), model.tensors[layer.inputs[1]]
                y = qlinear_add(x, b, xt, bt, out, layer.clamp)
            elif layer.constant_index == 1:
                y = qlinear_add(x, layer.constant, xt, layer.constant_tensor, out, layer.clamp)
            else:
                y = qlinear_add(layer.constant, x, layer.constant_tensor, xt, out, layer.clamp)
        else:
            raise TypeError(f"unknown layer {layer!r}")
        values[layer.output] = np.asarray(y, np.int64).reshape(out.shape)
    for name in model.aliases:
        values[name] = get(name).reshape(model.tensors[name].shape)
    return values


def apply_post(model, q_output):
    """The host's float tail on the chip's output (nothing: the integers themselves)."""
    y = np.asarray(q_output)
    for op in model.post:
        if op.op == "DequantizeLinear":
            y = (y.astype(np.int32) - np.int32(op.zero)).astype(np.float32) * op.value
        elif op.op == "Cast":
            y = y.astype(np.float32)
        elif op.op == "Mul":
            y = (y * op.value).astype(np.float32)
        elif op.op == "Add":
            y = (y + op.value).astype(np.float32)
        else:
            raise TypeError(f"unknown host operation {op.op}")
    if not model.post:
        y = y.astype(model.tensors[model.chip_output].dtype)
    return y


def run_reference(model, x):
    """``(final output, chip output integers)`` of the numpy model for a float input."""
    values = run_layers(model, quantize_input(model, x))
    q = values[model.chip_output]
    return apply_post(model, q), q
