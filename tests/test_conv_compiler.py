"""compile_conv: convolutions read straight from padded NHWC buffers, on the golden engine,
against the golden convolution (and that against the direct loops)."""

import dataclasses
import itertools

import numpy as np
import pytest

from rvnpu.spec.commands import Funct
from rvnpu.spec.config import EngineConfig
from rvnpu.sim.golden.conv import conv2d, im2col
from rvnpu.sim.golden.engine import EngineModel
from rvnpu.sim.golden.gemm import Requant
from rvnpu.sim.golden.requant import tflite_params_for_scale
from rvnpu.compiler.gemm import GemmError
from rvnpu.compiler.conv import (ConvSpec, FeatureMap, auto_pack, compile_conv,
                                 conv_constant_sizes, conv_constants, run_conv_on_model)
from rvnpu.bench.depthwise import measure_conv


def direct_conv_sums(x, weights, stride, pads, dilation, groups, in_zero, weight_zero):
    """The int sums of a grouped, dilated, padded convolution, by the definition."""
    h, w, cin = x.shape
    kh, kw, cin_g, cout = weights.shape
    cout_g = cout // groups
    (sh, sw), (dh, dw), (top, left, bottom, right) = stride, dilation, pads
    out_h = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    out_w = (w + left + right - dw * (kw - 1) - 1) // sw + 1
    sums = np.zeros((out_h, out_w, cout), np.int64)
    for oy, ox, o in itertools.product(range(out_h), range(out_w), range(cout)):
        g = o // cout_g
        total = 0
        for ky, kx, c in itertools.product(range(kh), range(kw), range(cin_g)):
            y, x_ = oy * sh + ky * dh - top, ox * sw + kx * dw - left
            inside = 0 <= y < h and 0 <= x_ < w
            value = x[y, x_, g * cin_g + c] if inside else in_zero
            total += (int(value) - in_zero) * (int(weights[ky, kx, c, o]) - weight_zero)
        sums[oy, ox, o] = total
    return sums


