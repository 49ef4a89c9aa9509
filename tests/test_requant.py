"""Requantisation: the golden model against independent references, then the lane against it.

The golden model is checked first (scalar Python reference, known TFLite constants, float32
arithmetic done one numpy scalar at a time), so that the bit-exact lane tests below compare the
hardware with something trustworthy.
"""

import gc
import math
from fractions import Fraction

import numpy as np
import pytest
from amaranth.sim import Simulator

from rvnpu.spec.commands import QP_ROWS, Funct, field_of
from rvnpu.spec.requant import MODE_NAMES, MODES, RequantMode, mode_named
from rvnpu.hdl.engine.requant import PATHS, RequantLane
from rvnpu.sim.golden.requant import (
    INT32_MIN, INT32_MAX, srdhm, rounding_divide_by_pot, requantize_tflite, requantize_ort,
    requantize_tflite_scalar, quantize_multiplier, float32_bits, bits_float32, wrap_to_int32,
    golden_function, qp_values, qp_words, requantize)


TFLITE, ORT = int(RequantMode.TFLITE), int(RequantMode.ORT)

#: (out_zero, clamp_min, clamp_max): int8, uint8, ReLU6-like, a single value, int16, inverted.
CLAMPS = [
    (0, -128, 127),
    (-3, -128, 127),
    (128, 0, 255),
    (-128, -128, -128 + 60),
    (5, 5, 5),
    (0, -32768, 32767),
    (1234, -32768, 32767),
    (10, 20, -20),
]


# -- Random stimulus ------------------------------------------------------------------------------

def _log_uniform(rng, lo, hi, n):
    return np.exp(rng.uniform(math.log(lo), math.log(hi), n))


def _int32(rng, n):
    return rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True)


def tflite_vectors(rng, n):
    """``(acc, bias, multiplier, shift)`` for TFLite mode, from three distributions."""
    k = n // 3
    # Realistic: scale from quantize_multiplier, acc chosen so the output lands near the
    # clamp range, so that rounding (not saturation) is what gets tested.
    scale = _log_uniform(rng, 1e-6, 10, k) * rng.choice([1, 1, 1, -1], k)
    target = rng.uniform(-400, 400, k)
    acc_a = np.clip(np.round(target / scale), INT32_MIN, INT32_MAX).astype(np.int64)
    bias_a = rng.integers(-1000, 1000, k, endpoint=True)
    qm = [quantize_multiplier(s) for s in scale]
    mult_a = np.array([q for q, _ in qm], dtype=np.int64)
    shift_a = np.array([s for _, s in qm], dtype=np.int64)
    # Full range: wrapping sums, arbitrary multipliers, shifts beyond +-31.
    acc_b, bias_b, mult_b = _int32(rng, k), _int32(rng, k), _int32(rng, k)
    shift_b = rng.integers(-40, 40, k, endpoint=True)
    # Small accumulators, realistic multipliers with shifts nudged around.
    r = n - 2 * k
    acc_c = rng.integers(-(1 << 12), 1 << 12, r, endpoint=True)
    bias_c = rng.integers(-(1 << 8), 1 << 8, r, endpoint=True)
    qm = [quantize_multiplier(s) for s in _log_uniform(rng, 1e-6, 10, r)]
    mult_c = np.array([q for q, _ in qm], dtype=np.int64)
    shift_c = np.array([s for _, s in qm], dtype=np.int64) + rng.integers(-3, 3, r, endpoint=True)
    return tuple(np.concatenate(p) for p in zip(
        (acc_a, bias_a, mult_a, shift_a), (acc_b, bias_b, mult_b, shift_b),
        (acc_c, bias_c, mult_c, shift_c)))


