"""Lab 1 autograder: one processing element, then the zero points on the way into the array.

Every case is random under the grading seed (the ``rng`` fixture) and checked against numpy
or the engine's golden model; a failing simulation leaves its waveform in ``waves/``.
"""

import numpy as np
import pytest

from rvnpu.labs.benches import check_computes, command, random_spads, run_cycles
from rvnpu.spec.config import EngineConfig


OP_WIDTH, ACC_WIDTH = 9, 32          # the engine's PEs: int8 after the zero point, int32 sums
CONFIG = EngineConfig(rows=4, cols=3, spad_depth=64, acc_depth=32, qp_depth=4,
                      mem_bytes=1 << 12)


def wrap(value, bits=ACC_WIDTH):
    return (int(value) + (1 << (bits - 1))) % (1 << bits) - (1 << (bits - 1))


def make_pe():
    from rvnpu.hdl.engine.pe import ProcessingElement
    return ProcessingElement(op_width=OP_WIDTH, acc_width=ACC_WIDTH)


def latency():
    """Cycles from a cell's operands to its product (the multiplier's registers)."""
    return make_pe().latency


def operands(rng, n):
    """n operand pairs over the whole 9-bit range, with the extremes among them."""
    lo, hi = -(1 << (OP_WIDTH - 1)), (1 << (OP_WIDTH - 1)) - 1
    a, b = rng.integers(lo, hi + 1, n), rng.integers(lo, hi + 1, n)
    a[:3], b[:3] = [lo, hi, -128], [lo, lo, -128]
    return a, b


# -- Weight-stationary: p_out = p_in + a * weight --------------------------------------------
#
# The product of operands given at cycle t is added at cycle t + L (L = latency(), the
# multiplier's registers) to the p_in of that cycle, and leaves on p_out a cycle later: in the
# array the partial sum from above arrives just then.

def test_ws_partial_sum(rng, wave):
    steps, L = 24, latency()
    w = int(rng.integers(-255, 256))
    a, _ = operands(rng, steps)
    p_in = rng.integers(-(1 << 31), 1 << 31, steps)
    valid = rng.integers(0, 2, steps)
    valid[:4] = 1
    stimulus = [dict(os=0, shift=1, b_in=w, valid_in=0, mark_in=0)]
    for t in range(steps + L):
        step = dict(shift=0, b_in=0, p_in=int(p_in[t - L]) if t >= L else 0)
        if t < steps:
            step.update(a_in=int(a[t]), valid_in=int(valid[t]), mark_in=int(t == 0))
        else:
            step.update(a_in=0, valid_in=0, mark_in=0)
        stimulus.append(step)
    stimulus.append(dict(valid_in=0, mark_in=0))
    trace = run_cycles(make_pe(), stimulus, vcd=wave)
    for t in range(steps):
        want = wrap(p_in[t] + valid[t] * a[t] * w)
        got = trace[t + L + 2]["p_out"]
        assert got == want, (f"step {t}: p_out is {got}, want p_in + a*w = {p_in[t]} + "
                             f"{valid[t]}*{a[t]}*{w} = {want}")


def test_ws_weight_moves_down_and_swaps_on_mark(rng, wave):
    w1, w2 = (int(x) for x in rng.integers(-255, 256, 2))
    a = int(rng.integers(1, 200))
    L = latency()
    stimulus = [dict(os=0, shift=1, b_in=w1), dict(shift=0, mark_in=1, valid_in=1, a_in=a),
                dict(mark_in=0, shift=1, b_in=w2, a_in=a),     # w2 preloads behind w1
                dict(shift=0, a_in=a), dict(mark_in=1, a_in=a), dict(mark_in=0, a_in=a),
                dict(valid_in=0)] + [dict(valid_in=0)] * L
    trace = run_cycles(make_pe(), stimulus, vcd=wave)
    assert trace[1]["b_out"] == w1, "b_out must show the preloaded weight (b_reg)"
    got = [trace[t + L]["p_out"] for t in (2, 3, 4, 5, 6)]
    assert got == [a * w1, a * w1, a * w1, a * w2, a * w2], (
        f"p_out {got}: the weight must stay until the next mark, then be the new one")


# -- Output-stationary: the sum stays in the cell, leaves L + 2 cycles after the last step ---

