"""A max-pool fused into a convolution's stores (compile_conv's ``pool``, STORE_POOL): on the
golden engine against the golden convolution and max-pool, writing nothing but the pooled
output; the fallback where the windows do not fit; and ONNX models whose Conv -> MaxPool
compiles to one list without a MAXPOOL, bit-exact with the chip's reference."""

import numpy as np
import pytest

from onnx_models import calibration, float_model, quantise
from rvnpu.compiler.conv import (ConvSpec, FeatureMap, compile_conv, conv_constant_sizes,
                                 conv_constants, run_conv_on_model)
from rvnpu.compiler.gemm import GemmError
from rvnpu.compiler.onnx.codegen import plan_lists
from rvnpu.compiler.onnx.golden_chip import run_on_golden_engine
from rvnpu.compiler.onnx.importer import import_model
from rvnpu.compiler.onnx.layers import ConvLayer, PoolLayer
from rvnpu.compiler.onnx.planner import plan_memory
from rvnpu.compiler.onnx.reference import quantize_input, run_layers
from rvnpu.sim.golden.conv import conv2d, maxpool2d
from rvnpu.sim.golden.engine import EngineModel
from rvnpu.spec.commands import Funct, decode
from rvnpu.spec.config import EngineConfig

from test_conv_compiler import _draw, _requant


CONFIGS = {
    "8x8": EngineConfig(),
    "4x4-small-acc": EngineConfig(rows=4, cols=4, spad_depth=128, acc_depth=32, qp_depth=8,
                                  requant_lanes=2),
    "3x5": EngineConfig(rows=3, cols=5, spad_depth=256, acc_depth=64, qp_depth=16),
}

#: (h, w, cin, cout, kernel, stride, pads, pool, config, numbers)
CASES = {
    "digits-8x8x1-8ch": (8, 8, 1, 8, (3, 3), (1, 1), (1, 1, 1, 1), (2, 2), "8x8", "int8"),
    "odd-7x6-trailing": (7, 6, 2, 6, (3, 3), (1, 1), (1, 1, 1, 1), (2, 2), "4x4-small-acc",
                         "uint8-ort"),
    "tiles-and-blocks": (10, 7, 5, 11, (3, 3), (1, 1), (1, 1, 1, 1), (2, 2), "4x4-small-acc",
                         "uint8-ends"),
    "pool-3x3": (9, 10, 3, 7, (2, 2), (1, 1), (0, 0, 1, 1), (3, 3), "3x5", "extremes"),
    "pool-2x1-strided": (12, 8, 4, 5, (3, 3), (2, 1), (1, 1, 1, 1), (2, 1), "3x5", "int8"),
    "negative-scales": (6, 8, 3, 9, (3, 3), (1, 1), (1, 1, 1, 1), (2, 2), "8x8", "negative"),
    "strips-32x32": (32, 32, 3, 16, (3, 3), (1, 1), (1, 1, 1, 1), (2, 2), "8x8", "int8"),
}

NUMBERS = {   # (input signed, in zero, weight signed, weight zero, requant kind, extreme)
    "int8": (True, -5, True, 0, "tflite", False),
    "uint8-ort": (False, 131, False, 120, "ort", False),
    "extremes": (True, -128, True, 127, "tflite", True),
    "uint8-ends": (False, 255, True, -128, "ort-relu", True),
    "negative": (True, 3, True, 0, "ort", False),
}


def _case(name):
    h, w, cin, cout, kernel, stride, pads, pool, config, number = CASES[name]
    rng = np.random.default_rng(sorted(CASES).index(name) + 70)
    in_signed, in_zero, w_signed, w_zero, kind, extreme = NUMBERS[number]
    requant = _requant(rng, kind, cout)
    if number == "negative":
        requant.scale = (requant.scale * rng.choice([-1, 1], cout)).astype(np.float32)
    bias = rng.integers(-2000, 2000, cout)
    if extreme:
        # Channels pinned to either end of the clamp beside free ones: saturation both ways.
        bias = rng.choice([-(1 << 24), 1 << 24, 0, 0], cout)
        bias[:2] = -(1 << 24), 1 << 24
    spec = ConvSpec(_draw(rng, (*kernel, cin, cout), w_signed, extreme), bias, requant, stride=stride, pad=pads,
                    in_zero=in_zero, weight_zero=w_zero, in_signed=in_signed,
                    weight_signed=w_signed)
    return spec, _draw(rng, (h, w, cin), in_signed, extreme), pool, CONFIGS[config]


