"""Golden quantised convolution and max-pooling, in numpy.

The convolution is lowered as the firmware lowers it (im2col, then
:func:`rvnpu.sim.golden.gemm.gemm_reference`) but shares none of its code. The firmware library
(``rvnpu_conv.h``) is tested against it; the ONNX compiler's reference and the expected output
of the ``conv.c`` example (:mod:`rvnpu.sim.golden.examples`) are computed with it.
"""

import numpy as np

from rvnpu.sim.golden.gemm import Requant, gemm_reference


__all__ = ["window_count", "im2col", "conv2d", "maxpool2d"]


def _pair(value):
    return (value, value) if np.isscalar(value) else tuple(value)


def window_count(size, kernel, stride, pad=0):
    """Positions of a ``kernel`` window along a side of ``size`` padded by ``pad`` on each
    end, moving by ``stride``: ``rvnpu_window_count`` of ``rvnpu_conv.h``."""
    padded = size + 2 * pad
    if stride < 1 or kernel < 1 or kernel > padded:
        return 0
    return (padded - kernel) // stride + 1


def im2col(x, kernel, stride=1, pad=0, zero=0):
    """The patch matrix of an ``(H, W, C)`` input: one row an output pixel (row-major), its
    taps ordered kernel row, kernel column, channel, as HWIO weights flatten. Padding holds
    ``zero``. Returns ``(patches, (out_h, out_w))``."""
    x = np.asarray(x, np.int64)
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(pad)
    out_h = window_count(x.shape[0], kh, sh, ph)
    out_w = window_count(x.shape[1], kw, sw, pw)
    if not out_h or not out_w:
        raise ValueError(f"a {kh}x{kw} kernel with stride {(sh, sw)} and padding {(ph, pw)} "
                         f"does not fit a {x.shape[0]}x{x.shape[1]} input")
    padded = np.pad(x, ((ph, ph), (pw, pw), (0, 0)), constant_values=zero)
    taps = [padded[ky:ky + sh * (out_h - 1) + 1:sh, kx:kx + sw * (out_w - 1) + 1:sw]
            for ky in range(kh) for kx in range(kw)]
    patches = np.stack(taps, axis=2).reshape(out_h * out_w, kh * kw * x.shape[2])
    return patches, (out_h, out_w)


def conv2d(x, weights, bias=None, requant=Requant(), *, stride=1, pad=0, in_zero=0,
           weight_zero=0):
    """Quantised convolution of an ``(H, W, C_in)`` input with ``(KH, KW, C_in, C_out)``
    weights, padded with ``in_zero``; an ``(out_h, out_w, C_out)`` result."""
    weights = np.asarray(weights, np.int64)
    kh, kw, cin, cout = weights.shape
    patches, (out_h, out_w) = im2col(x, (kh, kw), stride, pad, in_zero)
    out = gemm_reference(patches, weights.reshape(kh * kw * cin, cout), bias, requant,
                         a_zero=in_zero, b_zero=weight_zero)
    return out.reshape(out_h, out_w, cout)


def maxpool2d(x, kernel, stride):
    """Max-pool of an ``(H, W, C)`` input without padding (windows crossing the far edge are
    dropped)."""
    x = np.asarray(x, np.int64)
    (kh, kw), (sh, sw) = _pair(kernel), _pair(stride)
    out_h, out_w = window_count(x.shape[0], kh, sh), window_count(x.shape[1], kw, sw)
    windows = [x[ky:ky + sh * (out_h - 1) + 1:sh, kx:kx + sw * (out_w - 1) + 1:sw]
               for ky in range(kh) for kx in range(kw)]
    return np.max(windows, axis=0)