@pytest.mark.parametrize("case", [
    # (h, w, cin, cout, kernel, stride, pads, dilation, groups)
    (6, 7, 4, 6, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2),
    (7, 6, 3, 3, (3, 2), (2, 1), (0, 2, 1, 0), (2, 1), 3),
    (8, 5, 2, 4, (2, 2), (1, 2), (1, 0, 0, 1), (3, 2), 1),
], ids=str)
def test_golden_grouped_dilated_conv_is_the_direct_convolution(case):
    h, w, cin, cout, kernel, stride, pads, dilation, groups = case
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (h, w, cin))
    weights = rng.integers(-128, 128, (*kernel, cin // groups, cout))
    got = conv2d(x, weights, requant=Requant(mode=None), stride=stride, pad=pads,
                 dilation=dilation, groups=groups, in_zero=29, weight_zero=-6)
    want = direct_conv_sums(x, weights, stride, pads, dilation, groups, 29, -6)
    np.testing.assert_array_equal(got, want)


def test_im2col_dilation_and_asymmetric_padding():
    x = np.arange(1 * 4 * 1).reshape(1, 4, 1)
    patches, out = im2col(x, (1, 2), stride=1, pad=(0, 1, 0, 0), zero=-9, dilation=2)
    assert out == (1, 3)
    assert patches.tolist() == [[-9, 1], [0, 2], [1, 3]]


# -- compile_conv on the golden engine ------------------------------------------------------------

CONFIGS = {
    "8x8": EngineConfig(),
    "4x4": EngineConfig(rows=4, cols=4),
    "3x5": EngineConfig(rows=3, cols=5),
    "small": EngineConfig(rows=4, cols=4, spad_depth=16, acc_depth=16, qp_depth=4),
}

#: (h, w, cin, cout, kernel, stride, pads (top, left, bottom, right), dilation, groups)
SHAPES = {
    "3x3-pad1": (7, 6, 5, 6, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "1x1": (5, 4, 9, 7, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "stride2-asym": (9, 8, 3, 4, (3, 3), (2, 2), (0, 1, 2, 0), (1, 1), 1),
    "rect-stride": (8, 9, 4, 5, (2, 3), (1, 2), (1, 0, 0, 2), (1, 1), 1),
    "dilated": (8, 8, 3, 4, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 1),
    "dilated-asym": (9, 7, 2, 3, (2, 3), (2, 1), (1, 3, 0, 1), (3, 2), 1),
    "grouped": (6, 6, 8, 6, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2),
    "grouped-small": (5, 7, 6, 9, (3, 1), (1, 1), (1, 0, 1, 0), (1, 1), 3),
    "depthwise": (7, 7, 10, 10, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 10),
    "depthwise-s2": (8, 9, 9, 9, (3, 3), (2, 2), (0, 0, 1, 1), (1, 1), 9),
    "depthwise-x2": (6, 5, 5, 10, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 5),
    "depthwise-dil": (8, 8, 6, 6, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 6),
    # Few output pixels: these run output-stationary where the engine has it.
    "fc": (1, 1, 40, 19, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "fc-batch3": (1, 3, 37, 11, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "3x3-one-pixel": (3, 3, 8, 5, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    # More pixels than array rows, many channels: output-stationary, a block of rows at once.
    "3x3-map-64ch": (3, 3, 64, 48, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "4x4-3x3-pad1": (4, 4, 16, 20, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
}

#: (input signed, in zero, weight signed, weight zero, requant kind, extreme values)
NUMBERS = {
    "int8": (True, -5, True, 0, "tflite", False),
    "uint8-ort": (False, 131, False, 120, "ort", False),
    "extremes": (True, -128, True, 127, "tflite", True),
    "uint8-ends": (False, 255, True, -128, "ort-relu", True),
}


def _draw(rng, shape, signed, extreme):
    lo, hi = (-128, 127) if signed else (0, 255)
    if extreme:
        return rng.choice([lo, hi, lo + 1, hi - 1, 0 if signed else 128], shape)
    return rng.integers(lo, hi + 1, shape)


def _requant(rng, kind, cout):
    scale = rng.uniform(0.0005, 0.02, cout)
    if kind == "tflite":
        return Requant("tflite", **tflite_params_for_scale(scale), out_zero=7,
                       clamp_min=-128, clamp_max=127)
    clamp = (0, 255) if kind == "ort-relu" else (-128, 127)
    return Requant("ort", scale=scale.astype(np.float32), out_zero=3 if clamp[0] == 0 else -2,
                   clamp_min=clamp[0], clamp_max=clamp[1])


def _maps(rng, spec, h, w, config, *, slice_in=False, slice_out=True):
    """An input buffer with at least the border the padding needs (sometimes more) and an
    output buffer with a border of its own, both sometimes channel slices of wider pixels."""
    eb = config.elem_bytes
    top, left, bottom, right = (p + int(rng.integers(0, 2)) for p in spec.pads)
    extra_in = int(rng.integers(1, 3)) if slice_in else 0
    c0 = int(rng.integers(0, extra_in + 1))
    x = FeatureMap(int(rng.integers(0, 40)), h + top + bottom, w + left + right,
                   spec.cin + extra_in, h, w, spec.cin, top, left, c0)
    oh, ow = spec.out_size(h, w)
    extra_out = int(rng.integers(1, 4)) if slice_out else 0
    y = FeatureMap(x.base + x.nbytes(eb) + int(rng.integers(0, 9)), oh + 2, ow + 3,
                   spec.cout + extra_out, oh, ow, spec.cout, 1, 2,
                   int(rng.integers(0, extra_out + 1)))
    return x, y


def _run(spec, x_values, x, y, config, pack=None):
    """Compile and run; check the result and that only the output's interior changed."""
    sizes = conv_constant_sizes(spec, config, x.pitch, pack)
    w_addr = y.base + y.nbytes(config.elem_bytes) + 5
    q_addr = w_addr + sizes["weights"] + 3
    program = compile_conv(spec, x, y, weights_addr=w_addr, qp_addr=q_addr, config=config,
                           pack=pack)
    constants = conv_constants(spec, config, x.pitch, pack)
    assert program.images == [(w_addr, constants["weights"]), (q_addr, constants["qp"])]
    assert [len(v) for v in constants.values()] == list(sizes.values())
    model = EngineModel(config)
    model.memory[:] = np.random.default_rng(99).integers(0, 256, model.memory.size)
    x.write(model.memory, x_values, config.elem_bytes, border=spec.in_zero)
    for addr, data in program.images:
        model.memory[addr:addr + len(data)] = np.frombuffer(data, np.uint8)
    before = model.memory.copy()
    got, model = run_conv_on_model(program, x, x_values, spec, y, config, model)
    assert model.error_code == 0 and model.error_count == 0
    changed = np.flatnonzero(model.memory != before)
    assert np.isin(changed, y.interior_addresses(config.elem_bytes)).all(), \
        "a byte outside the output's interior was written"
    return got, program


@pytest.mark.parametrize("config_name", CONFIGS)
@pytest.mark.parametrize("shape_name", SHAPES)
def test_compile_conv_matches_golden(config_name, shape_name):
    config = CONFIGS[config_name]
    h, w, cin, cout, kernel, stride, pads, dilation, groups = SHAPES[shape_name]
    seed = sorted(SHAPES).index(shape_name) * 10 + sorted(CONFIGS).index(config_name)
    rng = np.random.default_rng(seed)
    number = list(NUMBERS)[seed % len(NUMBERS)]
    in_signed, in_zero, w_signed, w_zero, kind, extreme = NUMBERS[number]
    x_values = _draw(rng, (h, w, cin), in_signed, extreme)
    weights = _draw(rng, (*kernel, cin // groups, cout), w_signed, extreme)
    bias = rng.integers(-(1 << 14), 1 << 14, cout)
    spec = ConvSpec(weights, bias, _requant(rng, kind, cout), stride=stride, pad=pads,
                    dilation=dilation, groups=groups, in_zero=in_zero, weight_zero=w_zero,
                    in_signed=in_signed, weight_signed=w_signed)
    x, y = _maps(rng, spec, h, w, config, slice_in=seed % 3 == 0)
    got, _ = _run(spec, x_values, x, y, config)
    want = conv2d(x_values, weights, bias, spec.requant, stride=stride, pad=pads,
                  dilation=dilation, groups=groups, in_zero=in_zero, weight_zero=w_zero)
    np.testing.assert_array_equal(got, want, err_msg=f"{number} on {config_name}")


@pytest.mark.parametrize("shape_name, config, stationary", [
    ("fc", EngineConfig(), True),
    ("fc-batch3", EngineConfig(rows=3, cols=5), True),
    ("3x3-one-pixel", EngineConfig(rows=4, cols=4), True),
    ("fc", EngineConfig(dataflow="ws"), False),
    ("fc", CONFIGS["small"], False),
    ("1x1", EngineConfig(), False),
    ("3x3-map-64ch", EngineConfig(), True),
    ("4x4-3x3-pad1", EngineConfig(), True),
    ("4x4-3x3-pad1", EngineConfig(rows=4, cols=4), True),
    ("3x3-map-64ch", EngineConfig(dataflow="ws"), False),
])
def test_few_output_pixels_run_output_stationary(shape_name, config, stationary):
    """A layer of one array block of pixels streams its weights (output-stationary) where the
    engine has that dataflow and room for the strips; the result is the same either way."""
    h, w, cin, cout, kernel, stride, pads, dilation, groups = SHAPES[shape_name]
    rng = np.random.default_rng(7)
    x_values = rng.integers(-128, 128, (h, w, cin))
    weights = rng.integers(-128, 128, (*kernel, cin, cout))
    spec = ConvSpec(weights, rng.integers(-999, 999, cout), _requant(rng, "tflite", cout),
                    stride=stride, pad=pads, in_zero=3, weight_zero=-2)
    x, y = _maps(rng, spec, h, w, config)
    got, program = _run(spec, x_values, x, y, config)
    np.testing.assert_array_equal(got, conv2d(x_values, weights, spec.bias, spec.requant,
                                              stride=stride, pad=pads, in_zero=3,
                                              weight_zero=-2))
    assert ("output-stationary" in program.mapping) == stationary
    computes = [op for op in program.commands if op[0] == Funct.COMPUTE]
    if stationary:      # one COMPUTE an output tile and pixel block: the reduction in one go
        blocks = -(-int(np.prod(spec.out_size(h, w))) // config.rows)
        assert len(computes) == blocks * -(-cout // config.cols)


@pytest.mark.parametrize("config_name", CONFIGS)
@pytest.mark.parametrize("shape_name", SHAPES)
def test_padding_from_a_zero_point_row_matches_golden(config_name, shape_name):
    """A plain input (no border, as every tensor but the chip's input is stored): padded taps
    load the zero-point row, and nothing outside the output's interior is written."""
    config = CONFIGS[config_name]
    h, w, cin, cout, kernel, stride, pads, dilation, groups = SHAPES[shape_name]
    seed = 1000 + sorted(SHAPES).index(shape_name) * 10 + sorted(CONFIGS).index(config_name)
    rng = np.random.default_rng(seed)
    number = list(NUMBERS)[seed % len(NUMBERS)]
    in_signed, in_zero, w_signed, w_zero, kind, extreme = NUMBERS[number]
    x_values = _draw(rng, (h, w, cin), in_signed, extreme)
    weights = _draw(rng, (*kernel, cin // groups, cout), w_signed, extreme)
    spec = ConvSpec(weights, rng.integers(-(1 << 14), 1 << 14, cout),
                    _requant(rng, kind, cout), stride=stride, pad=pads, dilation=dilation,
                    groups=groups, in_zero=in_zero, weight_zero=w_zero, in_signed=in_signed,
                    weight_signed=w_signed)
    eb = config.elem_bytes
    x = FeatureMap(int(rng.integers(0, 40)), h, w, cin, h, w, cin)
    oh, ow = spec.out_size(h, w)
    y = FeatureMap(x.base + x.nbytes(eb) + 3, oh, ow, cout, oh, ow, cout)
    sizes = conv_constant_sizes(spec, config, cin, padded=False, in_width=w)
    assert (sizes["pad"] > 0) == any(spec.pads)
    w_addr = y.base + y.nbytes(eb) + 5
    q_addr = w_addr + sizes["weights"] + 3
    z_addr = q_addr + sizes["qp"] + 1
    program = compile_conv(spec, x, y, weights_addr=w_addr, qp_addr=q_addr, pad_addr=z_addr,
                           config=config)
    model = EngineModel(config)
    model.memory[:] = np.random.default_rng(7).integers(0, 256, model.memory.size)
    x.write(model.memory, x_values, eb)
    for addr, data in program.images:
        model.memory[addr:addr + len(data)] = np.frombuffer(data, np.uint8)
    before = model.memory.copy()
    model.run(program.commands)
    assert model.error_code == 0 and model.error_count == 0
    changed = np.flatnonzero(model.memory != before)
    assert np.isin(changed, y.interior_addresses(eb)).all()
    configs = [f for f, *_ in program.commands if f == Funct.CONFIG_LOAD]
    loads = [f for f, *_ in program.commands if f == Funct.LOAD]
    if config_name == "8x8":
        # Weights resident: the stride changes only for the QP table and each pass's weights,
        # never between a run and its zero-point rows.
        passes = int(program.mapping.split()[0])
        assert len(configs) <= 3 + 2 * passes, "zero-point rows load at the runs' stride"
    got = y.read(model.memory, eb, signed=spec.requant.clamp_min < 0)
    want = conv2d(x_values, weights, spec.bias, spec.requant, stride=stride, pad=pads,
                  dilation=dilation, groups=groups, in_zero=in_zero, weight_zero=w_zero)
    np.testing.assert_array_equal(got, want, err_msg=f"{number} on {config_name}")


def test_a_borderless_input_without_a_zero_point_row_is_refused():
    spec = ConvSpec(np.ones((3, 3, 2, 2), np.int64), pad=1,
                    requant=Requant("ort", scale=np.float32(0.1)))
    x = FeatureMap(0, 5, 5, 2, 5, 5, 2)
    y = FeatureMap(100, 5, 5, 2, 5, 5, 2)
    with pytest.raises(GemmError, match="border"):
        compile_conv(spec, x, y, weights_addr=300, qp_addr=600)


@pytest.mark.parametrize("in_width", [4, 16])
def test_compile_conv_other_element_widths(in_width):
    config = EngineConfig(rows=4, cols=4, in_width=in_width, acc_width=32)
    rng = np.random.default_rng(in_width)
    lo, hi = -(1 << (in_width - 1)), (1 << (in_width - 1)) - 1
    x_values = rng.integers(lo, hi + 1, (6, 5, 3))
    weights = rng.integers(lo, hi + 1, (3, 3, 3, 5))
    requant = Requant("ort", scale=np.float32(0.5 ** (in_width + 2)), clamp_min=lo,
                      clamp_max=min(hi, (1 << 15) - 1))
    spec = ConvSpec(weights, rng.integers(-99, 99, 5), requant, pad=(1, 0, 1, 2), in_zero=lo,
                    weight_zero=hi)
    x, y = _maps(rng, spec, 6, 5, config)
    got, _ = _run(spec, x_values, x, y, config)
    want = conv2d(x_values, weights, spec.bias, requant, pad=(1, 0, 1, 2), in_zero=lo,
                  weight_zero=hi)
    np.testing.assert_array_equal(got, want)


def test_depthwise_naive_and_packed_mappings_agree_and_packing_saves_steps():
    config = EngineConfig()
    rng = np.random.default_rng(5)
    x_values = rng.integers(-128, 128, (6, 6, 12))
    spec = ConvSpec(rng.integers(-128, 128, (3, 3, 1, 12)), rng.integers(-500, 500, 12),
                    Requant("ort", scale=np.float32(0.01)), pad=1, groups=12, in_zero=3)
    assert auto_pack(spec, config) == 8
    x, y = _maps(rng, spec, 6, 6, config)
    naive, naive_program = _run(spec, x_values, x, y, config, pack=1)
    packed, packed_program = _run(spec, x_values, x, y, config)
    np.testing.assert_array_equal(naive, packed)
    computes = [sum(1 for f, *_ in p.commands if f == 0x10)
                for p in (naive_program, packed_program)]
    assert computes == [12 * 9, 2 * 9]


def test_bench_measures_packing_better_than_naive():
    config = EngineConfig(rows=4, cols=4)
    naive, packed = (measure_conv("dw", 6, 6, 8, 8, groups=8, pack=pack, config=config)
                     for pack in (1, None))
    assert naive["macs"] == packed["macs"] == 6 * 6 * 8 * 9
    assert naive["steps_util"] == pytest.approx(1 / 16)
    assert packed["steps_util"] == pytest.approx(4 / 16)


# -- refusals -------------------------------------------------------------------------------------

def _simple(**changes):
    spec = dict(weights=np.ones((3, 3, 2, 4), np.int64), pad=1)
    spec.update(changes)
    return ConvSpec(**spec)


def _fits(spec, h=5, w=5):
    oh, ow = spec.out_size(h, w)
    t, l, b, r = spec.pads
    x = FeatureMap(0, h + t + b, w + l + r, spec.cin, h, w, spec.cin, t, l)
    y = FeatureMap(1000, max(oh, 1), max(ow, 1), spec.cout, max(oh, 1), max(ow, 1), spec.cout)
    return x, y


@pytest.mark.parametrize("label, make, match", [
    ("kernel larger than padded input",
     lambda: (_simple(pad=0), FeatureMap(0, 2, 5, 2, 2, 5, 2), FeatureMap(900, 1, 3, 4, 1, 3, 4),
              EngineConfig()), "does not fit the 2x5 input"),
    ("no border above", lambda: (_simple(), FeatureMap(0, 6, 7, 2, 5, 5, 2, 0, 1),
                                 _fits(_simple())[1], EngineConfig()),
     "0 border pixel\\(s\\) above the interior; the padding needs 1"),
    ("thin right border", lambda: (_simple(pad=(0, 0, 0, 2)), FeatureMap(0, 5, 6, 2, 5, 5, 2),
                                   FeatureMap(900, 3, 5, 4, 3, 5, 4), EngineConfig()),
     "1 border pixel\\(s\\) right of the interior; the padding needs 2"),
    ("no weight-stationary", lambda: (_simple(), *_fits(_simple()), EngineConfig(dataflow="os")),
     "weight-stationary"),
    ("raw output", lambda: (_simple(requant=Requant(None)), *_fits(_simple()), EngineConfig()),
     "requant mode"),
    ("no requantisation", lambda: (_simple(), *_fits(_simple()),
                                   EngineConfig(requant_modes="none")), "without tflite"),
    ("channels", lambda: (_simple(), FeatureMap(0, 7, 7, 3, 5, 5, 3, 1, 1),
                          _fits(_simple())[1], EngineConfig()), "maps have 3 and 4"),
    ("output size", lambda: (_simple(), _fits(_simple())[0], FeatureMap(900, 4, 5, 4, 4, 5, 4),
                             EngineConfig()), "output map is 4x5"),
    ("weights range", lambda: (_simple(weights=np.full((1, 1, 2, 2), 300)),
                               *_fits(_simple(weights=np.ones((1, 1, 2, 2)))), EngineConfig()),
     "weights must be signed 8-bit"),
    ("zero point", lambda: (_simple(in_zero=200), *_fits(_simple()), EngineConfig()),
     "input zero point 200"),
    ("groups", lambda: (_simple(groups=3), *_fits(_simple()), EngineConfig()),
     "do not split into 3 groups"),
    ("interior outside buffer", lambda: (_simple(), FeatureMap(0, 6, 7, 2, 5, 5, 2, 2, 1),
                                         _fits(_simple())[1], EngineConfig()),
     "does not fit a 6x7x2 buffer"),
    ("buffer outside memory", lambda: (_simple(), FeatureMap(65500, 7, 7, 2, 5, 5, 2, 1, 1),
                                       _fits(_simple())[1], EngineConfig()),
     "memory window"),
])
def test_compile_conv_refusals(label, make, match):
    with pytest.raises(GemmError, match=match) as info:
        spec, x, y, config = make()
        compile_conv(spec, x, y, weights_addr=2000, qp_addr=3000, config=config)
    assert "\n" not in str(info.value)


def test_constants_must_fit_memory():
    spec = _simple()
    x, y = _fits(spec)
    with pytest.raises(GemmError, match="weights constant"):
        compile_conv(spec, x, y, weights_addr=65530, qp_addr=3000)


#: (h, w, channels, kernel, stride, pads, dilation): depthwise layers whose channels share one
#: kernel (average pools), over fewer output pixels than taps.
SHARED_KERNEL_SHAPES = {
    "global-25x5": (25, 5, 64, (25, 5), (1, 1), (0, 0, 0, 0), (1, 1)),
    "global-odd-channels": (4, 6, 11, (4, 6), (1, 1), (0, 0, 0, 0), (1, 1)),
    "pool-3x3-s3": (6, 6, 9, (3, 3), (3, 3), (0, 0, 0, 0), (1, 1)),
    "padded-dilated": (5, 7, 6, (3, 3), (2, 2), (1, 1, 1, 1), (2, 2)),
    "long-window": (40, 30, 3, (40, 30), (1, 1), (0, 0, 0, 0), (1, 1)),
}


@pytest.mark.parametrize("config_name", ["8x8", "4x4", "3x5"])
@pytest.mark.parametrize("shape_name", SHARED_KERNEL_SHAPES)
def test_shared_kernel_depthwise_runs_output_stationary_over_its_taps(config_name, shape_name):
    """A depthwise convolution whose channels share one kernel, over fewer output pixels than
    taps, streams its taps through the array (one COMPUTE a pixel and pass, not one a tap) and
    equals the golden convolution."""
    # Room for the diagonal tiles the weight-stationary mapping would load, kept beside.
    config = dataclasses.replace(CONFIGS[config_name], mem_bytes=1 << 18)
    h, w, ch, kernel, stride, pads, dilation = SHARED_KERNEL_SHAPES[shape_name]
    seed = 500 + sorted(SHARED_KERNEL_SHAPES).index(shape_name) * 3 + \
        ["8x8", "4x4", "3x5"].index(config_name)
    rng = np.random.default_rng(seed)
    number = list(NUMBERS)[seed % len(NUMBERS)]
    in_signed, in_zero, w_signed, w_zero, kind, extreme = NUMBERS[number]
    x_values = _draw(rng, (h, w, ch), in_signed, extreme)
    kernel_values = _draw(rng, (*kernel, 1, 1), w_signed, extreme)
    weights = np.repeat(kernel_values, ch, axis=3)
    bias = rng.integers(-(1 << 14), 1 << 14, ch)
    spec = ConvSpec(weights, bias, _requant(rng, kind, ch), stride=stride, pad=pads,
                    dilation=dilation, groups=ch, in_zero=in_zero, weight_zero=w_zero,
                    in_signed=in_signed, weight_signed=w_signed)
    x, y = _maps(rng, spec, h, w, config, slice_in=seed % 2 == 0)
    got, program = _run(spec, x_values, x, y, config)
    want = conv2d(x_values, weights, bias, spec.requant, stride=stride, pad=pads,
                  dilation=dilation, groups=ch, in_zero=in_zero, weight_zero=w_zero)
    np.testing.assert_array_equal(got, want, err_msg=f"{number} on {config_name}")
    assert "over the taps" in program.mapping
    oh, ow = spec.out_size(h, w)
    computes = [op for op in program.commands if op[0] == Funct.COMPUTE]
    passes = -(-ch // auto_pack(spec, config))
    assert len(computes) == passes * oh * ow * -(-kernel[0] * kernel[1] // 1016)


def test_channels_with_their_own_kernels_keep_the_diagonal_mapping():
    """Only a kernel every channel shares is a row of A; a true depthwise kernel is not."""
    rng = np.random.default_rng(41)
    weights = rng.integers(-128, 128, (5, 5, 1, 8))
    spec = ConvSpec(weights, None, _requant(rng, "tflite", 8), groups=8, in_zero=1)
    x_values = rng.integers(-128, 128, (5, 5, 8))
    x, y = _maps(rng, spec, 5, 5, EngineConfig())
    got, program = _run(spec, x_values, x, y, EngineConfig())
    assert "over the taps" not in program.mapping
    np.testing.assert_array_equal(got, conv2d(x_values, weights, None, spec.requant,
                                              groups=8, in_zero=1))


#: (config, h, w, cin, cout, kernel, pads, dilation, groups, stride): layers taller than one
#: block of input strips, so several blocks (the last one shorter) each load their strips.
STRIP_CASES = {
    "3x3-16ch": (EngineConfig(mem_bytes=1 << 17), 40, 30, 16, 12, (3, 3), (1, 1, 1, 1),
                 (1, 1), 1, 1),
    "depthwise-dil": (EngineConfig(rows=4, cols=4, spad_depth=512, acc_depth=128), 23, 9, 7, 7,
                      (3, 2), (2, 1, 2, 1), (2, 1), 7, 1),
    "grouped-5x1": (EngineConfig(rows=3, cols=5, spad_depth=512, acc_depth=64), 19, 6, 6, 9,
                    (5, 1), (2, 0, 2, 0), (1, 1), 3, 1),
    # Stride 2 down the rows: even and odd kernel rows read strips of their own.
    "depthwise-s2": (EngineConfig(acc_depth=128, mem_bytes=1 << 17), 57, 20, 24, 24, (3, 3),
                     (0, 0, 1, 1), (1, 1), 24, (2, 2)),
    "10x4-s2-1ch": (EngineConfig(acc_depth=64), 49, 10, 1, 16, (10, 4), (5, 1, 5, 1), (1, 1),
                    1, 2),
    "dilated-s2": (EngineConfig(rows=4, cols=4, spad_depth=2048, acc_depth=128), 30, 7, 5, 6,
                   (4, 3), (3, 1, 3, 1), (3, 1), 1, (2, 1)),
}


def _a_rows_loaded(program):
    from rvnpu.spec.commands import Space, decode
    rows = 0
    for funct, op1, op2 in program.commands:
        if funct == Funct.LOAD:
            fields = decode(funct, op1, op2)[1]
            rows += fields["rows"] if fields["space"] == Space.SPAD_A else 0
    return rows


@pytest.mark.parametrize("padded", [True, False], ids=["border", "zero-point-row"])
@pytest.mark.parametrize("case", STRIP_CASES)
def test_input_strips_over_several_blocks_match_golden(case, padded):
    """A stride-1 layer loads each block's input rows once as strips that every kernel row
    reads from, over several blocks, from a padded buffer or with zero-point rows; the result
    equals the golden convolution and fewer A rows cross the bus than one a kernel row."""
    config, h, w, cin, cout, kernel, pads, dilation, groups, stride = STRIP_CASES[case]
    seed = 700 + sorted(STRIP_CASES).index(case) * 2 + int(padded)
    rng = np.random.default_rng(seed)
    number = list(NUMBERS)[seed % len(NUMBERS)]
    in_signed, in_zero, w_signed, w_zero, kind, extreme = NUMBERS[number]
    x_values = _draw(rng, (h, w, cin), in_signed, extreme)
    weights = _draw(rng, (*kernel, cin // groups, cout), w_signed, extreme)
    spec = ConvSpec(weights, rng.integers(-(1 << 14), 1 << 14, cout),
                    _requant(rng, kind, cout), stride=stride, pad=pads, dilation=dilation,
                    groups=groups, in_zero=in_zero, weight_zero=w_zero, in_signed=in_signed,
                    weight_signed=w_signed)
    eb = config.elem_bytes
    oh, ow = spec.out_size(h, w)
    if padded:
        x, y = _maps(rng, spec, h, w, config)
    else:
        x = FeatureMap(int(rng.integers(0, 40)), h, w, cin, h, w, cin)
        y = FeatureMap(x.base + x.nbytes(eb) + 3, oh, ow, cout, oh, ow, cout)
    sizes = conv_constant_sizes(spec, config, x.pitch, padded=padded, in_width=w)
    w_addr = y.base + y.nbytes(eb) + 5
    q_addr = w_addr + sizes["weights"] + 3
    z_addr = None if padded else q_addr + sizes["qp"] + 1
    program = compile_conv(spec, x, y, weights_addr=w_addr, qp_addr=q_addr, pad_addr=z_addr,
                           config=config)
    strip = int(program.mapping.split("input strips of ")[1].split()[0])
    assert strip < oh and oh % strip, "several blocks, the last one shorter"
    model = EngineModel(config)
    model.memory[:] = np.random.default_rng(seed).integers(0, 256, model.memory.size)
    x.write(model.memory, x_values, eb, border=in_zero)
    for addr, data in program.images:
        model.memory[addr:addr + len(data)] = np.frombuffer(data, np.uint8)
    before = model.memory.copy()
    model.run(program.commands)
    assert model.error_code == 0 and model.error_count == 0
    changed = np.flatnonzero(model.memory != before)
    assert np.isin(changed, y.interior_addresses(eb)).all()
    got = y.read(model.memory, eb, signed=spec.requant.clamp_min < 0)
    want = conv2d(x_values, weights, spec.bias, spec.requant, stride=stride, pad=pads,
                  dilation=dilation, groups=groups, in_zero=in_zero, weight_zero=w_zero)
    np.testing.assert_array_equal(got, want, err_msg=f"{number} on {case}")
    # Each chunk of a group's first kernel row loads its strip once a block: the input rows
    # of a block and the rows below it the group's kernel rows reach, not one copy a kernel
    # row.
    sh, dh = spec.strides[0], spec.dilations[0]
    groups_of = {}
    for ky in range(kernel[0]):
        groups_of.setdefault(ky * dh % sh, []).append(ky)
    blocks = -(-oh // strip)
    columns = int(program.mapping.split(" chunks")[0].split()[-1]) // kernel[0]
    per_column = sum(oh + blocks * (kys[-1] - kys[0]) * dh // sh for kys in groups_of.values())
    assert _a_rows_loaded(program) == columns * per_column * ow
    assert _a_rows_loaded(program) < columns * kernel[0] * oh * ow
