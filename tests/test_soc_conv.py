"""Convolution and max-pooling: the firmware library on the SoC against the numpy golden model.

The golden model (``rvnpu.sim.golden.conv``) is first checked against convolution and pooling
written as plain loops, straight from their definitions, so that a wrong golden fails here and
not only disagrees with the firmware. Then ``firmware/examples/conv.c`` runs in Verilator for
the default shape and for edge shapes, and its checksums must match the golden's bit for bit.
"""

import itertools

import numpy as np
import pytest

from rvnpu.firmware.build import EXAMPLES, build_firmware
from rvnpu.spec.config import EngineConfig
from rvnpu.spec.memory_map import SocConfig
from rvnpu.sim import toolchain
from rvnpu.sim.golden.conv import conv2d, im2col, maxpool2d, window_count
from rvnpu.sim.golden.examples import conv_example, parse_checksums, parse_cycles
from rvnpu.sim.golden.gemm import Requant
from rvnpu.sim.golden.requant import requantize_tflite
from rvnpu.sim.soc_sim import SocSimulator


CONFIG = SocConfig(uart_baud=3_000_000)      # as tests/test_soc.py: printing stays cheap

needs_verilator = pytest.mark.skipif("verilator" not in toolchain.available_simulators(),
                                     reason="Verilator not available")


# -- The golden model against loops -------------------------------------------------------------

def direct_conv_sums(x, weights, stride, pad, in_zero, weight_zero):
    """int32 sums of a convolution, one output at a time; padding reads as ``in_zero``."""
    h, w, cin = x.shape
    kh, kw, _, cout = weights.shape
    (sh, sw), (ph, pw) = stride, pad
    out_h, out_w = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    sums = np.zeros((out_h, out_w, cout), np.int64)
    for oy, ox, o in itertools.product(range(out_h), range(out_w), range(cout)):
        total = 0
        for ky, kx, c in itertools.product(range(kh), range(kw), range(cin)):
            y, x_ = oy * sh + ky - ph, ox * sw + kx - pw
            inside = 0 <= y < h and 0 <= x_ < w
            value = x[y, x_, c] if inside else in_zero
            total += (int(value) - in_zero) * (int(weights[ky, kx, c, o]) - weight_zero)
        sums[oy, ox, o] = total
    return sums


#: (H, W, C_in, C_out, kernel, stride, padding): square and not, padding wider than half the
#: kernel, strides that leave input edges unused, a 1x1 kernel.
SHAPES = [(5, 5, 3, 4, (3, 3), (1, 1), (1, 1)), (7, 6, 2, 3, (3, 2), (2, 1), (0, 1)),
          (4, 4, 1, 2, (3, 3), (1, 1), (2, 2)), (6, 5, 4, 5, (1, 1), (2, 2), (0, 0)),
          (9, 8, 2, 2, (4, 3), (3, 2), (1, 0))]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_golden_conv_is_the_direct_convolution(shape):
    h, w, cin, cout, kernel, stride, pad = shape
    rng = np.random.default_rng(11)
    x = rng.integers(-128, 128, (h, w, cin))
    weights = rng.integers(-128, 128, (*kernel, cin, cout))
    in_zero, weight_zero = 37, -5          # far from 0, so padding with 0 would show
    sums = direct_conv_sums(x, weights, stride, pad, in_zero, weight_zero)
    got = conv2d(x, weights, requant=Requant(mode=None), stride=stride, pad=pad,
                 in_zero=in_zero, weight_zero=weight_zero)
    np.testing.assert_array_equal(got, sums)

    bias = rng.integers(-1000, 1000, cout)
    multiplier, shift = rng.integers(1 << 30, 1 << 31, cout), rng.integers(-14, -6, cout)
    requant = Requant(multiplier=multiplier, shift=shift, out_zero=-3, clamp_min=-3,
                      clamp_max=127)
    got = conv2d(x, weights, bias, requant, stride=stride, pad=pad, in_zero=in_zero,
                 weight_zero=weight_zero)
    expected = requantize_tflite(sums.reshape(-1, cout), bias, multiplier, shift, -3, -3, 127)
    np.testing.assert_array_equal(got, expected.reshape(sums.shape))


def test_im2col_rows_are_receptive_fields():
    x = np.arange(2 * 3 * 2).reshape(2, 3, 2)
    patches, out = im2col(x, (2, 2), stride=1, pad=(0, 1), zero=-9)
    assert out == (1, 4)
    # Output pixel 0 sees input columns -1 and 0 of rows 0 and 1, channel innermost.
    assert patches[0].tolist() == [-9, -9, 0, 1, -9, -9, 6, 7]
    assert patches[3].tolist() == [4, 5, -9, -9, 10, 11, -9, -9]


