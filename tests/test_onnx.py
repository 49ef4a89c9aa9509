"""ONNX models compiled for the chip, against onnxruntime byte for byte.

Random models built with onnx.helper, quantised by onnxruntime's ``quantize_static`` (QDQ and
QOperator formats, per-tensor and per-channel weights, uint8 and int8 activations) or written
by hand in QOperator form, go through the compiler. The numpy model of the chip
(``rvnpu.compiler.onnx.reference``) must equal onnxruntime for every input tried; then each operator
runs on the simulated SoC, whose output must equal onnxruntime's bit for bit. Reference is
``onnxruntime.InferenceSession`` on the CPU execution provider with default options but int8
QDQ fusion allowed (``rvnpu.flows.model.ort_session``, see docs/onnx.md)."""

import itertools
import re

import numpy as np
import onnx
import pytest

from onnx_models import calibration, float_model, qoperator_model, quantise
from rvnpu.compiler.onnx import ModelError
from rvnpu.compiler.onnx.importer import import_model
from rvnpu.compiler.onnx.layers.add import qlinear_add
from rvnpu.compiler.onnx.reference import run_reference
from rvnpu.flows.model import (DEFAULT_SOC, compile_model, ort_run, ort_session,
                               reference_output, run_model, same)
from rvnpu.sim import toolchain
from rvnpu.sim.golden.requant import quantize_multiplier, requantize_ort, requantize_tflite
from rvnpu.sim.soc_sim import SocSimulator


needs_verilator = pytest.mark.skipif("verilator" not in toolchain.available_simulators(),
                                     reason="Verilator not available")

KINDS = ["mlp", "cnn", "add", "clip"]
QUANTISATIONS = list(itertools.product(["QDQ", "QOperator"], [True, False],
                                       ["QUInt8", "QInt8"]))
HAND_WRITTEN = ["matmul_u8u8", "matmulinteger", "conv_relu_int8", "matmul_relu_int8",
                "qlinearadd", "qlinearadd_ties"]


def quantised(tmp_path, kind, fmt, per_channel, activations, seed=0):
    model, shape = float_model(kind, seed)
    path = quantise(model, shape, tmp_path / f"{kind}.onnx", fmt=fmt, per_channel=per_channel,
                    activations=activations, seed=seed)
    return path, shape


def hand_written(tmp_path, kind):
    model, shape = qoperator_model(kind)
    path = tmp_path / f"{kind}.onnx"
    onnx.save(model, path)
    return path, shape


def inputs_for(kind, shape, count, seed=5):
    if kind == "qlinearadd_ties":       # every uint8 value, in two orders
        x = (np.arange(256) * np.float32(0.02)).astype(np.float32)
        return [x.reshape(shape), np.random.default_rng(seed).permutation(x).reshape(shape)]
    return calibration(shape, seed, count, scale=2.0)     # beyond the calibrated range too


# -- The numpy model of the chip against onnxruntime (no simulation) -----------------------------

@pytest.mark.parametrize("fmt, per_channel, activations", QUANTISATIONS,
                         ids=lambda v: str(v))
@pytest.mark.parametrize("kind", KINDS)
def test_reference_matches_onnxruntime(tmp_path, kind, fmt, per_channel, activations):
    path, shape = quantised(tmp_path, kind, fmt, per_channel, activations)
    model, session = import_model(path), ort_session(path)
    for x in inputs_for(kind, shape, 40):
        assert same(run_reference(model, x)[0], ort_run(session, model, x))


@pytest.mark.parametrize("kind", HAND_WRITTEN)
def test_reference_matches_onnxruntime_qoperator(tmp_path, kind):
    path, shape = hand_written(tmp_path, kind)
    model, session = import_model(path), ort_session(path)
    for x in inputs_for(kind, shape, 40):
        assert same(run_reference(model, x)[0], ort_run(session, model, x))


