"""Weight-stationary partial sums kept as narrow as their largest value (``ws_sum_width``),
checked at that value: operands at both ends of their range, with the zero points that take
them furthest, through engines that run weight-stationary only, on Amaranth's simulator,
against the golden model and numpy."""

import numpy as np
import pytest
from amaranth.hdl import Fragment

from rvnpu.compiler.gemm import compile_gemm
from rvnpu.hdl.engine.array import SystolicArray, ws_sum_width
from rvnpu.sim.golden.gemm import Requant, gemm_reference
from rvnpu.spec.commands import Dataflow, Funct, Space, encode
from rvnpu.spec.config import EngineConfig

from test_engine_fetch import run_golden, run_rtl


def test_width_is_the_largest_sum_and_a_sign():
    # 1 row: 255 * 255 = 65025 < 2**16; 4 rows: 260100 < 2**18.
    assert ws_sum_width(1, 8, 32) == 17
    assert ws_sum_width(4, 8, 32) == 19
    assert ws_sum_width(3, 8, 32) == 19
    assert ws_sum_width(2, 4, 32) == 10            # 2 * 15 * 15 = 450 < 2**9
    assert ws_sum_width(16, 16, 32) == 32          # wider than the accumulators: theirs
    # Raw signed elements (zero points off below the array): 1 row, (-128)**2 = 2**14.
    assert ws_sum_width(1, 8, 32, raw=True) == 16
    assert ws_sum_width(4, 8, 32, raw=True) == 18  # 4 * 2**14 = 2**16
    assert ws_sum_width(2, 4, 32, raw=True) == 9   # 2 * 64 = 2**7, and a sign


def test_only_weight_stationary_arrays_narrow_their_sums():
    def array(**kw):
        array = SystolicArray(rows=4, cols=2, in_width=8, acc_width=32, **kw)
        Fragment.get(array, None)       # it elaborates at that width
        return array
    assert array(with_os=False).sum_width == 19
    assert array(with_os=True).sum_width == 32
    assert array(with_os=True, with_ws=False).sum_width == 32


def _extreme_operands(rng, m, n, k, a_signed, b_signed):
    """Elements at their range's ends, and random ones between, so that every column's sum
    reaches its largest magnitude in some output and other outputs mix signs."""
    a_lo, a_hi = (-128, 127) if a_signed else (0, 255)
    b_lo, b_hi = (-128, 127) if b_signed else (0, 255)
    a = rng.choice([a_lo, a_hi], (m, k))
    b = rng.choice([b_lo, b_hi], (k, n))
    a[0], b[:, 0] = a_lo, b_lo
    a[1], b[:, 1] = a_hi, b_hi
    a[-1] = rng.integers(a_lo, a_hi + 1, k)
    return a, b


# (a signed, a's zero point, b signed, b's zero point): each takes an operand to +-255.
EXTREMES = [
    (True, 127, False, 255),    # (-128 - 127) * (0 - 255) = +65025 a product
    (True, 127, False, 0),      # (-128 - 127) * (255 - 0) = -65025
    (False, 0, True, -128),     # (255 - 0) * (127 + 128) = +65025
    (False, 255, False, 0),     # (0 - 255) * (255 - 0) = -65025
    # (-128 - 127) * (127 + 128) = -65025; below the array, za * sum(w) and
    # zw * sum(a - za) at their largest of one sign: 127 * 127 and -128 * -255 a row.
    (True, 127, True, -128),
]


@pytest.mark.parametrize("zero_point_sums", [False, True])
# A 1x1 with unregistered multipliers has the shortest line beside the array: too short for
# the zero points' sum to register the elements first, which the others do.
@pytest.mark.parametrize("rows, cols, mac_latency", [(1, 1, 2), (1, 1, 0), (3, 2, 2),
                                                     (4, 2, 2)])
