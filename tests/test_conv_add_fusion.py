"""A QLinearAdd fused into a convolution's stores (compile_conv's ``add``, STORE_ADD): on the
golden engine against the same convolution compiled without it followed by the golden
QLinearAdd, writing nothing but the Add's output; the refusals; and ONNX residual blocks whose
Conv -> Add compiles to one list without a QLINEAR_ADD, bit-exact with onnxruntime."""

from types import SimpleNamespace

import numpy as np
import pytest

from onnx_models import calibration, float_model, quantise
from rvnpu.compiler.conv import (ConvSpec, FeatureMap, SkipAdd, compile_conv,
                                 conv_constant_sizes, run_conv_on_model)
from rvnpu.compiler.gemm import GemmError
from rvnpu.compiler.onnx.layers.add import qlinear_add_constants
from rvnpu.sim.golden.eltwise import qlinear_add_scaled
from rvnpu.sim.golden.engine import EngineModel
from rvnpu.spec.commands import Funct, encode, unpack_status
from rvnpu.spec.config import EngineConfig

from test_conv_compiler import _draw, _requant


CONFIGS = {
    "8x8": EngineConfig(),
    "4x4-small-acc": EngineConfig(rows=4, cols=4, spad_depth=128, acc_depth=32, qp_depth=8,
                                  requant_lanes=2),
    "3x5": EngineConfig(rows=3, cols=5, spad_depth=256, acc_depth=64, qp_depth=16),
}

#: (h, w, cin, cout, kernel, stride, pads, groups, config, numbers, skip_first, relu)
CASES = {
    "resnet-block-16ch": (8, 8, 16, 16, (3, 3), (1, 1), (1, 1, 1, 1), 1, "8x8", "int8",
                          False, False),
    "strided-shortcut": (9, 7, 3, 6, (1, 1), (2, 2), (0, 0, 0, 0), 1, "3x5", "int8",
                         True, True),
    "tiles-beyond-array": (7, 6, 5, 11, (3, 3), (1, 1), (1, 1, 1, 1), 1, "4x4-small-acc",
                           "uint8", True, False),
    "uint8-relu-strided": (10, 9, 4, 7, (3, 3), (2, 1), (1, 1, 1, 1), 1, "3x5", "uint8",
                           False, True),
    "uneven-padding": (6, 8, 2, 9, (2, 3), (1, 2), (0, 1, 1, 1), 1, "8x8", "int8",
                       True, False),
    "one-pixel-os": (3, 3, 8, 12, (3, 3), (1, 1), (0, 0, 0, 0), 1, "8x8", "int8",
                     False, True),
    "depthwise": (6, 6, 8, 8, (3, 3), (1, 1), (1, 1, 1, 1), 8, "8x8", "uint8", True, False),
    "average-over-taps": (4, 4, 5, 5, (4, 4), (1, 1), (0, 0, 0, 0), 5, "8x8", "int8",
                          False, False),
}

NUMBERS = {   # (signed, input zero, weight zero, requant kind)
    "int8": (True, -5, 0, "ort"),
    "uint8": (False, 131, 0, "ort-relu"),
}


def _constants(rng, signed):
    """MLAS's constants for random scales and zero points of a, b and c."""
    lo, hi = (-128, 127) if signed else (0, 255)
    a, b, c = (SimpleNamespace(scale=np.float32(rng.uniform(0.01, 0.05)),
                               zero=int(rng.integers(lo + 40, hi - 40))) for _ in range(3))
    return qlinear_add_constants(a, b, c)


