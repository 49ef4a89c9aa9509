"""Whole models compiled into engine command lists, run on the golden engine (no core, no
simulator): every convolution and GEMM from its list, the other layers by their references,
must give exactly what the numpy model of the chip gives (which equals onnxruntime, see
test_onnx.py). Fast enough to try every model kind, quantisation and several engine shapes."""

import itertools

import numpy as np
import onnx
import pytest

from onnx_models import calibration, float_model, qoperator_model, quantise
from rvnpu.compiler.onnx.codegen import generate_c
from rvnpu.compiler.onnx.engine_lists import fusable_add, fusable_pool
from rvnpu.compiler.onnx.golden_chip import run_on_golden_engine
from rvnpu.compiler.onnx.exact_average import engine_average_scale
from rvnpu.compiler.onnx.importer import import_model
from rvnpu.compiler.onnx.layers import (AddLayer, AveragePoolLayer, ConvLayer, GemmLayer,
                                        PoolLayer)
from rvnpu.compiler.onnx.planner import plan_memory
from rvnpu.compiler.onnx.reference import quantize_input, run_layers
from rvnpu.spec.config import EngineConfig


KINDS = ["mlp", "cnn", "add", "clip", "avgpool", "relu_skip", "clip_alone", "mmadd",
         "softmax", "depthwise"]
QUANTISATIONS = list(itertools.product(["QDQ", "QOperator"], [True, False],
                                       ["QUInt8", "QInt8"]))
ENGINES = {
    "8x8": EngineConfig(),
    "4x4": EngineConfig(rows=4, cols=4),
    "3x5-small": EngineConfig(rows=3, cols=5, spad_depth=64, acc_depth=32, qp_depth=8),
    "8x8-no-post": EngineConfig(post_unit=False),
}


def _check(path, shape, engine, count=2, seed=3):
    model = import_model(path)
    plan = plan_memory(model, engine)
    used = None
    for x in calibration(shape, seed, count, scale=2.0):
        q = quantize_input(model, x)
        want = run_layers(model, q)[model.chip_output]
        got, used = run_on_golden_engine(model, plan, engine, q)
        np.testing.assert_array_equal(got, np.asarray(want).reshape(got.shape))
    return model, used


@pytest.mark.parametrize("engine", sorted(ENGINES))
@pytest.mark.parametrize("fmt, per_channel, activations", QUANTISATIONS,
                         ids=lambda v: str(v))
@pytest.mark.parametrize("kind", KINDS)
def test_lists_match_the_reference(tmp_path, kind, fmt, per_channel, activations, engine):
    model, shape = float_model(kind, 0)
    path = quantise(model, shape, tmp_path / f"{kind}.onnx", fmt=fmt, per_channel=per_channel,
                    activations=activations, seed=0)
    ir, used = _check(path, shape, ENGINES[engine])
    post = ENGINES[engine].post_unit
    mapped = [i for i, layer in enumerate(ir.layers) if isinstance(layer, (ConvLayer, GemmLayer))
              and layer.scale is not None or _global(ir, layer)
              or post and isinstance(layer, (AddLayer, PoolLayer))
              or i and fusable_pool(ir, i - 1) is layer
              or i and ENGINES[engine].with_store_add and fusable_add(ir, i - 1) is layer]
    assert used == mapped, "every requantised convolution, GEMM, exact average pool, max-pool " \
                           "or QLinearAdd fused into a convolution's stores (and with the " \
                           "post-processing unit, max-pool and QLinearAdd) runs from a list"


def _global(model, layer):
    """An average pool the engine runs: a global one, or one proven exact on it."""
    if not isinstance(layer, AveragePoolLayer):
        return False
    x, y = model.tensors[layer.inputs[0]], model.tensors[layer.output]
    return tuple(layer.kernel) == tuple(x.shape[2:]) and not any(layer.pads) or \
        engine_average_scale(x.scale, x.zero, y.scale, y.zero, x.range, layer.kernel,
                             layer.stride, layer.pads, layer.count_include_pad,
                             layer.ceil_mode, x.shape[2:]) is not None


@pytest.mark.parametrize("kind", ["matmul_u8u8", "matmulinteger", "conv_relu_int8",
                                  "matmul_relu_int8", "qlinearadd"])
def test_hand_written_models_on_lists(tmp_path, kind):
    proto, shape = qoperator_model(kind)
    onnx.save(proto, tmp_path / f"{kind}.onnx")
    _check(tmp_path / f"{kind}.onnx", shape, EngineConfig())