@pytest.mark.parametrize("extreme", range(len(EXTREMES)))
def test_sums_at_their_extremes_are_exact(rows, cols, mac_latency, extreme, zero_point_sums):
    """Also with the zero points taken off below the array, where the cells' operands are
    the raw elements (an unsigned one less 128): each case's zero step or products reach
    (-128) * (-128) too."""
    a_signed, a_zero, b_signed, b_zero = EXTREMES[extreme]
    config = EngineConfig(rows=rows, cols=cols, dataflow="ws", spad_depth=32, acc_depth=16,
                          qp_depth=4, bus_width=32, mem_bytes=1 << 12, requant_modes="none",
                          post_unit=False, command_fetch=False, store_pool=False,
                          mac_latency=mac_latency, zero_point_sums=zero_point_sums)
    rng = np.random.default_rng(1000 + 10 * extreme + rows)
    # Two passes of the array over k, and a part pass: sums also add up in the accumulators.
    m, n, k = rows + 2, cols + 1, 2 * rows + 1
    a, b = _extreme_operands(rng, m, n, k, a_signed, b_signed)
    job = compile_gemm(a, b, None, Requant(mode=None), config=config, dataflow="ws",
                       a_zero=a_zero, b_zero=b_zero, a_signed=a_signed, b_signed=b_signed)
    expected = gemm_reference(a, b, None, Requant(mode=None), a_zero=a_zero, b_zero=b_zero)
    # The sums of one pass of the array reach rows * 65025 in magnitude.
    one_pass = (a[:, :rows] - a_zero) @ (b[:rows] - b_zero)
    assert np.abs(one_pass).max() == rows * 255 * 255

    rtl_mem, _, _ = run_rtl(config, job.image, job.program)
    gold_mem, _ = run_golden(config, job.image, job.program)
    np.testing.assert_array_equal(job.read_output(rtl_mem), expected)
    np.testing.assert_array_equal(rtl_mem, gold_mem)


@pytest.mark.parametrize("rows, cols, mac_latency", [(1, 1, 0), (2, 2, 0), (3, 2, 2)])
def test_back_to_back_computes_keep_their_own_zero_points(rows, cols, mac_latency):
    """Two COMPUTEs of the same tiles, one straight after the other, each with its own zero
    points: the line below the array that takes ``zw * sum(a - za)`` off must pair each
    step's sum with its own command's ``zw``, also where it registers the elements first."""
    config = EngineConfig(rows=rows, cols=cols, dataflow="ws", spad_depth=32, acc_depth=32,
                          qp_depth=4, bus_width=32, mem_bytes=1 << 12, requant_modes="none",
                          post_unit=False, command_fetch=False, store_pool=False,
                          mac_latency=mac_latency, zero_point_sums=True)
    rng = np.random.default_rng(2000 + 10 * rows + mac_latency)
    steps, a_addr, b_addr, out = 5, 0, 512, 1024
    image = [(a_addr, bytes(rng.integers(0, 256, steps * rows, dtype=np.uint8))),
             (b_addr, bytes(rng.integers(0, 256, rows * cols, dtype=np.uint8)))]
    program = [
        encode(Funct.CONFIG_LOAD, stride=rows),
        encode(Funct.LOAD, dram_addr=a_addr, local_row=0, space=Space.SPAD_A, rows=steps,
               cols=rows),
        encode(Funct.CONFIG_LOAD, stride=cols),
        encode(Funct.LOAD, dram_addr=b_addr, local_row=0, space=Space.SPAD_B, rows=rows,
               cols=cols),
        encode(Funct.CONFIG_EXEC, dataflow=Dataflow.WS, a_signed=0, b_signed=1, a_zero=200,
               b_zero=-90),
        encode(Funct.COMPUTE, a_row=0, b_row=0, c_row=0, steps=steps, k_valid=rows),
        encode(Funct.CONFIG_EXEC, dataflow=Dataflow.WS, a_signed=0, b_signed=1, a_zero=3,
               b_zero=77),
        encode(Funct.COMPUTE, a_row=0, b_row=0, c_row=steps, steps=steps, k_valid=rows),
        encode(Funct.CONFIG_STORE, stride=cols * 4, qp_row=0),
        encode(Funct.STORE_ACC, dram_addr=out, acc_row=0, rows=2 * steps, cols=cols),
        encode(Funct.FENCE)]
    rtl_mem, _, _ = run_rtl(config, image, program)
    gold_mem, _ = run_golden(config, image, program)
    np.testing.assert_array_equal(rtl_mem, gold_mem)
    a = np.frombuffer(image[0][1], np.uint8).reshape(steps, rows).astype(np.int64)
    b = np.frombuffer(image[1][1], np.int8).reshape(rows, cols).astype(np.int64)
    sums = rtl_mem[out:out + 2 * steps * cols * 4].view("<i4").reshape(2, steps, cols)
    np.testing.assert_array_equal(sums[0], (a - 200) @ (b + 90))
    np.testing.assert_array_equal(sums[1], (a - 3) @ (b - 77))