def _compile(spec, h, w, pool, config):
    eb = config.elem_bytes
    top, left, bottom, right = spec.pads
    x = FeatureMap(16, h + top + bottom, w + left + right, spec.cin, h, w, spec.cin, top, left)
    oh, ow = spec.out_size(h, w)
    ph, pw = pool
    # A pooled map with a border and a wider pitch of its own: only its interior is written.
    y = FeatureMap(x.base + x.nbytes(eb) + 7, oh // ph + 1, ow // pw + 2, spec.cout + 1,
                   oh // ph, ow // pw, spec.cout, 1, 1, 1)
    sizes = conv_constant_sizes(spec, config, x.pitch)
    w_addr = y.base + y.nbytes(eb) + 3
    q_addr = w_addr + sizes["weights"] + 5
    program = compile_conv(spec, x, y, weights_addr=w_addr, qp_addr=q_addr, config=config,
                           pool=pool)
    assert program.images == [(w_addr, conv_constants(spec, config, x.pitch)["weights"]),
                              (q_addr, conv_constants(spec, config, x.pitch)["qp"])]
    return program, x, y


@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_pool_is_the_max_pool_of_the_convolution(name):
    spec, x_values, pool, config = _case(name)
    h, w, _ = x_values.shape
    program, x, y = _compile(spec, h, w, pool, config)
    functs = [f for f, _, _ in program.commands]
    assert Funct.STORE_POOL in functs
    assert Funct.STORE not in functs and Funct.MAXPOOL not in functs
    model = EngineModel(config)
    model.memory[:] = np.random.default_rng(5).integers(0, 256, model.memory.size)
    x.write(model.memory, x_values, config.elem_bytes, border=spec.in_zero)
    for addr, data in program.images:
        model.memory[addr:addr + len(data)] = np.frombuffer(data, np.uint8)
    before = model.memory.copy()
    got, model = run_conv_on_model(program, x, x_values, spec, y, config, model)
    assert model.error_count == 0
    conv = conv2d(x_values, spec.weights, spec.bias, spec.requant, stride=spec.strides,
                  pad=spec.pads, in_zero=spec.in_zero, weight_zero=spec.weight_zero)
    want = maxpool2d(conv, pool, pool)
    assert want.std() > 0, "the pooled output should not be constant"
    if NUMBERS[CASES[name][-1]][-1]:
        lo, hi = spec.requant.clamp_min, spec.requant.clamp_max
        assert (conv == lo).any() and (conv == hi).any(), "extremes saturate at both ends"
    np.testing.assert_array_equal(got, want)
    # Nothing but the pooled interior is written: the convolution's output never is.
    changed = np.flatnonzero(model.memory != before)
    assert np.isin(changed, y.interior_addresses(config.elem_bytes)).all()


def test_strip_schedule_keeps_whole_window_rows():
    spec, x_values, pool, config = _case("strips-32x32")
    program, _, _ = _compile(spec, 32, 32, pool, config)
    assert "input strips" in program.mapping and "max-pool fused" in program.mapping
    rows = [decode(*c)[1]["rows"] for c in program.commands if c[0] == Funct.STORE_POOL]
    assert rows and set(rows) == {16}, "one STORE_POOL a pooled row of 16 windows"


def test_windows_that_do_not_fit_the_accumulators_are_refused():
    """A band of pool rows larger than half the accumulators cannot be fused: a one-line
    GemmError, upon which the ONNX compiler pools separately."""
    config = EngineConfig(rows=2, cols=2, spad_depth=64, acc_depth=16, qp_depth=4)
    spec = ConvSpec(np.ones((1, 1, 2, 2), np.int64), stride=1)
    with pytest.raises(GemmError, match="max-pool is not fused"):
        _compile(spec, 4, 6, (2, 2), config)          # a band is 2 x 6 = 12 > 8 rows
    with pytest.raises(GemmError, match="cannot take kernel_h 16"):
        _compile(spec, 16, 1, (16, 1), config)        # wider than the window's field


def test_engine_without_store_pool_is_refused_the_fusion():
    config = EngineConfig(rows=2, cols=2, spad_depth=64, acc_depth=64, qp_depth=4,
                          store_pool=False)
    spec = ConvSpec(np.ones((1, 1, 2, 2), np.int64), stride=1)
    with pytest.raises(GemmError, match="without STORE_POOL"):
        _compile(spec, 4, 6, (2, 2), config)


def _lists(ir, config):
    steps, _, _ = plan_lists(ir, plan_memory(ir, config), config)
    return steps


@pytest.mark.parametrize("config", [EngineConfig(), EngineConfig(rows=4, cols=4),
                                    EngineConfig(post_unit=False),
                                    EngineConfig(store_pool=False)],
                         ids=["8x8", "4x4", "no-post", "no-store-pool"])
@pytest.mark.parametrize("fmt, activations", [("QDQ", "QUInt8"), ("QOperator", "QInt8")])
def test_onnx_conv_then_maxpool_is_fused(tmp_path, config, fmt, activations):
    model, shape = float_model("cnn", 0)
    path = quantise(model, shape, tmp_path / "cnn.onnx", fmt=fmt, per_channel=True,
                    activations=activations, seed=0)
    ir = import_model(path)
    steps = _lists(ir, config)
    pools = [i for i, layer in enumerate(ir.layers) if isinstance(layer, PoolLayer)]
    assert pools and all(isinstance(ir.layers[i - 1], ConvLayer) for i in pools)
    functs = [f for step in steps.values() for f, _, _ in step.commands]
    if not config.store_pool:
        # Pooled separately, by the post unit, and still bit-exact below.
        assert Funct.STORE_POOL not in functs and Funct.MAXPOOL in functs
    else:
        assert Funct.MAXPOOL not in functs and Funct.STORE_POOL in functs
    for i in pools if config.store_pool else ():
        assert i in steps and not steps[i].commands
        # No command writes the convolution's output: its STOREs are pooled.
        assert Funct.STORE not in [f for f, _, _ in steps[i - 1].commands]
    plan = plan_memory(ir, config)
    for x in calibration(shape, 4, 2, scale=2.0):
        q = quantize_input(ir, x)
        got, used = run_on_golden_engine(ir, plan, config, q)
        want = run_layers(ir, q)[ir.chip_output]
        np.testing.assert_array_equal(got, np.asarray(want).reshape(got.shape))
