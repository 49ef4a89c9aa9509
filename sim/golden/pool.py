"""Golden quantised average pooling, in numpy: the one specification of its arithmetic.

onnxruntime computes a quantised average pool (``QLinearAveragePool``, which its graph optimiser
also makes of a QDQ ``DequantizeLinear -> AveragePool -> QuantizeLinear``) in float32: each input
is dequantised as ``x_scale * (x - x_zero)``, a window's values are summed one at a time (rows,
then columns), the sum is divided by the window's element count, and the result quantised as
``nearbyint(y / y_scale + y_zero)`` (half to even), saturated. A window that covers the whole
unpadded input, and ``QLinearGlobalAveragePool``, take MLAS's integer path instead: the sum of
the integers minus ``x_zero * count``, times the float32 ``x_scale / (y_scale * count)``,
rounded half to even, plus ``y_zero``: the engine's ONNX Runtime requantisation. The firmware's
``rvnpu_avgpool2d`` (``rvnpu_pool.h``) follows these functions step for step.
"""

import numpy as np


__all__ = ["pool_output_size", "average_pool2d", "global_average_pool", "global_pool_scale"]

_F32 = np.float32


def pool_output_size(size, kernel, stride, pad_head=0, pad_tail=0, ceil_mode=False):
    """Windows along a side, as onnxruntime's pooling counts them: with ``ceil_mode`` a last
    partial window is kept if it starts inside the input or its head padding."""
    span = size + pad_head + pad_tail - kernel
    if span < 0 or stride < 1:
        return 0
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + pad_head:
        out -= 1
    return out


def global_pool_scale(x_scale, y_scale, count):
    """MLAS's float32 requantisation scale of a global average of ``count`` values."""
    return _F32(_F32(x_scale) / _F32(_F32(y_scale) * _F32(count)))


def global_average_pool(x, x_scale, x_zero, y_scale, y_zero, lo, hi):
    """Global average of an ``(H, W, C)`` input per channel, MLAS's integer way; ``(C,)``."""
    x = np.asarray(x, np.int64)
    count = x.shape[0] * x.shape[1]
    acc = x.reshape(count, -1).sum(axis=0) - x_zero * count
    scale = global_pool_scale(x_scale, y_scale, count)
    y = np.rint((acc.astype(_F32) * scale).astype(np.float64)).astype(np.int64) + y_zero
    return np.clip(y, lo, hi)


def average_pool2d(x, x_scale, x_zero, y_scale, y_zero, lo, hi, *, kernel, stride=(1, 1),
                   pads=(0, 0, 0, 0), count_include_pad=False, ceil_mode=False):
    """Average pool of an ``(H, W, C)`` input as onnxruntime's QLinearAveragePool computes it;
    ``pads`` are (top, left, bottom, right). An ``(out_h, out_w, C)`` result."""
    x = np.asarray(x, np.int64)
    h, w, c = x.shape
    (kh, kw), (sh, sw) = kernel, stride
    top, left, bottom, right = pads
    out_h = pool_output_size(h, kh, sh, top, bottom, ceil_mode)
    out_w = pool_output_size(w, kw, sw, left, right, ceil_mode)
    if not out_h or not out_w:
        raise ValueError(f"a {kh}x{kw} window does not fit a {h}x{w} input")
    if (kh, kw) == (h, w) and not any(pads):
        return global_average_pool(x, x_scale, x_zero, y_scale, y_zero, lo, hi)[None, None]
    values = (_F32(x_scale) * (x - x_zero).astype(_F32)).astype(_F32)
    y = np.empty((out_h, out_w, c), np.int64)
    for oy in range(out_h):
        y0 = oy * sh - top
        y1, y0 = min(y0 + kh, h), max(y0, 0)
        for ox in range(out_w):
            x0 = ox * sw - left
            x1, x0 = min(x0 + kw, w), max(x0, 0)
            total = np.zeros(c, _F32)
            for row in range(y0, y1):
                for col in range(x0, x1):
                    total = (total + values[row, col]).astype(_F32)
            count = kh * kw if count_include_pad else (y1 - y0) * (x1 - x0)
            mean = (total / _F32(count)).astype(_F32)
            q = ((mean / _F32(y_scale)).astype(_F32) + _F32(y_zero)).astype(_F32)
            y[oy, ox] = np.rint(q.astype(np.float64)).astype(np.int64)
    return np.clip(y, lo, hi)