def test_os_accumulates_a_tile(rng, wave):
    k = int(rng.integers(5, 20))
    a, b = operands(rng, k)
    valid = rng.integers(0, 2, k)
    valid[0] = 1
    stimulus = [dict(os=1, shift=1, a_in=int(a[t]), b_in=int(b[t]), valid_in=int(valid[t]),
                     mark_in=int(t == k - 1)) for t in range(k)]
    L = latency()
    stimulus += [dict(valid_in=0, mark_in=0, a_in=0, b_in=0)] * (3 + L)
    trace = run_cycles(make_pe(), stimulus, vcd=wave)
    want = wrap(np.sum(valid * a * b))
    assert trace[k + 1 + L]["p_out"] == want, (
        f"p_out {L + 2} cycles after the last step is {trace[k + 1 + L]['p_out']}, want the "
        f"sum of the valid products {want}")


def test_os_tiles_back_to_back_and_wrap(rng, wave):
    k, tiles = 6, 3
    a, b = operands(rng, k * tiles)
    a[k:2 * k], b[k:2 * k] = 255, 255          # 6 * 65025 does not wrap; the next tile adds
    stimulus = [dict(os=1, shift=1, a_in=int(a[t]), b_in=int(b[t]), valid_in=1,
                     mark_in=int(t % k == k - 1)) for t in range(k * tiles)]
    L = latency()
    stimulus += [dict(valid_in=0, mark_in=0)] * (3 + L)
    trace = run_cycles(make_pe(), stimulus, vcd=wave)
    for i in range(tiles):
        want = wrap(np.sum(a[i * k:(i + 1) * k] * b[i * k:(i + 1) * k]))
        got = trace[(i + 1) * k + 1 + L]["p_out"]
        assert got == want, f"tile {i}: p_out is {got}, want {want}"


def test_ws_sum_wraps_like_int32(rng, wave):
    L = latency()
    stimulus = [dict(os=0, shift=1, b_in=255), dict(shift=0, mark_in=1, valid_in=1, a_in=255),
                dict(mark_in=0, a_in=-256), dict(valid_in=0)] + [dict(valid_in=0)] * L
    # Each partial sum arrives L cycles after its operands, as from the cell above.
    stimulus[1 + L]["p_in"] = (1 << 31) - 1
    stimulus[2 + L]["p_in"] = -(1 << 31)
    trace = run_cycles(make_pe(), stimulus, vcd=wave)
    assert [trace[2 + L]["p_out"], trace[3 + L]["p_out"]] == [
        wrap((1 << 31) - 1 + 255 * 255), wrap(-(1 << 31) - 256 * 255)]


# -- Zero points: the execute unit subtracts them before the array --------------------------

@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_signed_operands_with_zero_points(rng, wave, dataflow):
    spad_a, spad_b = random_spads(rng, CONFIG)
    za, zb = (int(z) for z in rng.integers(-128, 128, 2))
    steps = 9 if dataflow == "os" else 7
    cmd = command(CONFIG, dataflow=int(dataflow == "ws"), a_zero=za, b_zero=zb, steps=steps)
    check_computes(CONFIG, spad_a, spad_b, [cmd], wave=wave)


def test_unsigned_operands_with_zero_points(rng, wave):
    spad_a, spad_b = random_spads(rng, CONFIG, signed=False)
    za, zb = (int(z) for z in rng.integers(0, 256, 2))
    cmds = [command(CONFIG, a_signed=0, b_signed=0, a_zero=za, b_zero=zb, steps=6),
            command(CONFIG, a_signed=0, b_signed=1, a_zero=za, b_zero=0, steps=5, a_row=8,
                    b_row=8, c_row=8)]
    check_computes(CONFIG, spad_a, spad_b, cmds, wave=wave)


def test_extreme_zero_points(rng, wave):
    """-128 - 127 = -255 and 255 - 0: the corrected operands need all nine bits."""
    spad_a, spad_b = random_spads(rng, CONFIG)
    cmds = [command(CONFIG, a_zero=127, b_zero=-128, steps=4),
            command(CONFIG, a_zero=-128, b_zero=127, steps=4, c_row=4)]
    check_computes(CONFIG, spad_a, spad_b, cmds, wave=wave)


def test_padding_lanes_add_nothing(rng, wave):
    """Weight rows past ``k_valid`` are padding: with zero points they must still be 0."""
    spad_a, spad_b = random_spads(rng, CONFIG)
    za, zb = (int(z) for z in rng.integers(1, 128, 2))
    cmds = [command(CONFIG, a_zero=za, b_zero=-zb, steps=5, k_valid=k, a_row=8 * k,
                    b_row=4 * k, c_row=8 * k) for k in (1, 3)]
    check_computes(CONFIG, spad_a, spad_b, cmds, wave=wave)