@pytest.mark.parametrize("kernel, stride", [(2, 2), (3, 2), ((2, 3), (1, 3)), (1, 1)])
def test_golden_maxpool_is_the_loops(kernel, stride):
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (7, 8, 3))
    (kh, kw) = (kernel, kernel) if np.isscalar(kernel) else kernel
    (sh, sw) = (stride, stride) if np.isscalar(stride) else stride
    out_h, out_w = (7 - kh) // sh + 1, (8 - kw) // sw + 1
    expected = np.array([[[max(x[oy * sh + ky, ox * sw + kx, c]
                               for ky in range(kh) for kx in range(kw))
                           for c in range(3)] for ox in range(out_w)] for oy in range(out_h)])
    np.testing.assert_array_equal(maxpool2d(x, kernel, stride), expected)


def test_window_count():
    assert window_count(6, 3, 1, 1) == 6
    assert window_count(11, 3, 2) == 5
    assert window_count(12, 2, 2) == 6 and window_count(5, 2, 2) == 2
    assert window_count(2, 3, 1) == 0 and window_count(2, 3, 1, 1) == 2
    assert window_count(4, 1, 0) == 0


def test_example_options_change_the_operands():
    plain = conv_example(seed=3)
    extreme = conv_example(seed=3, extreme=True, relu=True)
    assert set(np.unique(extreme.input)) == {-128, 127}
    assert set(np.unique(extreme.weights)) == {-128, 127}
    assert extreme.output.min() == extreme.requant.out_zero          # ReLU clamps
    assert plain.output.min() < plain.requant.out_zero
    assert plain.conv_checksum != conv_example(seed=4).conv_checksum
    wide = conv_example(config=EngineConfig(rows=4, cols=4, in_width=16, mem_bytes=1 << 15))
    assert wide.input.min() < -128 and wide.input.max() > 127


def test_parse_helpers():
    text = ("conv2d ...\nengine: cycles 123 (im2col and GEMM), status 0x00000000\n"
            "cpu: cycles 4567\nconv checksum 0x0000beef\npool checksum 0xdeadbeef\n")
    assert parse_checksums(text) == {"conv": 0xBEEF, "pool": 0xDEADBEEF}
    assert parse_cycles(text) == {"engine": 123, "cpu": 4567}
    assert parse_checksums("no checksums") == {}


# -- The example on the SoC ---------------------------------------------------------------------

#: conv_example keyword arguments; conv.c gets the same as -D definitions.
CASES = {
    "default": {},
    # Output 5x4: input edges unused, 13 channels (ragged N tile), 3x2 kernel, ReLU.
    "stride2-nopad-relu": dict(h=11, w=9, cin=3, cout=13, kh=3, kw=2, stride=2, pad=0,
                               seed=5, relu=True),
    # Padding wider than half the kernel (whole rows of zero points), saturated sums, a 3x3
    # pool dropping an edge.
    "extreme-widepad": dict(h=4, w=4, cin=3, cout=5, pad=2, pool=3, seed=9, extreme=True),
}

_DEFINE_NAMES = {"h": "H", "w": "W", "cin": "CIN", "cout": "COUT", "kh": "KH", "kw": "KW",
                 "stride": "STRIDE", "pad": "PAD", "pool": "POOL", "seed": "SEED",
                 "relu": "RELU", "extreme": "EXTREME"}


def defines_of(case):
    return {_DEFINE_NAMES[key]: None if value is True else value for key, value in case.items()}


@pytest.fixture(scope="module")
def soc():
    return SocSimulator(CONFIG)


@needs_verilator
@pytest.mark.parametrize("name", sorted(CASES))
def test_conv_example_matches_the_golden_model(soc, tmp_path, name):
    case = CASES[name]
    image = build_firmware(EXAMPLES["conv"], tmp_path / "fw", CONFIG, defines=defines_of(case))
    result = soc.run(image, max_cycles=4_000_000)
    golden = conv_example(**case, config=CONFIG.engine)
    assert not result.timed_out and result.exit_code == 0, result.text
    assert parse_checksums(result.text) == {"conv": golden.conv_checksum,
                                            "pool": golden.pool_checksum}, result.text
    cycles = parse_cycles(result.text)
    assert 0 < cycles["engine"] < cycles["cpu"], result.text