def test_qlinear_add_rounds_like_onnxruntime_on_ties():
    """Scale ratios of small fractions make exact halves common; onnxruntime's AVX2 kernel
    rounds them after two fused multiply-adds, and an unfused evaluation would differ."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    ties = 0
    for trial in range(60):
        dtype = np.uint8 if trial % 2 else np.int8
        lo, hi = (0, 255) if dtype == np.uint8 else (-128, 127)
        sc = np.float32(rng.uniform(0.01, 0.1))
        sa, sb = (np.float32(sc * rng.integers(1, 8) / rng.choice([2, 3, 4, 6, 8]))
                  for _ in range(2))
        za, zb, zc = (int(v) for v in rng.integers(lo, hi + 1, 3))
        elem = TensorProto.UINT8 if dtype == np.uint8 else TensorProto.INT8
        params = [numpy_helper.from_array(np.array(v, d), n) for n, v, d in
                  [("sa", sa, np.float32), ("za", za, dtype), ("sb", sb, np.float32),
                   ("zb", zb, dtype), ("sc", sc, np.float32), ("zc", zc, dtype)]]
        graph = helper.make_graph(
            [helper.make_node("QLinearAdd", ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"],
                              ["c"], domain="com.microsoft")], "add",
            [helper.make_tensor_value_info(n, elem, [64]) for n in "ab"],
            [helper.make_tensor_value_info("c", elem, [64])], params)
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                        helper.make_opsetid("com.microsoft", 1)])
        proto.ir_version = 8
        import onnxruntime
        session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                               providers=["CPUExecutionProvider"])
        a, b = (rng.integers(lo, hi + 1, 64).astype(dtype) for _ in range(2))
        want = session.run(None, {"a": a, "b": b})[0].astype(np.int64)
        from rvnpu.compiler.onnx.ir import Tensor
        t = [Tensor(n, (64,), np.dtype(dtype).name, float(s), z)
             for n, s, z in (("a", sa, za), ("b", sb, zb), ("c", sc, zc))]
        got = qlinear_add(a, b, *t, (lo, hi))
        np.testing.assert_array_equal(got, want)
        exact = (a.astype(np.float64) - za) * (float(sa) / float(sc)) + \
            (b.astype(np.float64) - zb) * (float(sb) / float(sc)) + zc
        ties += int(np.sum(np.abs(exact - np.floor(exact) - 0.5) < 1e-9))
    assert ties > 100         # the test did meet the cases that tell roundings apart


def test_requantisation_follows_onnxruntime_not_tflite():
    """Halves are where the frameworks part: MLAS rounds them to even, gemmlowp away from
    zero. The chip's requantisation (``ort`` mode) is MLAS's, for every sum tried here."""
    from onnx import TensorProto, helper, numpy_helper
    import onnxruntime
    rng = np.random.default_rng(3)
    a = rng.integers(-3, 4, (16, 24)).astype(np.int8)       # small: sums stay in range
    w = rng.integers(-3, 4, (24, 12)).astype(np.int8)
    # a_scale * w_scale / y_scale = 0.5 exactly: every odd sum is a tie.
    params = [numpy_helper.from_array(np.array(v, d), n) for n, v, d in
              [("as", 0.25, np.float32), ("az", 0, np.int8), ("w", w, np.int8),
               ("ws", 0.5, np.float32), ("wz", 0, np.int8), ("ys", 0.25, np.float32),
               ("yz", 3, np.int8)]]
    graph = helper.make_graph(
        [helper.make_node("QLinearMatMul", ["a", "as", "az", "w", "ws", "wz", "ys", "yz"],
                          ["y"])], "mm", [helper.make_tensor_value_info("a", TensorProto.INT8,
                                                                        [16, 24])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [16, 12])], params)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    proto.ir_version = 8
    session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    want = session.run(None, {"a": a})[0].astype(np.int64)
    acc = a.astype(np.int64) @ w.astype(np.int64)
    ort = requantize_ort(acc, 0, np.float32(0.5).view(np.uint32), 3, -128, 127)
    np.testing.assert_array_equal(ort, want)
    multiplier, shift = quantize_multiplier(0.5)
    tflite = requantize_tflite(acc, 0, multiplier, shift, 3, -128, 127)
    assert np.any(tflite != want)           # ties away from zero: not what onnxruntime does
    assert np.any(acc % 2) and np.all(np.abs(want) < 100)


@pytest.mark.parametrize("kind", ["cnn", "add"])
def test_memory_plan_never_shares_bytes_between_live_buffers(tmp_path, kind):
    from rvnpu.spec.config import EngineConfig
    from rvnpu.compiler.onnx.planner import ALIGN, plan_memory
    path, _ = quantised(tmp_path, kind, "QDQ", True, "QUInt8")
    model = import_model(path)
    plan = plan_memory(model, EngineConfig())
    spans = [(plan.offsets[name], model.tensors[name].nbytes, plan.lifetimes[name])
             for name in plan.offsets]
    spans += [(offset, size, plan.lifetimes[("workspace", i)])
              for i, (offset, size) in plan.workspaces.items()]
    for (o1, n1, (f1, l1)), (o2, n2, (f2, l2)) in itertools.combinations(spans, 2):
        if f1 <= l2 and f2 <= l1:                        # alive at the same time
            assert o1 + n1 <= o2 or o2 + n2 <= o1
    assert all(o % ALIGN == 0 and o + n <= plan.arena_bytes for o, n, _ in spans)
    assert plan.arena_bytes < sum(n for _, n, _ in spans)     # something was reused


def test_each_layer_kind_writes_its_own_c_and_reference():
    """The C generator and the reference are loops over layers: every kind must define both
    (a kind without them would fail only when a model first used it)."""
    from rvnpu.compiler.onnx import layers
    kinds = {getattr(layers, name) for name in layers.__all__}
    for kind in kinds - {layers.Layer, layers.RequantisedLayer}:
        assert kind.emit_c is not layers.Layer.emit_c, kind
        assert kind.reference is not layers.Layer.reference, kind
        assert kind.__module__.startswith("rvnpu.compiler.onnx.layers."), kind


def test_layers_count_their_multiply_accumulates(tmp_path):
    path, _ = quantised(tmp_path, "cnn", "QDQ", True, "QUInt8")
    model = import_model(path)
    # The Flatten before the Gemm is folded into the Gemm's weights (a view, no layer).
    assert [layer.op for layer in model.layers] == ["Conv", "MaxPool", "Conv", "Gemm"]
    assert model.layers[-1].nhwc_input == (11, 2, 2)
    # 7x6 outputs of 3x3x2 taps for 6 channels; 2x2 of 2x1x6 for 11; 44 inputs for 5.
    assert [layer.macs(model) for layer in model.layers] == [42 * 18 * 6, 0, 4 * 12 * 11,
                                                             44 * 5]


# -- Errors -------------------------------------------------------------------------------------

def _single_node_model(tmp_path, op, **attrs):
    from onnx import TensorProto, helper
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s"], ["q"], name="quant"),
         helper.make_node(op, ["q"], ["y"], name="the_node", **attrs)], "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 4])],
        [onnx.numpy_helper.from_array(np.array(0.1, np.float32), "s")])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_unsupported_operator_is_named_with_its_node(tmp_path):
    with pytest.raises(ModelError, match=r"operator Hardmax \(node 'the_node'\) is not "
                                         r"supported"):
        import_model(_single_node_model(tmp_path, "Hardmax"))


def test_dynamic_quantisation_is_refused_with_what_to_do(tmp_path):
    from onnxruntime.quantization import QuantType, quantize_dynamic
    model, _ = float_model("mlp")
    onnx.save(model, tmp_path / "mlp.onnx")
    quantize_dynamic(str(tmp_path / "mlp.onnx"), str(tmp_path / "dynamic.onnx"),
                     weight_type=QuantType.QInt8)
    with pytest.raises(ModelError, match="DynamicQuantizeLinear .*quantize_static"):
        import_model(tmp_path / "dynamic.onnx")


def test_grouped_convolution_runs_from_an_engine_list(tmp_path):
    """A depthwise convolution has no firmware routine: it runs from the engine's list."""
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.ones((4, 1, 3, 3), np.int8), "w")
    inits = [numpy_helper.from_array(np.array(v, d), n) for n, v, d in
             [("s", 0.1, np.float32), ("z", 0, np.uint8), ("ws", 0.1, np.float32),
              ("wz", 0, np.int8)]] + [w]
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
         helper.make_node("QLinearConv", ["q", "s", "z", "w", "ws", "wz", "s", "z"], ["y"],
                          name="depthwise", group=4)], "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    assert import_model(proto).layers[0].groups == 4
    onnx.save(proto, tmp_path / "depthwise.onnx")
    compiled = compile_model(tmp_path / "depthwise.onnx", tmp_path / "build", DEFAULT_SOC)
    assert compiled.engine_layers == 1