def ort_vectors(rng, n):
    """``(acc, bias, scale_bits, shift)`` for ORT mode (shift is random: it must be ignored)."""
    k = n // 3
    # Realistic: outputs near the clamp range, including |x| >= 2**24 where int -> float rounds.
    acc_a = np.concatenate([rng.integers(-(1 << 16), 1 << 16, k - k // 2, endpoint=True),
                            _int32(rng, k // 2)])
    target = rng.uniform(-400, 400, k)
    scale_a = np.abs(target / np.where(acc_a == 0, 1, acc_a)) * rng.choice([1, -1], k)
    bias_a = rng.integers(-64, 64, k, endpoint=True)
    # Log-uniform scales 1e-9 .. 1e3 with random sign, full-range sums.
    acc_b, bias_b = _int32(rng, k), rng.integers(-(1 << 20), 1 << 20, k, endpoint=True)
    scale_b = _log_uniform(rng, 1e-9, 1e3, k) * rng.choice([1, -1], k)
    # Small accumulators, scales 2**-m * (odd) so that exact .5 ties are frequent.
    r = n - 2 * k
    acc_c = rng.integers(-(1 << 10), 1 << 10, r, endpoint=True)
    bias_c = rng.integers(-8, 8, r, endpoint=True)
    scale_c = (rng.integers(1, 16, r) * 2 + 1) * np.exp2(-rng.integers(1, 8, r).astype(float))
    scale_c *= rng.choice([1, -1], r)
    scale = float32_bits(np.concatenate([scale_a, scale_b, scale_c])).astype(np.int64)
    return (np.concatenate([acc_a, acc_b, acc_c]), np.concatenate([bias_a, bias_b, bias_c]),
            scale, rng.integers(-40, 40, n, endpoint=True))


INT16 = (0, -32768, 32767)


def conversion_ties(rng, n):
    """ORT vectors where rounding int32 -> float32 decides the result.

    ``|x|`` in ``[2**e, 2**(e+1))``, e = 24..30, is at (or one sticky bit beside) a tie between
    two float32 values, and the scale ``2**-p`` maps the tie's neighbours onto both sides of a
    rounding boundary ``m + 0.5`` with ``m`` in int16 range.
    """
    e = rng.integers(24, 31, n)
    p = e - 14
    half = np.int64(1) << (e - 24)                      # half the float32 spacing at 2**e
    below = rng.integers(0, np.maximum(e - 24, 1))      # a sticky bit, where there is room
    jitter = np.where((e > 24) & (rng.random(n) < 0.3),
                      rng.choice([-1, 1], n) * (np.int64(1) << below), 0)
    m = rng.integers(1 << 14, (1 << 15) - 1, n)
    x = (m << p) + (np.int64(1) << (p - 1)) + rng.choice([-1, 1], n) * half + jitter
    x *= rng.choice([-1, 1], n)
    scale = float32_bits(np.exp2(-p.astype(float))).astype(np.int64)
    return x, np.zeros(n, np.int64), scale, np.zeros(n, np.int64)


def product_ties(rng, n):
    """ORT vectors whose exact product ``x * scale`` is a tie between two float32 values.

    One of the two is ``m + 0.5``, so rounding the product to float32 decides the integer
    result: ``x`` is a small odd integer dividing the tie's odd mantissa, ``scale = tie / x``.
    """
    rows = []
    while len(rows) < n:
        b = Fraction(2 * int(rng.integers(-30000, 30000)) + 1, 2)
        ulp = Fraction(2) ** (math.floor(math.log2(abs(b))) - 23)
        tie = b + int(rng.choice([-1, 1])) * ulp / 2
        for x in rng.permutation(np.arange(3, 256, 2)).tolist():
            if tie.numerator % x == 0:
                x *= int(rng.choice([-1, 1]))
                scale = np.float32(float(tie / x))
                assert Fraction(float(scale)) * x == tie        # exact: a true tie
                rows.append((x, int(float32_bits(scale))))
                break
    x, scale = (np.array(c, dtype=np.int64) for c in zip(*rows))
    return x, np.zeros(n, np.int64), scale, np.zeros(n, np.int64)


# -- Golden-model self-checks ---------------------------------------------------------------------

def test_tflite_vectorised_matches_scalar_reference():
    rng = np.random.default_rng(1)
    acc, bias, mult, shift = tflite_vectors(rng, 6000)
    # Also the corners that matter: INT32_MIN products, wrapping sums, out-of-range shifts.
    acc = np.concatenate([acc, [INT32_MIN, INT32_MAX, INT32_MIN, -7, 7, 3, 1 << 30]])
    bias = np.concatenate([bias, [0, 1, -1, 0, 0, 0, 1 << 30]])
    mult = np.concatenate([mult, [INT32_MIN, 1 << 30, INT32_MIN, 1 << 30, 1 << 30, -5, INT32_MAX]])
    shift = np.concatenate([shift, [-31, -20, 0, -1, -1, 40, 1]])
    n = len(acc)
    zero = rng.integers(-200, 200, n)
    lo = rng.integers(-40000, 0, n)
    hi = rng.integers(0, 40000, n)
    got = requantize_tflite(acc, bias, mult, shift, zero, lo, hi)
    assert got.dtype == np.int64
    for i in range(n):
        args = [int(v[i]) for v in (acc, bias, mult, shift, zero, lo, hi)]
        assert got[i] == requantize_tflite_scalar(*args), (i, args)


def test_tflite_primitives():
    assert srdhm(INT32_MIN, INT32_MIN) == INT32_MAX
    assert srdhm(INT32_MIN, INT32_MAX) == -INT32_MAX
    # x * 0.5: the nudge 1 - 2**30 and the truncating division round negative ties toward
    # zero, so ties go up (-2.5 -> -2); a floor division would give -3.
    assert list(srdhm([5, -5, 4, -4, -7], 1 << 30)) == [3, -2, 2, -2, -3]
    assert list(srdhm([-10], 1 << 30)) == [-5]
    assert list(rounding_divide_by_pot([5, -5, 6, -6, 7, -7, 4], 1)) == [3, -3, 3, -3, 4, -4, 2]
    assert list(rounding_divide_by_pot([11, -11, 12, -12, 13, -13], 3)) == [1, -1, 2, -2, 2, -2]
    assert list(rounding_divide_by_pot([INT32_MAX, INT32_MIN], 31)) == [1, -1]
    assert list(wrap_to_int32([1 << 31, -(1 << 31) - 1, 3 << 31])) == [INT32_MIN, INT32_MAX,
                                                                         INT32_MIN]


@pytest.mark.parametrize("real, expected", [
    (0.5, (1 << 30, 0)),
    (0.25, (1 << 30, -1)),
    (1.0, (1 << 30, 1)),
    (0.75, (3 << 29, 0)),
    (-0.5, (-(1 << 30), 0)),
    (1 - 2.0 ** -40, (1 << 30, 1)),      # the rounded fraction reaches 2**31: halved
    (0.0, (0, 0)),
    (2.0 ** -40, (0, 0)),                # shift below -31: flushed to zero
    (2.0 ** -31, (1 << 30, -30)),
    (0.1, (1717986918, -3)),
])
def test_quantize_multiplier(real, expected):
    assert quantize_multiplier(real) == expected


def test_tflite_known_examples():
    q, s = quantize_multiplier(0.5)
    # x * 0.5 with ties rounded up, through the multiplier.
    got = requantize_tflite([5, -5, 7, -7, 300], 0, q, s, 0, -128, 127)
    assert list(got) == [3, -2, 4, -3, 127]
    # Ties in RoundingDivideByPOT: srdhm(10, 0.5) = 5, then 5 / 2 = 2.5 -> 3.
    assert list(requantize_tflite([10, -10], 0, 1 << 30, -1, 0, -128, 127)) == [3, -3]
    assert requantize_tflite(INT32_MAX, 1, 1 << 30, -24, 0, -128, 127) == -64   # sum wraps
    assert requantize_tflite(INT32_MIN, 0, INT32_MIN, -31, 0, -128, 127) == 1   # saturates


def _ort_scalar(x, scale_bits):
    """One value through np.float32 scalars and Python's round() (half to even)."""
    s = np.uint32(scale_bits).view(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        f = float(np.float32(x) * s)
    if math.isnan(f):
        return 0
    if math.isinf(f):
        return INT32_MAX if f > 0 else INT32_MIN
    return min(max(round(f), INT32_MIN), INT32_MAX)


def test_ort_golden_matches_float32_scalars():
    rng = np.random.default_rng(2)
    parts = [ort_vectors(rng, 3000), conversion_ties(rng, 300), product_ties(rng, 300)]
    acc, bias, scale, _ = (np.concatenate(c) for c in zip(*parts))
    specials = [0, 1, 0x007F_FFFF, 0x8000_0001, 0x8000_0000, 0x7F80_0000, 0xFF80_0000,
                0x7FC0_0000, 0xFFFF_FFFF, 0x0080_0000, 0x7F7F_FFFF]
    acc = np.concatenate([acc, [0] * len(specials), [INT32_MIN] * len(specials)])
    bias = np.concatenate([bias, np.zeros(2 * len(specials), np.int64)])
    scale = np.concatenate([scale, specials, specials])
    got = requantize_ort(acc, bias, scale, 0, INT32_MIN, INT32_MAX)
    for i in range(len(acc)):
        x = int(wrap_to_int32(int(acc[i]) + int(bias[i])))
        assert got[i] == _ort_scalar(x, int(scale[i])), (i, x, hex(scale[i]))


#: x * float32(1024 / x) is below 1024 but rounds to 1024 in float32 (the mantissa carries).
CARRY_X = (25, 29, 43, 77)


def test_ort_known_examples():
    half = int(float32_bits(0.5))
    got = requantize_ort([5, 7, -5, -7, 3, 1, -1], 0, half, 0, -128, 127)
    assert list(got) == [2, 4, -2, -4, 2, 0, 0]
    # int -> float32 rounds 2**24 + 257 to 2**24 + 256 (ties to even); times 2**-9 that is
    # 32768.5 -> 32768 (even), where exact integer arithmetic would give 32769.
    got = requantize_ort(-((1 << 24) + 257), 0, int(float32_bits(2.0 ** -9)), 100, -32768, 32767)
    assert got == -32768 + 100
    assert bits_float32(float32_bits(-1.5)) == np.float32(-1.5)
    for x in CARRY_X:
        scale = np.float32(1024 / x)
        assert Fraction(float(scale)) * x < 1024 and np.float32(x) * scale == 1024
        assert requantize_ort(x, 0, int(float32_bits(scale)), 0, -32768, 32767) == 1024
    inf, nan = 0x7F80_0000, 0x7FC0_0000
    assert list(requantize_ort([1, -1, 0, 9], 0, [inf, inf, inf, nan], 0, -128, 127)) == [
        127, -128, 0, 0]


# -- The lane -------------------------------------------------------------------------------------

def run_lane(lane, batches, gaps=None):
    """Stream ``batches`` through ``lane`` back to back; return the outputs, one array a batch.

    Each batch is ``(mode, (out_zero, clamp_min, clamp_max), (acc, bias, multiplier, shift))``.
    The configuration is changed only while the pipeline is empty, as the lane requires.
    ``gaps`` (a set of input indices) inserts an idle cycle before those inputs. Checks that
    exactly one ``o_valid`` comes back for every input, ``lane.latency`` cycles later.
    """
    gaps = gaps or set()
    sent, got = [], []

    async def bench(ctx):
        t = 0

        async def tick():
            nonlocal t
            await ctx.tick()
            t += 1
            if ctx.get(lane.o_valid):
                got.append((t, ctx.get(lane.o_value)))

        index = 0
        for mode, (zero, lo, hi), vectors in batches:
            ctx.set(lane.mode, mode)
            ctx.set(lane.out_zero, zero)
            ctx.set(lane.clamp_min, lo)
            ctx.set(lane.clamp_max, hi)
            for acc, bias, mult, shift in zip(*(v.tolist() for v in vectors)):
                if index in gaps:
                    ctx.set(lane.i_valid, 0)
                    await tick()
                index += 1
                ctx.set(lane.i_valid, 1)
                ctx.set(lane.acc, acc)
                ctx.set(lane.bias, bias)
                ctx.set(lane.params[0], mult & 0xFFFF_FFFF)
                ctx.set(lane.params[1], shift & 0xFFFF_FFFF)
                sent.append(t)
                await tick()
            ctx.set(lane.i_valid, 0)
            for _ in range(lane.latency):
                await tick()

    sim = Simulator(lane)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()

    assert [t for t, _ in got] == [t + lane.latency for t in sent]
    values = np.array([v for _, v in got], dtype=np.int64)
    out, start = [], 0
    for _, _, vectors in batches:
        out.append(values[start:start + len(vectors[0])])
        start += len(vectors[0])
    return out


def golden(mode, clamp, vectors):
    acc, bias, mult, shift = vectors
    if mode == TFLITE:
        return requantize_tflite(acc, bias, wrap_to_int32(mult), shift, *clamp)
    return requantize_ort(acc, bias, mult, *clamp)


def check(batches, outputs, seed=None, golden_mode=None):
    for (mode, clamp, vectors), got in zip(batches, outputs):
        expected = golden(mode if golden_mode is None else golden_mode, clamp, vectors)
        bad = np.flatnonzero(got != expected)
        if len(bad):
            i = bad[0]
            inputs = [int(v[i]) for v in vectors]
            pytest.fail(f"seed {seed}: mode {mode}, clamp {clamp}, inputs (acc, bias, mult, "
                        f"shift) {inputs}: expected {expected[i]}, got {got[i]} "
                        f"({len(bad)} of {len(got)} wrong)")


#: The clamps of the random tests: those with room between the bounds. A single value or an
#: inverted range gives a constant output whatever the scaling did, so a batch under one would
#: check no rounding at all (the edge tests try them on every corner case).
RANDOM_CLAMPS = [(zero, lo, hi) for zero, lo, hi in CLAMPS if lo < hi]


def split(mode, vectors, rng, size):
    """Shuffle ``vectors`` and cut them into batches of ``size``, each with a clamp setting
    drawn from RANDOM_CLAMPS: every batch mixes the distributions of the generator (the one
    rich in ties included) and none sends its values through a constant clamp."""
    n = len(vectors[0])
    order = rng.permutation(n)
    vectors = tuple(v[order] for v in vectors)
    return [(mode, RANDOM_CLAMPS[rng.integers(len(RANDOM_CLAMPS))],
             tuple(v[i:i + size] for v in vectors)) for i in range(0, n, size)]


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_lane_latency_and_ports():
    lane = RequantLane()
    assert 4 <= lane.latency <= 7
    assert RequantLane(deep=True).latency == lane.latency + 2
    assert lane.modes == MODE_NAMES == ("tflite", "ort")
    assert RequantLane(modes=["ort", "tflite"]).modes == ("tflite", "ort")   # code order
    with pytest.raises(ValueError):
        RequantLane(modes=())
    with pytest.raises(ValueError, match="not 'gemmlowp'"):
        RequantLane(modes=("gemmlowp",))
    with pytest.raises(TypeError):
        RequantLane(modes="ort")
    del lane
    gc.collect()    # the components never elaborated, while their warning is filtered


@pytest.mark.parametrize("mode, seed, deep", [(TFLITE, 10, False), (ORT, 20, False),
                                              (TFLITE, 11, True), (ORT, 21, True)])
def test_lane_random(mode, seed, deep):
    rng = np.random.default_rng(seed)
    make = tflite_vectors if mode == TFLITE else ort_vectors
    batches = split(mode, make(rng, 2000), rng, 250)
    gaps = set(rng.choice(2000, 20, replace=False).tolist())
    check(batches, run_lane(RequantLane(deep=deep), batches, gaps), seed)


def _edges_tflite():
    half = 1 << 30
    rows = [
        # INT32_MIN * INT32_MIN saturates to INT32_MAX (-> 1 after a 31-bit shift; a wrap
        # would give -1).
        (INT32_MIN, 0, INT32_MIN, -31), (INT32_MIN, 0, INT32_MIN, -30),
        (INT32_MIN, 0, INT32_MIN, 0), (INT32_MIN, 0, INT32_MAX, -31),
        (INT32_MAX, 0, INT32_MIN, -31), (INT32_MAX, 0, INT32_MAX, -31),
        # acc + bias wraps.
        (INT32_MAX, 1, half, -24), (INT32_MIN, -1, half, -24), (INT32_MAX, INT32_MAX, half, -24),
        # Ties: in srdhm (x * 0.5) and in RoundingDivideByPOT.
        (5, 0, half, 0), (-5, 0, half, 0), (7, 0, half, 0), (-7, 0, half, 0),
        (10, 0, half, -1), (-10, 0, half, -1), (22, 0, half, -2), (-22, 0, half, -2),
        (6, 0, half, -2), (-6, 0, half, -2), (11, 2, half, -3), (-11, -2, half, -3),
        # Left shifts, their int32 wrap, and shifts beyond +-31.
        (3, 0, half, 31), (1, 0, half, 30), (-1, 0, half, 31), (100, 0, half, 40),
        (INT32_MAX, 0, INT32_MAX, -40), (INT32_MIN, 0, INT32_MAX, -40), (-3, 0, half, 29),
        (1 << 20, 0, half, INT32_MIN), (1, 0, half, INT32_MAX),
        # Zero and negative multipliers.
        (12345, 0, 0, 0), (1000, 0, -half, -3), (-1000, 0, -half, -3), (0, 0, INT32_MIN, 5),
    ]
    return tuple(np.array(c, dtype=np.int64) for c in zip(*rows))


def _edges_ort():
    f = lambda v: int(float32_bits(v))      # noqa: E731
    inf, nan = 0x7F80_0000, 0x7FC0_0000
    rows = [
        # Ties to even.
        (5, 0, f(0.5)), (7, 0, f(0.5)), (-5, 0, f(0.5)), (-7, 0, f(0.5)), (3, 0, f(0.5)),
        (1, 0, f(0.5)), (-1, 0, f(0.5)), (-3, 0, f(0.5)), (5, 0, f(1.5)), (-1, 0, f(2.5)),
        # |x| >= 2**24: the int -> float conversion rounds (to even on ties).
        (-((1 << 24) + 257), 0, f(2.0 ** -9)), ((1 << 24) + 257, 0, f(2.0 ** -9)),
        ((1 << 24) + 1, 0, f(2.0 ** -10)), ((1 << 25) + 3, 0, f(2.0 ** -11)),
        (INT32_MAX, 0, f(2.0 ** -16)), (INT32_MIN, 0, f(2.0 ** -16)), (INT32_MAX, 0, f(1e-5)),
        (0x7FFF_FFC0, 0, f(2.0 ** -31)), (0x7FFF_FF80, 0, f(2.0 ** -31)),
        # Sum wraps.
        (INT32_MAX, 1, f(2.0 ** -24)), (INT32_MIN, -1, f(2.0 ** -24)),
        # Zero, denormal, smallest normal, largest, inf and NaN scales, both signs.
        (1000, 0, 0), (-1000, 0, 0x8000_0000), (INT32_MIN, 0, 1), (INT32_MAX, 0, 0x007F_FFFF),
        (INT32_MIN, 0, 0x807F_FFFF), (INT32_MIN, 0, 0x0080_0000), (1, 0, 0x7F7F_FFFF),
        (-1, 0, 0x7F7F_FFFF), (1, 0, 0xFF7F_FFFF), (3, 0, inf), (-3, 0, inf), (3, 0, inf | 1 << 31),
        (0, 0, inf), (0, 0, inf | 1 << 31), (5, 0, nan), (-5, 0, 0x7F80_0001), (0, 0, 0xFFFF_FFFF),
        # Exact products just below 1024 whose float32 rounding carries into the exponent.
        *[(x, 0, f(1024 / x)) for x in CARRY_X], (-29, 0, f(1024 / 29)), (77, 0, f(-1024 / 77)),
        # Negative scales and products that overflow float32.
        (200, 0, f(-0.3)), (-200, 0, f(-0.3)), (1 << 30, 0, f(1e30)), (-(1 << 30), 0, f(1e30)),
        (1 << 30, 0, f(2.0)), (-(1 << 30), 0, f(2.0)),
    ]
    acc, bias, scale = (np.array(c, dtype=np.int64) for c in zip(*rows))
    return acc, bias, scale, np.full(len(acc), -7, dtype=np.int64)


@pytest.mark.parametrize("deep", [False, True])
def test_lane_edges_both_modes(deep):
    """Hand-made corner cases, alternating TFLite and ORT on one lane, every clamp setting
    (a deep lane's products in pieces meet the extremes: INT32_MIN squared, the largest
    mantissas)."""
    batches = []
    for clamp in CLAMPS:
        batches.append((TFLITE, clamp, _edges_tflite()))
        batches.append((ORT, clamp, _edges_ort()))
    check(batches, run_lane(RequantLane(deep=deep), batches))


@pytest.mark.parametrize("deep", [False, True])
def test_lane_ort_rounding_ties(deep):
    """Ties and near ties in both float32 roundings (int -> float and the product)."""
    seed = 50
    rng = np.random.default_rng(seed)
    batches = [(ORT, INT16, conversion_ties(rng, 400)), (ORT, INT16, product_ties(rng, 400)),
               (ORT, (-1234, -32768, 32767), product_ties(rng, 100))]
    check(batches, run_lane(RequantLane(deep=deep), batches), seed)


@pytest.mark.parametrize("with_tflite, seed", [(True, 30), (False, 40)])
def test_lane_single_mode(with_tflite, seed):
    """A lane with one path ignores ``mode``: even the other mode's setting gives its path."""
    rng = np.random.default_rng(seed)
    built = TFLITE if with_tflite else ORT
    vectors = (tflite_vectors if with_tflite else ort_vectors)(rng, 300)
    batches = split(built, vectors, rng, 100)
    batches += [(1 - built, clamp, v) for _, clamp, v in split(built, vectors, rng, 150)]
    lane = RequantLane(modes=("tflite" if with_tflite else "ort",))
    check(batches, run_lane(lane, batches), seed, golden_mode=built)


# -- The modes as a set --------------------------------------------------------------------------

def test_every_mode_has_a_path_a_golden_function_and_room():
    """Each mode of the spec is built by the lane and defined by a golden function; its
    parameters fit the QP rows after the bias, and its code fits CONFIG_REQUANT's field."""
    assert set(PATHS) == set(MODE_NAMES)
    codes = [int(mode.code) for mode in MODES]
    assert codes == sorted(set(codes)) and set(codes) == {int(m) for m in RequantMode}
    assert max(codes) < 1 << field_of(Funct.CONFIG_REQUANT, "mode").width
    for mode in MODES:
        assert callable(golden_function(mode)), mode.name
        rows = [p.row for p in mode.params]
        assert len(set(rows)) == len(rows) and all(1 <= r < QP_ROWS for r in rows), mode.name
        assert all(p.kind in ("int32", "float32") for p in mode.params), mode.name


def test_requantize_by_spec_is_the_golden_function():
    rng = np.random.default_rng(60)
    acc, bias, mult, shift = tflite_vectors(rng, 200)
    params = [qp_values(qp_words(v, "int32"), "int32") for v in (mult, shift)]
    assert np.array_equal(requantize(mode_named("tflite"), acc, bias, params, 3, -128, 127),
                          requantize(mode_named("tflite"), acc, bias, [mult, shift], 3, -128,
                                     127))
    assert np.array_equal(requantize(mode_named("tflite"), acc, bias, params, 3, -128, 127),
                          requantize_tflite(acc, bias, wrap_to_int32(mult), shift, 3, -128, 127))
    acc, bias, scale, _ = ort_vectors(rng, 200)
    words = qp_words(bits_float32(scale), "float32")
    assert np.array_equal(words, np.asarray(scale, np.uint32))
    assert np.array_equal(requantize(mode_named("ort"), acc, bias, [qp_values(words, "float32")],
                                     -2, 0, 255),
                          requantize_ort(acc, bias, scale, -2, 0, 255))