def test_consecutive_engine_layers_share_one_list(tmp_path):
    model, shape = float_model("mlp", 0)
    path = quantise(model, shape, tmp_path / "mlp.onnx")
    ir = import_model(path)
    config = EngineConfig(post_unit=False)       # the Add between the GEMMs stays on the core
    program = generate_c(ir, plan_memory(ir, config), 1, config)
    engine = [isinstance(layer, GemmLayer) for layer in ir.layers]
    assert program.engine_layers == sum(engine) > 1
    runs = sum(1 for i, e in enumerate(engine) if e and (i == 0 or not engine[i - 1]))
    assert runs < sum(engine), "the model has consecutive GEMMs"
    assert program.model_c.count("rvnpu_run_list(") == runs
    assert "ADDR(arena" in program.model_c and "ADDR(l0_weights, 0)" in program.model_c


def test_a_padded_first_convolution_reads_its_padding_from_the_input_border(tmp_path):
    """The host writes the chip input inside a border of its zero point; the first
    convolution's windows read it, so its chunks may span kernel columns."""
    model, shape = float_model("cnn", 0)
    path = quantise(model, shape, tmp_path / "cnn.onnx")
    ir = import_model(path)
    first = ir.layers[0]
    assert isinstance(first, ConvLayer) and any(first.pads)
    program = generate_c(ir, plan_memory(ir, EngineConfig()), 1, EngineConfig())
    assert program.input_border == first.pads
    assert "l0_pad" not in program.model_data_h     # no zero-point row needed


def test_touching_regions_resolve_to_the_one_that_starts_there():
    """The arena is a multiple of the alignment, so the next region starts at its end: an
    address there belongs to the next region (a list holding ``arena + size`` would write
    past the arena)."""
    from rvnpu.compiler.onnx.engine_lists import AddressSpace
    space = AddressSpace()
    assert space.add("arena", 128) == 0
    assert space.add("inputs", 64) == 128
    assert space.resolve(127) == ("arena", 127)
    assert space.resolve(128) == ("inputs", 0)
    with pytest.raises(ValueError):
        space.resolve(192)


def _local_pool_model(rng, signed):
    """Float input -> QuantizeLinear -> QLinearAveragePool (a window smaller than the map,
    padding counted) -> DequantizeLinear, with random shapes and quantisation."""
    from onnx import TensorProto, helper, numpy_helper
    dt = np.int8 if signed else np.uint8
    lo, hi = (-128, 127) if signed else (0, 255)
    h, w, c = (int(v) for v in (rng.integers(3, 10), rng.integers(3, 10), rng.integers(1, 5)))
    kh, kw = int(rng.integers(1, min(h, 4) + 1)), int(rng.integers(2, min(w, 4) + 1))
    pads = [int(rng.integers(0, k)) for k in (kh, kw, kh, kw)]
    attrs = dict(kernel_shape=[kh, kw], strides=[int(s) for s in rng.integers(1, 3, 2)],
                 pads=pads, count_include_pad=1)
    xs = np.float32(rng.uniform(0.005, 0.2))
    ys = xs if rng.integers(0, 2) else np.float32(rng.uniform(0.005, 0.2))
    xz, yz = (int(v) for v in rng.integers(lo, hi + 1, 2))
    inits = [numpy_helper.from_array(np.array(v, d), n) for n, v, d in
             [("xs", xs, np.float32), ("xz", xz, dt), ("ys", ys, np.float32), ("yz", yz, dt)]]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["q"]),
             helper.make_node("QLinearAveragePool", ["q", "xs", "xz", "ys", "yz"], ["p"],
                              domain="com.microsoft", **attrs),
             helper.make_node("DequantizeLinear", ["p", "ys", "yz"], ["y"])]
    graph = helper.make_graph(nodes, "pool",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             [1, c, h, w])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("com.microsoft", 1)])
    proto.ir_version = 8
    return proto, (1, c, h, w), xs


def test_average_pools_proven_exact_run_from_lists(tmp_path):
    """Average pools smaller than their map that ``engine_average_scale`` accepts run on the
    engine as depthwise convolutions of ones and give onnxruntime's QLinearAveragePool bit for
    bit (on the golden engine, with inputs spanning the whole integer range); the refused
    ones keep the core's float path."""
    from rvnpu.flows.model import ort_run, ort_session, same
    from rvnpu.compiler.onnx.reference import apply_post
    rng = np.random.default_rng(3)
    engine = EngineConfig()
    on_engine = on_core = 0
    for trial in range(24):
        proto, shape, xs = _local_pool_model(rng, trial % 2)
        path = tmp_path / f"pool{trial}.onnx"
        onnx.save(proto, path)
        model, session = import_model(path), ort_session(path)
        plan = plan_memory(model, engine)
        for _ in range(3):
            x = (rng.uniform(-160, 160, shape) * xs).astype(np.float32)
            q = quantize_input(model, x)
            got, used = run_on_golden_engine(model, plan, engine, q)
            np.testing.assert_array_equal(got, run_layers(model, q)[model.chip_output])
            assert same(apply_post(model, got), ort_run(session, model, x))
        expected = [0] if _global(model, model.layers[0]) else []
        assert used == expected
        on_engine += bool(used)
        on_core += not used
    assert on_engine >= 8 and on_core >= 2
