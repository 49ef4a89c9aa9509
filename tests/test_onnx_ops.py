"""More ONNX operators against onnxruntime, bit for bit: average pooling (padded, ceil-mode,
counting the padding or not, global), a standalone requantisation (DequantizeLinear, Relu or
Clip, QuantizeLinear), an integer Relu whose input has other readers, MatMul + Add with the bias
broadcast over rows, a final Softmax on the host, and grouped, depthwise and dilated
convolutions (in the IR and the reference only: the chip refuses them, naming the node).

The numpy model (``run_reference``) is compared with onnxruntime over many random cases, and
each operator runs once on the simulated SoC, several inputs in one run.
"""

import itertools
import platform

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnx_models import calibration, float_model, quantise
from rvnpu.compiler.onnx import ModelError
from rvnpu.compiler.onnx.importer import import_model
from rvnpu.compiler.onnx.reference import run_reference
from rvnpu.flows.model import (DEFAULT_SOC, QDQ_INT8_FUSION, compile_model, ort_run,
                               ort_session, same)
from rvnpu.sim.golden.pool import average_pool2d, global_average_pool

QUANTISATIONS = list(itertools.product(["QDQ", "QOperator"], [True, False],
                                       ["QUInt8", "QInt8"]))


def quantised(tmp_path, kind, fmt, per_channel, activations):
    model, shape = float_model(kind)
    path = quantise(model, shape, tmp_path / f"{kind}.onnx", fmt=fmt, per_channel=per_channel,
                    activations=activations)
    return path, shape


@pytest.mark.parametrize("fmt, per_channel, activations", QUANTISATIONS, ids=str)
@pytest.mark.parametrize("kind", ["avgpool", "relu_skip", "clip_alone", "mmadd", "softmax",
                                  "depthwise"])
def test_reference_matches_onnxruntime(tmp_path, kind, fmt, per_channel, activations):
    path, shape = quantised(tmp_path, kind, fmt, per_channel, activations)
    model, session = import_model(path), ort_session(path)
    for x in calibration(shape, 5, 40, scale=2.0):
        assert same(run_reference(model, x)[0], ort_run(session, model, x))


def _pool_model(rng, signed, glob, channels_last=0):
    """A random QLinearAveragePool (or QLinearGlobalAveragePool) model on integer inputs."""
    dt, elem = (np.int8, TensorProto.INT8) if signed else (np.uint8, TensorProto.UINT8)
    lo, hi = (-128, 127) if signed else (0, 255)
    h, w, c = (int(v) for v in (rng.integers(1, 9), rng.integers(1, 9), rng.integers(1, 4)))
    kh, kw = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
    pads = [int(rng.integers(0, k)) for k in (kh, kw, kh, kw)]
    if rng.integers(0, 4) == 0:
        pads = [0, 0, 0, 0]
    attrs = dict(kernel_shape=[kh, kw], strides=[int(s) for s in rng.integers(1, 4, 2)],
                 pads=pads, count_include_pad=int(rng.integers(0, 2)),
                 ceil_mode=int(rng.integers(0, 2)))
    xs, ys = (np.float32(v) for v in rng.uniform(0.005, 0.2, 2))
    xz, yz = (int(v) for v in rng.integers(lo, hi + 1, 2))
    inits = [numpy_helper.from_array(np.array(v, d), n) for n, v, d in
             [("xs", xs, np.float32), ("xz", xz, dt), ("ys", ys, np.float32), ("yz", yz, dt)]]
    op = "QLinearGlobalAveragePool" if glob else "QLinearAveragePool"
    node = helper.make_node(op, ["x", "xs", "xz", "ys", "yz"], ["y"], domain="com.microsoft",
                            channels_last=channels_last, **({} if glob else attrs))
    shape = [1, h, w, c] if channels_last else [1, c, h, w]
    graph = helper.make_graph([node], "pool", [helper.make_tensor_value_info("x", elem, shape)],
                              [helper.make_tensor_value_info("y", elem, None)], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("com.microsoft", 1)])
    proto.ir_version = 8
    x = rng.integers(lo, hi + 1, shape).astype(dt)
    return proto, x, (xs, xz, ys, yz, lo, hi), attrs