def test_too_large_model_says_how_many_bytes_are_missing(tmp_path):
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"])], "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 300])],
        [numpy_helper.from_array(rng.normal(size=(256, 300)).astype(np.float32), "w"),
         numpy_helper.from_array(np.zeros(300, np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = quantise(model, [1, 256], tmp_path / "big.onnx")
    with pytest.raises(ModelError, match=r"model needs (\d+) bytes of RAM \(\d+ of weights and "
                                         r"constants, \d+ of engine command lists, .* RAM has "
                                         r"65536: (\d+) bytes missing; try --mem-bytes (\d+)$") as e:
        compile_model(path, tmp_path / "build", DEFAULT_SOC)
    need, missing, suggested = (int(n) for n in re.search(
        r"needs (\d+) .*: (\d+) bytes missing; try --mem-bytes (\d+)", str(e.value)).groups())
    assert need > 65536 and missing == need - 65536
    # The suggestion is the smallest power of two that holds the model.
    assert suggested >= need > suggested // 2 and suggested & (suggested - 1) == 0


# -- On the simulated SoC -----------------------------------------------------------------------

#: Each operator and format once: (name, how to make it).
SOC_CASES = {
    "cnn-qdq-perchannel-u8": ("cnn", "QDQ", True, "QUInt8"),
    "cnn-qoperator-s8": ("cnn", "QOperator", False, "QInt8"),
    "mlp-qdq-perchannel-s8": ("mlp", "QDQ", True, "QInt8"),
    "mlp-qoperator-u8": ("mlp", "QOperator", True, "QUInt8"),
    "add-qdq-u8": ("add", "QDQ", True, "QUInt8"),
    "add-qoperator-s8": ("add", "QOperator", False, "QInt8"),
    "clip-qdq-s8": ("clip", "QDQ", True, "QInt8"),
    "avgpool-qdq-perchannel-u8": ("avgpool", "QDQ", True, "QUInt8"),
    "avgpool-qoperator-s8": ("avgpool", "QOperator", False, "QInt8"),
    "relu_skip-qdq-s8": ("relu_skip", "QDQ", False, "QInt8"),
    "clip_alone-qdq-u8": ("clip_alone", "QDQ", True, "QUInt8"),
    "mmadd-qoperator-s8": ("mmadd", "QOperator", True, "QInt8"),
    "softmax-qdq-u8": ("softmax", "QDQ", True, "QUInt8"),
    **{name: (name,) for name in HAND_WRITTEN},
}


@pytest.fixture(scope="module")
def soc():
    return SocSimulator(DEFAULT_SOC)


@needs_verilator
@pytest.mark.parametrize("case", sorted(SOC_CASES))
def test_chip_matches_onnxruntime(soc, tmp_path, case):
    spec = SOC_CASES[case]
    path, shape = hand_written(tmp_path, spec[0]) if len(spec) == 1 else \
        quantised(tmp_path, *spec)
    inputs = inputs_for(spec[0], shape, 3)
    compiled = compile_model(path, tmp_path / "build", DEFAULT_SOC, batch=len(inputs))
    session = ort_session(path)
    results = run_model(compiled, inputs, simulator=soc)
    for x, result in zip(inputs, results):
        assert same(result.output, ort_run(session, compiled.model, x))
        np.testing.assert_array_equal(result.q_output, reference_output(compiled.model, x))
        assert len(result.layer_cycles) == len(compiled.model.layers)
        assert 0 < sum(result.layer_cycles) <= result.cycles
