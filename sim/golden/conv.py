"""Golden quantised convolution and max-pooling, in numpy.

The convolution is lowered as the firmware lowers it (im2col, then
:func:`rvnpu.sim.golden.gemm.gemm_reference`) but shares none of its code. The firmware library
(``rvnpu_conv.h``) is tested against it; the ONNX compiler's reference and the expected output
of the ``conv.c`` example (:mod:`rvnpu.sim.golden.examples`) are computed with it, and so is
what :mod:`rvnpu.compiler.conv` (no im2col) must produce. Grouped and depthwise convolutions
are the dense convolution with zero-valued (``weight_zero``) cross-group weights.
"""

import numpy as np

from rvnpu.sim.golden.gemm import Requant, gemm_reference


__all__ = ["pads_of", "window_count", "im2col", "dense_weights", "conv2d", "maxpool2d"]


def _pair(value):
    return (value, value) if np.isscalar(value) else tuple(value)


def pads_of(pad):
    """``(top, left, bottom, right)`` from one number, a symmetric ``(pad_h, pad_w)`` pair or
    the four sides in ONNX order (begins, then ends)."""
    pad = (pad,) * 4 if np.isscalar(pad) else tuple(int(p) for p in pad)
    if len(pad) == 2:
        pad = pad * 2
    if len(pad) != 4 or min(pad) < 0:
        raise ValueError(f"padding must be one, two or four non-negative numbers, not {pad}")
    return pad


def window_count(size, kernel, stride, pad=0, dilation=1, pad_end=None):
    """Positions of a ``kernel`` window (taps ``dilation`` apart) along a side of ``size``
    padded by ``pad`` at the start and ``pad_end`` (default ``pad``) at the end, moving by
    ``stride``: ``rvnpu_window_count`` of ``rvnpu_conv.h`` for the undilated, symmetric case."""
    padded = size + pad + (pad if pad_end is None else pad_end)
    span = dilation * (kernel - 1) + 1
    if stride < 1 or kernel < 1 or dilation < 1 or span > padded:
        return 0
    return (padded - span) // stride + 1


def im2col(x, kernel, stride=1, pad=0, zero=0, dilation=1):
    """The patch matrix of an ``(H, W, C)`` input: one row an output pixel (row-major), its
    taps ordered kernel row, kernel column, channel, as HWIO weights flatten. Padding
    (:func:`pads_of`) holds ``zero``; taps are ``dilation`` apart. Returns
    ``(patches, (out_h, out_w))``."""
    x = np.asarray(x, np.int64)
    (kh, kw), (sh, sw), (dh, dw) = _pair(kernel), _pair(stride), _pair(dilation)
    top, left, bottom, right = pads_of(pad)
    out_h = window_count(x.shape[0], kh, sh, top, dh, bottom)
    out_w = window_count(x.shape[1], kw, sw, left, dw, right)
    if not out_h or not out_w:
        raise ValueError(f"a {kh}x{kw} kernel with stride {(sh, sw)}, dilation {(dh, dw)} and "
                         f"padding {(top, left, bottom, right)} does not fit a "
                         f"{x.shape[0]}x{x.shape[1]} input")
    padded = np.pad(x, ((top, bottom), (left, right), (0, 0)), constant_values=zero)
    taps = [padded[ky * dh:ky * dh + sh * (out_h - 1) + 1:sh,
                   kx * dw:kx * dw + sw * (out_w - 1) + 1:sw]
            for ky in range(kh) for kx in range(kw)]
    patches = np.stack(taps, axis=2).reshape(out_h * out_w, kh * kw * x.shape[2])
    return patches, (out_h, out_w)


def dense_weights(weights, groups, weight_zero=0):
    """Grouped ``(KH, KW, C_in / groups, C_out)`` weights as the ``(KH, KW, C_in, C_out)``
    weights of the same convolution: each output channel sees only its group's input
    channels, the others hold ``weight_zero`` so that they add nothing."""
    weights = np.asarray(weights, np.int64)
    kh, kw, cin_g, cout = weights.shape
    if groups < 1 or cout % groups:
        raise ValueError(f"{cout} output channels do not split into {groups} groups")
    cout_g = cout // groups
    dense = np.full((kh, kw, cin_g * groups, cout), weight_zero, np.int64)
    for g in range(groups):
        dense[:, :, g * cin_g:(g + 1) * cin_g, g * cout_g:(g + 1) * cout_g] = \
            weights[:, :, :, g * cout_g:(g + 1) * cout_g]
    return dense


def conv2d(x, weights, bias=None, requant=Requant(), *, stride=1, pad=0, in_zero=0,
           weight_zero=0, dilation=1, groups=1):
    """Quantised convolution of an ``(H, W, C_in)`` input with ``(KH, KW, C_in / groups,
    C_out)`` weights, padded (:func:`pads_of`) with ``in_zero``; an ``(out_h, out_w, C_out)``
    result. ``groups`` splits the channels into independent convolutions (``groups == C_in``
    is a depthwise convolution)."""
    weights = np.asarray(weights, np.int64)
    if weights.shape[2] * groups != np.shape(x)[2]:
        raise ValueError(f"{weights.shape[2]} input channels a group times {groups} groups "
                         f"is not the input's {np.shape(x)[2]} channels")
    weights = dense_weights(weights, groups, weight_zero)
    kh, kw, cin, cout = weights.shape
    patches, (out_h, out_w) = im2col(x, (kh, kw), stride, pad, in_zero, dilation)
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
