"""Lab 4 autograder: requantisation, bit for bit, in numpy and in the hardware lane.

The expected values never come from the student's files: ONNX Runtime's own QLinearMatMul for
the float32 convention, and for TFLite's fixed point a transcription of gemmlowp's C++ in
Python integers (below). Ties (exact halves) and extremes (INT32_MIN, saturation, inf, NaN and
denormal scales) are in every batch; the rest is random under the grading seed.
"""

import numpy as np
import pytest

from rvnpu.labs.benches import run_cycles


INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


# -- References written independently of the project ------------------------------------------

def _wrap(v):
    v %= 1 << 32
    return v - (1 << 32) if v > INT32_MAX else v


def gemmlowp_srdhm(a, b):
    """SaturatingRoundingDoublingHighMul, from gemmlowp's fixedpoint.h."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    n = ab + nudge
    return abs(n) // (1 << 31) * (1 if n >= 0 else -1)       # C++ division truncates


def gemmlowp_rdbpot(x, exponent):
    """RoundingDivideByPOT: to nearest, ties away from zero."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def tflite_reference(acc, bias, multiplier, shift, zero, lo, hi):
    """TFLite's MultiplyByQuantizedMultiplier, then the zero point and the clamp."""
    x = _wrap(acc + bias)
    left, right = min(max(shift, 0), 31), min(max(-shift, 0), 31)
    y = gemmlowp_rdbpot(gemmlowp_srdhm(_wrap(x * (1 << left)), multiplier), right)
    return min(max(y + zero, lo), hi)


def float32_reference(acc, scale, zero, lo, hi):
    """MLAS's requantisation in numpy float32: the product rounded half to even."""
    with np.errstate(over="ignore", invalid="ignore"):
        f = np.asarray(acc, np.int64).astype(np.float32) * np.float32(scale)
    f = np.where(np.isnan(f), 0, f).astype(np.float64)
    y = np.clip(np.rint(f), INT32_MIN, INT32_MAX).astype(np.int64)
    return np.clip(y + zero, lo, hi)