def _case(name):
    h, w, cin, cout, kernel, stride, pads, groups, config, numbers, skip_first, relu = \
        CASES[name]
    rng = np.random.default_rng(sorted(CASES).index(name) + 140)
    signed, in_zero, w_zero, kind = NUMBERS[numbers]
    requant = _requant(rng, kind, cout)
    weights = _draw(rng, (*kernel, cin // groups, cout), True, False)
    if name == "average-over-taps":
        weights = np.ones_like(weights)          # a shared kernel: output-stationary taps
    spec = ConvSpec(weights, rng.integers(-2000, 2000, cout), requant, stride=stride,
                    pad=pads, groups=groups, in_zero=in_zero, weight_zero=w_zero,
                    in_signed=signed, weight_signed=True)
    lo, hi = (-128, 127) if signed else (0, 255)
    zero = 0 if signed else 128     # a ReLU clamps at the output zero point: any will do
    clamp = (zero + 3, hi) if relu else (lo, hi)
    ratio_a, ratio_b, fixed = _constants(rng, signed)
    x_values = _draw(rng, (h, w, cin), signed, False)
    return spec, x_values, (ratio_a, ratio_b, fixed, clamp, signed, skip_first), \
        CONFIGS[config], rng


def _maps(spec, h, w, config, rng):
    """An input with the padding in its border; the output and the skip tensor in buffers of
    the same rows (width and pitch) but their own borders and channel offsets."""
    eb = config.elem_bytes
    top, left, bottom, right = spec.pads
    x = FeatureMap(16, h + top + bottom, w + left + right, spec.cin, h, w, spec.cin, top, left)
    oh, ow = spec.out_size(h, w)
    y = FeatureMap(x.base + x.nbytes(eb) + 7, oh + 1, ow + 2, spec.cout + 2, oh, ow,
                   spec.cout, 1, 1, 1)
    skip = FeatureMap(y.base + y.nbytes(eb) + 9, oh + 3, ow + 2, spec.cout + 2, oh, ow,
                      spec.cout, 2, 0, int(rng.integers(0, 3)))
    return x, y, skip


def _constant_addrs(spec, x, after, config):
    sizes = conv_constant_sizes(spec, config, x.pitch)
    w_addr = after + 3
    return {"weights_addr": w_addr, "qp_addr": w_addr + sizes["weights"] + 5}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_add_is_the_conv_then_the_qlinear_add(name):
    spec, x_values, (ra, rb, fixed, clamp, signed, skip_first), config, rng = _case(name)
    h, w, _ = x_values.shape
    x, y, skip = _maps(spec, h, w, config, rng)
    eb = config.elem_bytes
    addrs = _constant_addrs(spec, x, skip.base + skip.nbytes(eb), config)
    add = SkipAdd(skip, ra, rb, fixed, clamp, signed, skip_first)
    fused = compile_conv(spec, x, y, config=config, add=add, **addrs)
    plain = compile_conv(spec, x, y, config=config, **addrs)
    functs = [f for f, _, _ in fused.commands]
    assert Funct.STORE not in functs and Funct.QLINEAR_ADD not in functs
    assert functs.count(Funct.STORE_ADD) == [f for f, _, _ in plain.commands].count(Funct.STORE)
    assert functs.count(Funct.CONFIG_STORE_ADD) == 3 and functs.count(Funct.CONFIG_STORE_SKIP) == 1
    if name == "one-pixel-os":
        assert "output-stationary" in fused.mapping
    if name == "average-over-taps":
        assert "over the taps" in fused.mapping
    assert "Add fused" in fused.mapping

    skip_values = _draw(rng, (y.h, y.w, y.channels), signed, False)
    memory = np.random.default_rng(5).integers(0, 256, EngineModel(config).memory.size)
    # The convolution alone, then the golden QLinearAdd.
    model = EngineModel(config)
    model.memory[:] = memory
    conv, model = run_conv_on_model(plain, x, x_values, spec, y, config, model)
    assert model.error_count == 0
    a, b = (skip_values, conv) if skip_first else (conv, skip_values)
    want = qlinear_add_scaled(a, b, ra, rb, fixed, clamp)
    assert want.std() > 0, "the output should not be constant"
    if clamp[0] != (-128 if signed else 0):
        assert (want == clamp[0]).any() and (want > clamp[0]).any(), "the ReLU clamps some"
    # The fused program, writing nothing but the output's interior.
    model = EngineModel(config)
    model.memory[:] = memory
    skip.write(model.memory, skip_values, eb, border=0)
    x.write(model.memory, x_values, eb, border=spec.in_zero)
    for at, data in fused.images:
        model.memory[at:at + len(data)] = np.frombuffer(data, np.uint8)
    before = model.memory.copy()
    got, model = run_conv_on_model(fused, x, x_values, spec, y, config, model)
    assert model.error_count == 0
    np.testing.assert_array_equal(got, want)
    changed = np.flatnonzero(model.memory != before)
    assert np.isin(changed, y.interior_addresses(eb)).all()


def test_output_may_be_the_skip_tensor_itself():
    """Offset 0: each STORE_ADD reads its skip rows before it overwrites them."""
    spec, x_values, (ra, rb, fixed, clamp, signed, skip_first), config, rng = \
        _case("resnet-block-16ch")
    h, w, _ = x_values.shape
    x, y, _ = _maps(spec, h, w, config, rng)
    eb = config.elem_bytes
    addrs = _constant_addrs(spec, x, y.base + y.nbytes(eb), config)
    program = compile_conv(spec, x, y, config=config, add=SkipAdd(y, ra, rb, fixed, clamp,
                                                                 signed, skip_first), **addrs)
    skip_values = _draw(rng, (y.h, y.w, y.channels), signed, False)
    model = EngineModel(config)
    y.write(model.memory, skip_values, eb)
    got, model = run_conv_on_model(program, x, x_values, spec, y, config, model)
    plain = compile_conv(spec, x, y, config=config, **addrs)
    conv, _ = run_conv_on_model(plain, x, x_values, spec, y, config)
    a, b = (skip_values, conv) if skip_first else (conv, skip_values)
    np.testing.assert_array_equal(got, qlinear_add_scaled(a, b, ra, rb, fixed, clamp))


def _refusal(config=EngineConfig(), skip=None, pool=None, **add_fields):
    spec = ConvSpec(np.ones((1, 1, 2, 2), np.int64))
    x = FeatureMap(0, 4, 4, 2, 4, 4, 2)
    y = FeatureMap(64, 4, 4, 2, 4, 4, 2)
    fields = dict(ratio_a=0.5, ratio_b=0.25, fixed=1.0, clamp=(-128, 127), signed=True)
    fields.update(add_fields)
    add = SkipAdd(FeatureMap(128, 4, 4, 2, 4, 4, 2) if skip is None else skip, **fields)
    compile_conv(spec, x, y, weights_addr=256, qp_addr=512, config=config, add=add, pool=pool)


@pytest.mark.parametrize("kwargs, message", [
    (dict(pool=(2, 2)), "a max-pool and an Add cannot both be fused"),
    (dict(config=EngineConfig(store_add=False)), r"built without STORE_ADD \(store_add=0"),
    (dict(config=EngineConfig(in_width=16)), "built without STORE_ADD"),
    (dict(skip=FeatureMap(128, 4, 5, 2, 4, 4, 2)), "buffer rows are 5 pixels of 2, the "
                                                   "output's 4 of 2: one offset cannot"),
    (dict(skip=FeatureMap(128, 4, 4, 3, 4, 4, 2)), "buffer rows are 4 pixels of 3"),
    (dict(skip=FeatureMap(128, 4, 4, 2, 4, 4, 1)), "skip tensor is 4x4x1, the output 4x4x2"),
    (dict(skip=FeatureMap(66, 4, 4, 2, 4, 4, 2)), "overlaps the skip tensor"),
    (dict(fixed=float("inf")), "fixed is not a finite float32"),
    (dict(signed=False, clamp=(0, 255)), r"the convolution's outputs \[-128, 127\] are not uint8"),
    (dict(clamp=(-129, 127)), r"clamp \(-129, 127\) is not a range of int8"),
    (dict(clamp=(5, 4)), r"clamp \(5, 4\) is not a range"),
], ids=["pool", "no-store-add", "16-bit", "width", "pitch", "channels", "overlap", "inf",
        "uint8-skip-int8-conv", "clamp-range", "clamp-order"])
def test_refusals_are_one_line_gemm_errors(kwargs, message):
    with pytest.raises(GemmError, match=message) as e:
        _refusal(**kwargs)
    assert "\n" not in str(e.value)


# -- ONNX residual blocks -------------------------------------------------------------------------

def _residual_model(kind):
    """``(float ModelProto, input shape)``: ``block``, a residual block whose second Conv's
    output is the Add's first operand and a ReLU follows, then a strided stack whose 1x1
    shortcut Conv (the layer before its Add) takes the Add's second operand; ``input_skip``,
    a Conv added to the chip input (a skip the offset cannot reach: the Add stays separate)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(11)
    nodes, inits = [], []

    def conv(x, y, cin, cout, k, stride=1):
        w = (rng.normal(size=(cout, cin, k, k)) / np.sqrt(cin * k * k)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w_{y}"))
        inits.append(numpy_helper.from_array((rng.normal(size=cout) * 0.1).astype(np.float32),
                                             f"b_{y}"))
        nodes.append(helper.make_node("Conv", [x, f"w_{y}", f"b_{y}"], [y], name=y,
                                      pads=[k // 2] * 4, strides=[stride] * 2))

    def op(kind_, inputs, y):
        nodes.append(helper.make_node(kind_, inputs, [y], name=y))

    if kind == "block":
        shape, out = [1, 3, 8, 8], [1, 12, 4, 4]
        conv("x", "c0", 3, 8, 3)
        op("Relu", ["c0"], "h")
        conv("h", "c1", 8, 8, 3)
        op("Relu", ["c1"], "r1")
        conv("r1", "c2", 8, 8, 3)
        op("Add", ["c2", "h"], "s")
        op("Relu", ["s"], "s1")
        conv("s1", "c3", 8, 12, 3, stride=2)
        op("Relu", ["c3"], "r3")
        conv("r3", "c4", 12, 12, 3)
        conv("s1", "sc", 8, 12, 1, stride=2)
        op("Add", ["c4", "sc"], "y")
    else:
        shape, out = [1, 4, 6, 6], [1, 4, 6, 6]
        conv("x", "c0", 4, 4, 3)
        op("Add", ["c0", "x"], "y")
    graph = helper.make_graph(
        nodes, kind, [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, shape


def _compiled(tmp_path, kind, fmt, activations):
    from rvnpu.compiler.onnx.importer import import_model

    if kind == "add":
        model, shape = float_model("add", 0)     # Add(ar, conv): the skip is operand a
    else:
        model, shape = _residual_model(kind)
    path = quantise(model, shape, tmp_path / f"{kind}.onnx", fmt=fmt, per_channel=True,
                    activations=activations, seed=0)
    return path, import_model(path), shape


def _fused_adds(ir, steps):
    """Indices of the Add layers fused into the convolution before them."""
    from rvnpu.compiler.onnx.layers import AddLayer

    adds = [i for i, layer in enumerate(ir.layers) if isinstance(layer, AddLayer)]
    return adds, [i for i in adds if i in steps and not steps[i].commands
                  and Funct.STORE_ADD in [f for f, _, _ in steps[i - 1].commands]]


def _bit_exact_on_golden_engine(path, ir, shape, config):
    from rvnpu.compiler.onnx.golden_chip import run_on_golden_engine
    from rvnpu.compiler.onnx.planner import plan_memory
    from rvnpu.compiler.onnx.reference import apply_post, quantize_input, run_layers
    from rvnpu.flows.model import ort_run, ort_session, same

    plan, session = plan_memory(ir, config), ort_session(path)
    for x in calibration(shape, 4, 3, scale=2.0):
        q = quantize_input(ir, x)
        got, _ = run_on_golden_engine(ir, plan, config, q)
        want = run_layers(ir, q)[ir.chip_output]
        np.testing.assert_array_equal(got, np.asarray(want).reshape(got.shape))
        assert same(apply_post(ir, got.reshape(np.shape(want))), ort_run(session, ir, x))


def _steps(ir, config):
    from rvnpu.compiler.onnx.codegen import plan_lists
    from rvnpu.compiler.onnx.planner import plan_memory

    steps, _, _ = plan_lists(ir, plan_memory(ir, config), config)
    return steps


@pytest.mark.parametrize("config", [EngineConfig(), EngineConfig(rows=4, cols=4),
                                    EngineConfig(post_unit=False)],
                         ids=["8x8", "4x4", "no-post"])
@pytest.mark.parametrize("kind, fmt, activations", [
    ("block", "QDQ", "QInt8"), ("block", "QOperator", "QUInt8"), ("add", "QDQ", "QUInt8")])
def test_onnx_residual_add_is_fused_into_the_conv(tmp_path, config, kind, fmt, activations):
    path, ir, shape = _compiled(tmp_path, kind, fmt, activations)
    steps = _steps(ir, config)
    adds, fused = _fused_adds(ir, steps)
    assert adds and fused == adds, "every residual Add fused into its convolution"
    functs = [f for step in steps.values() for f, _, _ in step.commands]
    assert Funct.QLINEAR_ADD not in functs
    _bit_exact_on_golden_engine(path, ir, shape, config)


@pytest.mark.parametrize("config", [EngineConfig(store_add=False),
                                    EngineConfig(store_add=False, post_unit=False)],
                         ids=["post-unit", "firmware"])
def test_engine_without_store_add_adds_separately(tmp_path, config):
    path, ir, shape = _compiled(tmp_path, "block", "QDQ", "QInt8")
    steps = _steps(ir, config)
    adds, fused = _fused_adds(ir, steps)
    assert adds and not fused
    functs = [f for step in steps.values() for f, _, _ in step.commands]
    assert Funct.STORE_ADD not in functs
    assert (Funct.QLINEAR_ADD in functs) == config.post_unit
    _bit_exact_on_golden_engine(path, ir, shape, config)


def test_skip_in_the_chip_input_is_added_separately(tmp_path):
    """The chip input and the arena are placed by the linker: no fixed offset between them."""
    config = EngineConfig()
    path, ir, shape = _compiled(tmp_path, "input_skip", "QDQ", "QInt8")
    from rvnpu.compiler.onnx.engine_lists import fusable_add
    assert fusable_add(ir, 0) is not None      # by its shape it could fuse
    steps = _steps(ir, config)
    adds, fused = _fused_adds(ir, steps)
    assert adds and not fused
    assert Funct.QLINEAR_ADD in [f for step in steps.values() for f, _, _ in step.commands]
    _bit_exact_on_golden_engine(path, ir, shape, config)


# -- The RTL -------------------------------------------------------------------------------------

def test_rtl_runs_a_compiled_conv_with_its_add_as_the_golden_model():
    """A small compiled conv + Add (two output tiles, strided runs, a ReLU clamp, the skip as
    operand a) on the engine's RTL in Amaranth's simulator: memory equal to the golden
    model's byte for byte, the output equal to the conv then the golden QLinearAdd."""
    from test_engine_fetch import run_golden, run_rtl

    config = EngineConfig(rows=4, cols=4, spad_depth=64, acc_depth=32, qp_depth=8,
                          bus_width=32, mem_bytes=1 << 11)
    rng = np.random.default_rng(1414)
    spec = ConvSpec(_draw(rng, (3, 3, 3, 6), True, False), rng.integers(-2000, 2000, 6),
                    _requant(rng, "ort", 6), pad=1, in_zero=-5)
    x_values = _draw(rng, (4, 5, 3), True, False)
    x, y, skip = _maps(spec, 4, 5, config, rng)
    ra, rb, fixed = _constants(rng, True)
    add = SkipAdd(skip, ra, rb, fixed, (-120, 127), True, skip_first=True)
    addrs = _constant_addrs(spec, x, skip.base + skip.nbytes(), config)
    program = compile_conv(spec, x, y, config=config, add=add, **addrs)
    skip_values = _draw(rng, (y.h, y.w, y.channels), True, False)
    memory = np.zeros(config.mem_bytes, np.uint8)
    x.write(memory, x_values, border=spec.in_zero)
    skip.write(memory, skip_values)
    image = [(0, memory.tobytes())] + program.images
    commands = program.commands + [encode(Funct.FENCE)]
    got, answers, _ = run_rtl(config, image, commands)
    want, want_answers = run_golden(config, image, commands)
    assert answers == want_answers and unpack_status(answers[-1])["error_count"] == 0
    np.testing.assert_array_equal(got, want)
    conv, _ = run_conv_on_model(compile_conv(spec, x, y, config=config, **addrs), x, x_values,
                                spec, y, config)
    np.testing.assert_array_equal(y.read(got), qlinear_add_scaled(skip_values, conv, ra, rb,
                                                                  fixed, (-120, 127)))


@pytest.mark.parametrize("kind", ["block", "add", "resnet8", "cnn"])
def test_memory_plan_keeps_a_fused_output_apart_from_what_its_conv_reads(tmp_path, kind):
    """The fused layer's output is written while the convolution runs: it must not share
    bytes with the convolution's input nor the skip tensor (max-pools too)."""
    from rvnpu.compiler.onnx.engine_lists import fused_after
    from rvnpu.compiler.onnx.importer import import_model
    from rvnpu.compiler.onnx.planner import plan_memory

    if kind == "resnet8":
        from rvnpu.bench.model_zoo import quantised_model
        _, path = quantised_model("resnet8", tmp_path, seed=0)
        ir = import_model(path)
    elif kind == "cnn":
        model, shape = float_model("cnn", 0)
        ir = import_model(quantise(model, shape, tmp_path / "cnn.onnx", seed=0))
    else:
        _, ir, _ = _compiled(tmp_path, kind, "QDQ", "QInt8")
    plan = plan_memory(ir, EngineConfig())
    chip_input = ir.storage(ir.chip_input)

    def span(name):
        name = ir.storage(name)
        return plan.offsets[name], plan.offsets[name] + ir.tensors[name].nbytes

    checked = 0
    for i, layer in enumerate(ir.layers):
        fused = fused_after(ir, i)
        if fused is None:
            continue
        assert plan.lifetimes[ir.storage(fused.output)][0] <= i, "live while layer i runs"
        checked += 1
        lo, hi = span(fused.output)
        for name in set(layer.inputs) | set(fused.inputs):
            if ir.storage(name) in (chip_input, ir.storage(layer.output)):
                continue
            a, b = span(name)
            assert hi <= a or b <= lo, f"layer {i}'s fused output shares bytes with {name}"
    assert checked
