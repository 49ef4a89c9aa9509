"""The proof that lets an average pool smaller than its map run on the engine
(``engine_average_scale``), against brute force: for a window of two values every one of the
65,536 input pairs is tried, onnxruntime's float32 arithmetic (the golden ``average_pool2d``,
itself checked against onnxruntime in test_onnx_ops.py) against the engine's requantisation of
the integer sum."""

import numpy as np
import pytest

from rvnpu.compiler.onnx.exact_average import engine_average_scale
from rvnpu.sim.golden.pool import average_pool2d
from rvnpu.sim.golden.requant import requantize_ort


def _all_pairs(signed):
    lo = -128 if signed else 0
    a, b = np.meshgrid(np.arange(lo, lo + 256), np.arange(lo, lo + 256))
    # (1, 3, 65536): H, W, channels; the third column makes the map wider than the window
    # (a window of the whole map is averaged in integers, not in float32).
    return np.stack([a.ravel(), b.ravel(), a.ravel()])[None]


def _mismatches(pairs, xs, xz, ys, yz, lo, hi):
    """Pairs whose float32 average and engine-requantised sum differ (with the scale the
    engine would be given)."""
    ort = average_pool2d(pairs, xs, xz, ys, yz, lo, hi, kernel=(1, 2))[0, 0]
    scale = np.float32(np.float32(xs) / np.float32(np.float32(ys) * np.float32(2)))
    engine = requantize_ort((pairs[0, :2] - xz).sum(axis=0), 0, scale.view(np.uint32), yz,
                            lo, hi)
    return int(np.count_nonzero(ort != engine))


@pytest.mark.parametrize("signed", [True, False])
def test_accepted_pools_agree_on_every_input_pair(signed):
    rng = np.random.default_rng(14 + signed)
    lo, hi = (-128, 127) if signed else (0, 255)
    pairs = _all_pairs(signed)
    accepted = refused_for_cause = 0
    for trial in range(40):
        xs = np.float32(rng.uniform(0.005, 0.2))
        ys = xs if trial % 4 == 0 else np.float32(rng.uniform(0.005, 0.2))
        xz, yz = (int(v) for v in rng.integers(lo, hi + 1, 2))
        scale = engine_average_scale(xs, xz, ys, yz, (lo, hi), (1, 2))
        wrong = _mismatches(pairs, xs, xz, ys, yz, lo, hi)
        if scale is not None:
            accepted += 1
            assert wrong == 0, (xs, xz, ys, yz)
        else:
            refused_for_cause += wrong > 0
    # Not vacuous: most pools are accepted, and most refusals would have been wrong.
    assert accepted >= 20 and refused_for_cause >= 5


def test_exact_ties_are_refused_and_odd_windows_kept():
    """With the input's own scale a window of 4 averages to exact halves (``K / 4``), which
    float32 sums of the dequantised values miss by an ulp either way: refused. A window of 9
    never averages to a half (``K / 9``), so it is accepted."""
    assert engine_average_scale(0.05, 3, 0.05, 3, (-128, 127), (2, 2)) is None
    assert engine_average_scale(0.05, 3, 0.05, 3, (-128, 127), (3, 3)) is not None


def test_what_the_engine_cannot_do_is_refused():
    ok = dict(x_scale=0.05, x_zero=3, y_scale=0.05, y_zero=3, x_range=(-128, 127),
              kernel=(3, 3))
    assert engine_average_scale(**ok, pads=(1, 1, 1, 1)) is None       # uneven counts
    assert engine_average_scale(**ok, pads=(1, 1, 1, 1), count_include_pad=True) is not None
    # ceil_mode adding a window past the padding: 8 wide, window 3, stride 2 -> 4 windows, not 3
    assert engine_average_scale(**ok, stride=(2, 2), ceil_mode=True, in_shape=(8, 8)) is None
    assert engine_average_scale(**ok, stride=(2, 2), ceil_mode=True, in_shape=(9, 9)) \
        is not None