def onnxruntime_qlinear_matmul(a, b, scale, zero):
    """ONNX Runtime's int8 QLinearMatMul of ``a @ b`` with output scale 1 / ``scale``: the
    accumulators are requantised by MLAS with the float32 multiplier ``scale`` exactly."""
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    m, k = a.shape
    n = b.shape[1]
    params = [numpy_helper.from_array(np.array(v, d), name) for name, v, d in
              [("as", scale, np.float32), ("az", 0, np.int8), ("b", b, np.int8),
               ("bs", 1.0, np.float32), ("bz", 0, np.int8), ("ys", 1.0, np.float32),
               ("yz", zero, np.int8)]]
    graph = helper.make_graph(
        [helper.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"],
                          ["y"])], "requant",
        [helper.make_tensor_value_info("a", TensorProto.INT8, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [m, n])], params)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    proto.ir_version = 8
    session = onnxruntime.InferenceSession(proto.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    return session.run(None, {"a": a})[0].astype(np.int64)


# -- Cases ------------------------------------------------------------------------------------

def int32_edges():
    return [INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX - 1, INT32_MAX, -(1 << 30), 1 << 30]


def tflite_cases(rng, n):
    """(acc, bias, multiplier, shift): random, extremes, and exact halves before the shift."""
    acc = rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True)
    acc[:n // 3] = rng.integers(-100_000, 100_000, n // 3)
    bias = rng.integers(-(1 << 20), 1 << 20, n)
    bias[::5] = 0
    mult = rng.integers(1 << 30, 1 << 31, n)
    mult[::7] = -mult[::7]
    shift = rng.integers(-31, 3, n)
    # Ties: multiplier 2**30 halves x exactly, so an odd x with shift -1 ends on .5 (both signs).
    ties = n // 4
    mult[-ties:] = 1 << 30
    shift[-ties:] = -rng.integers(1, 8, ties)
    acc[-ties:] = (rng.integers(-5000, 5000, ties) << 1 | 1) << (-shift[-ties:] - 1)
    bias[-ties:] = 0
    edges = int32_edges()
    acc[:len(edges)], mult[:len(edges)] = edges, [INT32_MIN] * len(edges)
    shift[:len(edges)] = 0
    return acc, bias, mult, shift


def first_difference(got, want, inputs):
    wrong = np.flatnonzero(np.asarray(got) != np.asarray(want))
    if len(wrong):
        i = wrong[0]
        where = ", ".join(f"{name}={int(v[i])}" for name, v in inputs.items())
        return (f"for {where}: expected {int(want[i])}, got {int(got[i])} "
                f"({len(wrong)} of {len(want)} wrong)")
    return None


# -- The golden model (numpy) -----------------------------------------------------------------

def test_srdhm_ties_and_saturation(rng):
    from rvnpu.sim.golden.requant import srdhm
    a = rng.integers(INT32_MIN, INT32_MAX, 300, endpoint=True)
    b = rng.integers(INT32_MIN, INT32_MAX, 300, endpoint=True)
    edges = int32_edges()
    a[:len(edges) ** 2] = np.repeat(edges, len(edges))
    b[:len(edges) ** 2] = np.tile(edges, len(edges))
    want = [gemmlowp_srdhm(int(x), int(y)) for x, y in zip(a, b)]
    problem = first_difference(srdhm(a, b), want, {"a": a, "b": b})
    assert problem is None, f"srdhm(a, b) {problem}"


def test_rounding_divide_by_pot_ties_away_from_zero(rng):
    from rvnpu.sim.golden.requant import rounding_divide_by_pot
    e = rng.integers(0, 32, 400)
    x = rng.integers(INT32_MIN, INT32_MAX, 400, endpoint=True)
    half = rng.integers(-1000, 1000, 200) * 2 + 1          # odd: x / 2**e ends in .5
    x[:200] = np.clip(half << (e[:200] - 1).clip(0), INT32_MIN, INT32_MAX)
    x[:4], e[:4] = [INT32_MIN, INT32_MAX, -1, 1], [31, 31, 1, 1]
    want = [gemmlowp_rdbpot(int(v), int(s)) for v, s in zip(x, e)]
    problem = first_difference(rounding_divide_by_pot(x, e), want, {"x": x, "exponent": e})
    assert problem is None, f"rounding_divide_by_pot(x, exponent) {problem}"


def test_tflite_requantisation(rng):
    from rvnpu.sim.golden.requant import requantize_tflite
    acc, bias, mult, shift = tflite_cases(rng, 600)
    zero, lo, hi = int(rng.integers(-20, 20)), -128, 127
    want = [tflite_reference(*map(int, v), zero, lo, hi) for v in zip(acc, bias, mult, shift)]
    got = requantize_tflite(acc, bias, mult, shift, zero, lo, hi)
    problem = first_difference(got, want, {"acc": acc, "bias": bias, "multiplier": mult,
                                           "shift": shift})
    assert problem is None, f"requantize_tflite, out_zero={zero}: {problem}"


def test_float32_requantisation_matches_onnxruntime_on_ties(rng):
    """Scales of 2**-s: every product that is an odd multiple of 2**-1 is a tie."""
    from rvnpu.sim.golden.requant import float32_bits, requantize_ort
    for s in (1, 2, 3):
        a = rng.integers(-6, 7, (12, 32)).astype(np.int8)
        b = rng.integers(-6, 7, (32, 10)).astype(np.int8)
        zero = int(rng.integers(-5, 6))
        want = onnxruntime_qlinear_matmul(a, b, 2.0 ** -s, zero)
        acc = a.astype(np.int64) @ b.astype(np.int64)
        got = requantize_ort(acc, 0, float32_bits(2.0 ** -s), zero, -128, 127)
        problem = first_difference(got.ravel(), want.ravel(), {"acc": acc.ravel()})
        assert problem is None, f"requantize_ort, scale 2**-{s}, out_zero={zero}: {problem}"


def test_float32_requantisation_matches_onnxruntime(rng):
    """Random float32 scales over large sums: where float32 rounding differs from float64."""
    from rvnpu.sim.golden.requant import float32_bits, requantize_ort
    for _ in range(4):
        a = rng.integers(-128, 128, (8, 256)).astype(np.int8)
        b = rng.integers(-128, 128, (256, 16)).astype(np.int8)
        acc = a.astype(np.int64) @ b.astype(np.int64)
        scale = np.float32(255 / (2 * float(np.abs(acc).max())) * rng.uniform(0.5, 1.5))
        zero = int(rng.integers(-20, 20))
        want = onnxruntime_qlinear_matmul(a, b, scale, zero)
        got = requantize_ort(acc, 0, float32_bits(scale), zero, -128, 127)
        problem = first_difference(got.ravel(), want.ravel(), {"acc": acc.ravel()})
        assert problem is None, f"requantize_ort, scale {scale!r}, out_zero={zero}: {problem}"


def test_float32_requantisation_extremes(rng):
    """int32 extremes, products beyond int32, huge, tiny, denormal, infinite and NaN scales
    (against numpy float32: onnxruntime refuses such scales in a model)."""
    from rvnpu.sim.golden.requant import float32_bits, requantize_ort
    acc = np.array(int32_edges() * 8 + list(rng.integers(INT32_MIN, INT32_MAX, 200)))
    scales = np.array([np.inf, -np.inf, np.nan, 0.0, 1e-45, 1e-40, 3.0, -2.5, 1e10, 0.5]
                      + [1.0, -1.0] * 20, np.float32)
    scales = np.resize(scales, len(acc))
    rng.shuffle(scales)
    bits = float32_bits(scales)
    for zero, lo, hi in ((0, INT32_MIN, INT32_MAX), (7, -128, 127), (-3, 0, 255)):
        want = float32_reference(acc, scales, zero, lo, hi)
        got = requantize_ort(acc, 0, bits, zero, lo, hi)
        problem = first_difference(got, want, {"acc": acc, "scale bits": bits})
        assert problem is None, f"requantize_ort, clamp [{lo}, {hi}]: {problem}"


# -- The hardware lane (Amaranth) -------------------------------------------------------------

def run_lane(mode_name, acc, params, *, zero, lo, hi, vcd):
    """Stream the values through a RequantLane built with one mode; its outputs in order."""
    from rvnpu.hdl.engine.requant import RequantLane
    lane = RequantLane(modes=(mode_name,))
    n = len(acc)
    stimulus = [{"i_valid": int(i < n), "acc": int(acc[i % n]), "bias": 0,
                 "params": [int(p[i % n]) & 0xFFFF_FFFF for p in params],
                 "out_zero": zero, "clamp_min": lo, "clamp_max": hi}
                for i in range(n + lane.latency)]
    trace = run_cycles(lane, stimulus, vcd=vcd)
    out = [t["o_value"] for t in trace if t["o_valid"]]
    assert len(out) == n, f"the lane gave {len(out)} results for {n} values"
    return np.array(out, np.int64)


def test_lane_tflite(rng, wave):
    acc, bias, mult, shift = tflite_cases(rng, 160)
    acc = np.array([_wrap(int(x) + int(y)) for x, y in zip(acc, bias)])
    zero, lo, hi = int(rng.integers(-10, 10)), -32768, 32767
    got = run_lane("tflite", acc, [mult, shift], zero=zero, lo=lo, hi=hi, vcd=wave)
    want = [tflite_reference(int(x), 0, int(m), int(s), zero, lo, hi)
            for x, m, s in zip(acc, mult, shift)]
    problem = first_difference(got, want, {"acc": acc, "multiplier": mult, "shift": shift})
    assert problem is None, f"the TFLite lane {problem}"


def test_lane_float32_ties_and_extremes(rng, wave):
    from rvnpu.sim.golden.requant import float32_bits
    n = 160
    acc = rng.integers(-100_000, 100_000, n)
    acc[:9] = int32_edges()
    scales = np.float32(2.0) ** -rng.integers(1, 6, n).astype(np.float32)   # ties
    scales[n // 2:] = rng.uniform(-3, 3, n - n // 2).astype(np.float32) / 1024
    scales[9:13] = [np.inf, np.nan, 1e-40, 3e9]
    zero, lo, hi = int(rng.integers(-10, 10)), -32768, 32767
    got = run_lane("ort", acc, [float32_bits(scales)], zero=zero, lo=lo, hi=hi, vcd=wave)
    want = float32_reference(acc, scales, zero, lo, hi)
    problem = first_difference(got, want, {"acc": acc, "scale bits": float32_bits(scales)})
    assert problem is None, f"the float32 lane {problem}"
