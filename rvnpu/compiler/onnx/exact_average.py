"""When an average pool may run on the engine: a proof, per layer, that the engine's integer
requantisation rounds every window as onnxruntime's float32 QLinearAveragePool does.

onnxruntime averages a window smaller than the map in float32
(:func:`rvnpu.sim.golden.pool.average_pool2d`): it sums the dequantised values one by one, so its
result depends on their order, not only on their integer sum ``K``, and no integer hardware can
follow it in general. The engine, as a depthwise convolution of ones, computes
``rint(f32(K) * scale)`` for one float32 ``scale``. Both are within a small, boundable distance of
the exact ``E = K * x_scale / (count * y_scale)``: where every achievable ``K`` puts ``E``
farther than both bounds from a half-integer, both round to the integer nearest ``E`` and agree
bit for bit. That is checked here for all ``K`` (a few thousand); a pool for which it fails (an
exact tie, such as ``E = 1/2`` with the input's scale and a window of 4) stays on the core.
"""

import numpy as np

from rvnpu.sim.golden.pool import global_pool_scale, pool_output_size


__all__ = ["engine_average_scale"]

_U = 2.0 ** -24         # float32's unit roundoff (round to nearest)


def engine_average_scale(x_scale, x_zero, y_scale, y_zero, x_range, kernel, stride=(1, 1),
                         pads=(0, 0, 0, 0), count_include_pad=False, ceil_mode=False,
                         in_shape=None):
    """The float32 requantisation scale with which a depthwise convolution of ones (padding
    the input with ``x_zero``) gives exactly onnxruntime's QLinearAveragePool, or ``None`` when
    that cannot be proven: windows of different counts (padding not counted), a ``ceil_mode``
    window past the padding, or some window sum whose average lies too near a tie.
    ``x_range`` is ``(lo, hi)`` of the input's integers, ``in_shape`` its ``(H, W)``."""
    kh, kw = kernel
    count = kh * kw
    if any(pads) and not count_include_pad:
        return None
    if ceil_mode and in_shape is not None:
        for side, k, s, head, tail in ((in_shape[0], kh, stride[0], pads[0], pads[2]),
                                       (in_shape[1], kw, stride[1], pads[1], pads[3])):
            if pool_output_size(side, k, s, head, tail, True) != \
                    pool_output_size(side, k, s, head, tail, False):
                return None
    lo, hi = x_range
    k_min, k_max = lo - x_zero, hi - x_zero
    if count * max(-k_min, k_max) >= 1 << 24:
        return None
    xs, ys = float(np.float32(x_scale)), float(np.float32(y_scale))
    sums = np.arange(count * k_min, count * k_max + 1, dtype=np.float64)
    exact = sums * xs / (count * ys)            # float64: relative error below 1e-15
    # onnxruntime's float32 path: each value xs * k rounded, the running sum of up to `count`
    # terms (Higham's gamma), then / count, / y_scale, + y_zero, each rounded once.
    gamma = (count - 1) * _U / (1 - (count - 1) * _U)
    sum_error = xs * count * max(-k_min, k_max) * (_U + gamma * (1 + _U))
    drift = sum_error / (count * ys)
    ort_bound = drift + (np.abs(exact) + drift) * 3 * _U + \
        (np.abs(exact) + drift + abs(y_zero)) * 1.5 * _U
    # The engine's: the scale rounded twice, the product once.
    engine_bound = np.abs(exact) * 4 * _U
    bound = 2 * np.maximum(ort_bound, engine_bound) + np.abs(exact) * 1e-14 + 1e-12
    distance = np.abs(exact - np.floor(exact) - 0.5)
    if np.any(distance <= bound):
        return None
    return global_pool_scale(x_scale, y_scale, count)