@pytest.mark.parametrize("channels_last", [0, 1])
def test_average_pool_golden_matches_onnxruntime(channels_last):
    """The golden functions against onnxruntime's kernels over random windows, strides, pads
    (asymmetric too), ceil_mode, count_include_pad, int8 and uint8, global pools, NCHW and
    onnxruntime's NHWC kernel (which its optimiser picks next to NHWC convolutions)."""
    import onnxruntime
    rng = np.random.default_rng(channels_last)
    for trial in range(150):
        glob = trial % 6 == 0 and not channels_last
        proto, x, params, attrs = _pool_model(rng, trial % 2, glob, channels_last)
        session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                               providers=["CPUExecutionProvider"])
        want = session.run(None, {"x": x})[0][0]
        xh = x[0] if channels_last else x[0].transpose(1, 2, 0)
        want = want if channels_last else want.transpose(1, 2, 0)
        if glob:
            got = global_average_pool(xh, *params)[None, None]
        else:
            got = average_pool2d(xh, *params, kernel=attrs["kernel_shape"],
                                 stride=attrs["strides"], pads=attrs["pads"],
                                 count_include_pad=attrs["count_include_pad"],
                                 ceil_mode=attrs["ceil_mode"])
        np.testing.assert_array_equal(got, want.astype(np.int64), err_msg=str(attrs))


def test_resnet8_matches_onnxruntime_on_twenty_inputs(tmp_path):
    """The benchmark's ResNet-8 (int8 QDQ, residual branches) equals onnxruntime's fused
    int8 kernels on 20 seeded inputs; the default x86 session differed on about 1 in 8."""
    from rvnpu.bench.model_zoo import quantised_model
    _, path = quantised_model("resnet8", tmp_path)
    model, session = import_model(path), ort_session(path)
    rng = np.random.default_rng(14)
    for _ in range(20):
        x = rng.normal(size=(1, 3, 32, 32)).astype(np.float32)
        assert same(run_reference(model, x)[0], ort_run(session, model, x))


def _optimised(path, tmp_path, config):
    """The graph onnxruntime runs for ``path`` with the session ``config`` entry (or none)."""
    import onnxruntime
    options = onnxruntime.SessionOptions()
    if config:
        options.add_session_config_entry(*config)
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return onnx.load(options.optimized_model_filepath).graph


def _op_counts(graph):
    import collections
    return collections.Counter(node.op_type for node in graph.node)


def _pool_zero_types(graph):
    """The element types of the average pools' input zero points."""
    types = {init.name: init.data_type for init in graph.initializer}
    return {types[node.input[2]] for node in graph.node if "AveragePool" in node.op_type}


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="onnxruntime fuses int8 QDQ groups by default off x86")
def test_why_the_session_fuses_int8_groups(tmp_path):
    """The cause of issue 14: by default on x86, onnxruntime runs the Conv and Add that read a
    tensor with two readers (a residual branch) in float32, and the int8 average pools in uint8
    (zero points + 128, which moves their float roundings); with QDQ_INT8_FUSION every group is
    an int8 QLinear kernel, the arithmetic the compiler models."""
    from rvnpu.bench.model_zoo import quantised_model
    _, path = quantised_model("resnet8", tmp_path)
    default = _op_counts(_optimised(path, tmp_path, None))
    fused = _op_counts(_optimised(path, tmp_path, QDQ_INT8_FUSION))
    assert default["Conv"] and default["Add"]
    assert not fused["Conv"] and not fused["Add"] and fused["QLinearConv"] == 9
    assert fused["QLinearAdd"] == 3 and fused["DequantizeLinear"] == 1
    pools, _ = quantised(tmp_path, "avgpool", "QDQ", True, "QInt8")
    assert _pool_zero_types(_optimised(pools, tmp_path, None)) == {TensorProto.UINT8}
    assert _pool_zero_types(_optimised(pools, tmp_path, QDQ_INT8_FUSION)) == {TensorProto.INT8}


def test_grouped_and_dilated_convolutions_compile_to_engine_lists(tmp_path):
    """The firmware has no grouped convolution; the engine's lists run them (their results
    are checked in test_engine_lists.py on the golden engine)."""
    path, _ = quantised(tmp_path, "depthwise", "QOperator", True, "QUInt8")
    model = import_model(path)
    assert [(layer.groups, layer.dilation) for layer in model.layers[:2]] == \
        [(4, (1, 1)), (2, (2, 2))]
    compiled = compile_model(path, tmp_path / "build", DEFAULT_SOC)
    assert compiled.engine_layers == len(compiled.model.layers)


def test_other_operators_are_still_refused_by_name(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s"], ["q"], name="quant"),
         helper.make_node("LpPool", ["q"], ["y"], name="the_pool", kernel_shape=[2, 2])], "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, None)],
        [numpy_helper.from_array(np.array(0.1, np.float32), "s")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(ModelError, match=r"operator LpPool \(node 'the_pool'\) is not "
                                         r"supported"):
        import_model(proto)


# The new operators on the simulated SoC are cases of test_onnx.py's test_chip_matches_onnxruntime.
