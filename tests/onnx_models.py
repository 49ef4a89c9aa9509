"""Small ONNX models for the compiler's tests, built with onnx.helper from seeded random
weights and quantised with onnxruntime's own tools, as a user's models are."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _const(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def float_model(kind, seed=0):
    """``(ModelProto, input shape)`` of a float model exercising ``kind``."""
    rng = np.random.default_rng(seed)

    def w(*shape):
        return (rng.normal(size=shape) / np.sqrt(np.prod(shape[1:]) or 1)).astype(np.float32)

    nodes, inits = [], []

    def node(op, inputs, outputs, **attrs):
        nodes.append(helper.make_node(op, inputs, outputs, name=f"{op.lower()}{len(nodes)}",
                                      **attrs))

    def param(name, array):
        inits.append(_const(name, array))
        return name

    if kind == "mlp":            # Gemm + Relu, MatMul + Add, Gemm with transB
        shape, out = [1, 20], [1, 6]
        node("Gemm", ["x", param("w0", w(20, 12)), param("b0", w(12))], ["h0"])
        node("Relu", ["h0"], ["r0"])
        node("MatMul", ["r0", param("w1", w(12, 9))], ["h1"])
        node("Add", ["h1", param("b1", w(9))], ["h2"])
        node("Gemm", ["h2", param("w2", w(6, 9)), param("b2", w(6))], ["y"], transB=1)
    elif kind == "cnn":          # Conv + Relu, MaxPool, strided Conv, Flatten, Gemm
        shape, out = [1, 2, 7, 6], [1, 5]
        node("Conv", ["x", param("wc0", w(6, 2, 3, 3)), param("bc0", w(6))], ["c0"],
             pads=[1, 1, 1, 1])
        node("Relu", ["c0"], ["r0"])
        node("MaxPool", ["r0"], ["p0"], kernel_shape=[2, 2], strides=[2, 2])
        node("Conv", ["p0", param("wc1", w(11, 6, 2, 1)), param("bc1", w(11))], ["c1"],
             strides=[1, 2], pads=[0, 0, 0, 0])
        node("Flatten", ["c1"], ["f"])
        node("Gemm", ["f", param("wf", w(11 * 2 * 2, 5)), param("bf", w(5))], ["y"])
    elif kind == "add":          # a residual QLinearAdd, Reshape
        shape, out = [1, 3, 5, 5], [1, 4]
        node("Conv", ["x", param("wa", w(4, 3, 3, 3)), param("ba", w(4))], ["a"],
             pads=[1, 1, 1, 1])
        node("Relu", ["a"], ["ar"])
        node("Conv", ["ar", param("wb", w(4, 4, 1, 1)), param("bb", w(4))], ["b"])
        node("Add", ["ar", "b"], ["s"])
        node("Reshape", ["s", param("shape", np.array([1, -1], np.int64))], ["f"])
        node("MatMul", ["f", param("wf", w(100, 4))], ["y"])
    elif kind == "clip":         # Clip(0, 6) fused, a 1x1 spatial map flattened
        shape, out = [1, 16], [1, 3]
        node("Gemm", ["x", param("w0", w(16, 24)), param("b0", w(24))], ["h"])
        node("Clip", ["h", param("lo", np.float32(0)), param("hi", np.float32(6))], ["c"])
        node("Gemm", ["c", param("w1", w(24, 3)), param("b1", w(3))], ["y"])
    elif kind == "avgpool":      # padded, ceil-mode and global average pools
        shape, out = [1, 2, 7, 7], [1, 3]
        node("Conv", ["x", param("wc0", w(4, 2, 3, 3)), param("bc0", w(4))], ["c0"],
             pads=[1, 1, 1, 1])
        node("Relu", ["c0"], ["r0"])
        node("AveragePool", ["r0"], ["p0"], kernel_shape=[3, 3], strides=[2, 2],
             pads=[1, 1, 1, 1])
        node("Conv", ["p0", param("wc1", w(6, 4, 1, 1)), param("bc1", w(6))], ["c1"])
        node("AveragePool", ["c1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2],
             pads=[0, 0, 1, 1], count_include_pad=1, ceil_mode=1)
        node("GlobalAveragePool", ["p1"], ["g"])
        node("Flatten", ["g"], ["f"])
        node("Gemm", ["f", param("wf", w(6, 3)), param("bf", w(3))], ["y"])
    elif kind == "relu_skip":    # a Relu that cannot fuse: the Conv also feeds the Add
        shape, out = [1, 2, 5, 5], [1, 4]
        node("Conv", ["x", param("wc", w(4, 2, 3, 3)), param("bc", w(4))], ["c"],
             pads=[1, 1, 1, 1])
        node("Relu", ["c"], ["r"])
        node("Add", ["c", "r"], ["s"])
        node("Reshape", ["s", param("shape", np.array([1, -1], np.int64))], ["f"])
        node("MatMul", ["f", param("wf", w(100, 4))], ["y"])
    elif kind == "clip_alone":   # a Clip between two GEMMs' QuantizeLinear nodes
        shape, out = [2, 12], [2, 5]
        node("MatMul", ["x", param("w0", w(12, 8))], ["h"])
        node("Add", ["h", param("b0", w(8))], ["a"])
        node("Clip", ["a", param("lo", np.float32(-0.5)), param("hi", np.float32(0.7))], ["c"])
        node("Add", ["c", "a"], ["s"])
        node("MatMul", ["s", param("w1", w(8, 5))], ["y"])
    elif kind == "mmadd":        # MatMul + Add with the bias broadcast over 3 rows
        shape, out = [3, 8], [3, 4]
        node("MatMul", ["x", param("w0", w(8, 6))], ["m"])
        node("Add", ["m", param("b0", w(6))], ["a"])
        node("MatMul", ["a", param("w1", w(6, 4))], ["y"])
    elif kind == "softmax":      # classifier probabilities, the Softmax on the host
        shape, out = [2, 10], [2, 6]
        node("Gemm", ["x", param("w0", w(10, 6)), param("b0", w(6))], ["h"])
        node("Softmax", ["h"], ["y"], axis=-1)
    elif kind == "depthwise":    # grouped and depthwise, dilated convolutions (IR only)
        shape, out = [1, 4, 8, 8], [1, 3]
        node("Conv", ["x", param("wd", w(4, 1, 3, 3)), param("bd", w(4))], ["d"],
             group=4, pads=[1, 1, 1, 1])
        node("Relu", ["d"], ["r"])
        node("Conv", ["r", param("wg", w(6, 2, 3, 3)), param("bg", w(6))], ["g"],
             group=2, dilations=[2, 2], strides=[2, 1])
        node("Flatten", ["g"], ["f"])
        node("Gemm", ["f", param("wf", w(6 * 2 * 4, 3)), param("bf", w(3))], ["y"])
    else:
        raise ValueError(kind)
    graph = helper.make_graph(
        nodes, kind, [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, shape


def calibration(shape, seed=0, count=16, scale=1.0):
    rng = np.random.default_rng(seed + 1000)
    return [(rng.normal(size=shape) * scale).astype(np.float32) for _ in range(count)]


def quantise(model, shape, path, *, fmt="QDQ", per_channel=True, activations="QUInt8",
             seed=0):
    """Quantise with ``onnxruntime.quantization.quantize_static`` (weights int8, reduce_range,
    see docs/onnx.md) and save to ``path``."""
    import logging
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.data = iter([{"x": x} for x in calibration(shape, seed)])

        def get_next(self):
            return next(self.data, None)

    float_path = str(path) + ".float.onnx"
    onnx.save(model, float_path)
    logging.getLogger().setLevel(logging.ERROR)     # its "consider pre-processing" advice
    quantize_static(float_path, str(path), Reader(), quant_format=getattr(QuantFormat, fmt),
                    per_channel=per_channel, reduce_range=True,
                    activation_type=getattr(QuantType, activations),
                    weight_type=QuantType.QInt8)
    return path


def qoperator_model(kind, seed=0):
    """Hand-written QOperator models ``quantize_static`` does not make: ``(model, shape)``."""
    rng = np.random.default_rng(seed)
    f32 = np.float32
    nodes, inits = [], []

    def param(name, array):
        inits.append(_const(name, array))
        return name

    def node(op, inputs, outputs, **attrs):
        domain = "com.microsoft" if op in ("QLinearAdd", "QGemm") else ""
        nodes.append(helper.make_node(op, inputs, outputs, name=f"{op.lower()}{len(nodes)}",
                                      domain=domain, **attrs))

    out_type = TensorProto.FLOAT
    if kind == "matmul_u8u8":    # uint8 weights with a zero point, uint8 activations
        shape, out = [3, 10], [3, 7]
        node("QuantizeLinear", ["x", param("xs", f32(0.05)), param("xz", np.uint8(120))],
             ["xq"])
        node("QLinearMatMul", ["xq", "xs", "xz",
                               param("w", rng.integers(0, 256, (10, 7)).astype(np.uint8)),
                               param("ws", f32(0.02)), param("wz", np.uint8(131)),
                               param("ys", f32(0.11)), param("yz", np.uint8(97))], ["yq"])
        node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])
    elif kind == "matmulinteger":     # int32 sums, then the float tail on the host
        shape, out = [2, 12], [2, 5]
        node("QuantizeLinear", ["x", param("xs", f32(0.03)), param("xz", np.int8(-7))],
             ["xq"])
        node("MatMulInteger", ["xq", param("w", rng.integers(-64, 64, (12, 5)).astype(
            np.int8)), "xz", param("wz", np.int8(3))], ["acc"])
        node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT)
        node("Mul", ["accf", param("s", f32(0.03 * 0.017))], ["m"])
        node("Add", ["m", param("b", rng.normal(size=5).astype(f32))], ["y"])
    elif kind == "conv_relu_int8":    # per-channel QLinearConv; int8 in and out, no DQ
        shape, out = [1, 3, 6, 6], [1, 5, 3, 3]
        node("QuantizeLinear", ["x", param("xs", f32(0.04)), param("xz", np.int8(5))], ["xq"])
        node("QLinearConv", ["xq", "xs", "xz",
                             param("w", rng.integers(-64, 64, (5, 3, 3, 3)).astype(np.int8)),
                             param("ws", rng.uniform(0.005, 0.02, 5).astype(f32)),
                             param("wz", np.zeros(5, np.int8)),
                             param("ys", f32(0.07)), param("yz", np.int8(-20)),
                             param("b", rng.integers(-500, 500, 5).astype(np.int32))],
             ["y"], pads=[1, 1, 1, 1], strides=[2, 2])
        out_type = TensorProto.INT8
    elif kind == "matmul_relu_int8":  # an integer Relu (opset 14) fused into the clamp
        shape, out = [1, 10], [1, 6]
        node("QuantizeLinear", ["x", param("xs", f32(0.05)), param("xz", np.int8(3))], ["xq"])
        node("QLinearMatMul", ["xq", "xs", "xz",
                               param("w", rng.integers(-64, 64, (10, 6)).astype(np.int8)),
                               param("ws", f32(0.01)), param("wz", np.int8(0)),
                               param("ys", f32(0.1)), param("yz", np.int8(-10))], ["y0"])
        node("Relu", ["y0"], ["y"])
        out_type = TensorProto.INT8
    elif kind == "qlinearadd":        # QLinearAdd of two requantised branches
        shape, out = [1, 40], [1, 40]
        node("QuantizeLinear", ["x", param("xs", f32(0.031)), param("xz", np.uint8(128))],
             ["xq"])
        for i, s in enumerate((0.045, 0.02)):
            node("QLinearMatMul", ["xq", "xs", "xz",
                                   param(f"w{i}", rng.integers(-64, 64, (40, 40)).astype(
                                       np.int8)),
                                   param(f"ws{i}", f32(0.01)), param(f"wz{i}", np.int8(0)),
                                   param(f"ys{i}", f32(s)),
                                   param(f"yz{i}", np.uint8(100 + 40 * i))], [f"b{i}"])
        node("QLinearAdd", ["b0", "ys0", "yz0", "b1", "ys1", "yz1", param("ys", f32(0.06)),
                            param("yz", np.uint8(110))], ["yq"])
        node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])
    elif kind == "qlinearadd_ties":   # every uint8 input against a constant: many exact ties
        shape, out = [1, 256], [1, 256]
        # Inputs k * 0.02 quantise to k; the scale ratios 3/4 and 1/3 make halves common.
        node("QuantizeLinear", ["x", param("xs", f32(0.02)), param("xz", np.uint8(0))], ["xq"])
        node("QLinearAdd", [param("c", rng.integers(0, 256, 256).astype(np.uint8)),
                            param("cs", f32(0.045)), param("cz", np.uint8(100)),
                            "xq", "xs", "xz",
                            param("ys", f32(0.06)), param("yz", np.uint8(110))], ["yq"])
        out_type = TensorProto.UINT8
        nodes[-1].output[0] = "y"
    else:
        raise ValueError(kind)
    graph = helper.make_graph(
        nodes, kind, [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", out_type, out)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    return model, shape
