"""The golden result of ``firmware/examples/conv.c``, computed in Python.

The example draws its operands from the xorshift32 generator of ``matmul.c``; this module
repeats the draws, convolves with numpy im2col and :func:`rvnpu.sim.gemm.gemm_reference` (the
firmware's lowering, but none of its code), max-pools with numpy and returns the FNV-1a
checksums the firmware prints, so a run is checked bit for bit without reading its RAM back.
"""

import dataclasses
import re

import numpy as np

from rvnpu.hdl.config import EngineConfig
from rvnpu.sim.gemm import Requant, gemm_reference
from rvnpu.sim.matmul_golden import _xorshift32, fnv1a


__all__ = ["ConvExample", "conv_example", "window_count", "im2col", "conv2d", "maxpool2d",
           "parse_checksums", "parse_cycles"]


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


@dataclasses.dataclass
class ConvExample:
    input: np.ndarray      #: ``(H, W, C_in)``
    weights: np.ndarray    #: ``(KH, KW, C_in, C_out)``
    bias: np.ndarray
    requant: Requant
    in_zero: int
    weight_zero: int
    output: np.ndarray     #: the expected convolution, ``(out_h, out_w, C_out)``
    pooled: np.ndarray
    conv_checksum: int
    pool_checksum: int


def _element_bytes(values, elem_bytes):
    return (np.asarray(values, np.int64) & ((1 << (8 * elem_bytes)) - 1)).astype(
        "<u2" if elem_bytes == 2 else "u1").tobytes()


def conv_example(h=6, w=6, cin=2, cout=8, kh=3, kw=3, *, stride=1, pad=1, pool=2, seed=1,
                 config=EngineConfig(), relu=False, extreme=False):
    """What ``conv.c`` built with ``-DH=h -DW=w -DCIN=cin -DCOUT=cout -DKH=kh -DKW=kw
    -DSTRIDE=stride -DPAD=pad -DPOOL=pool -DSEED=seed`` (and ``-DRELU``, ``-DEXTREME``)
    computes on an engine of ``config``."""
    bits = config.in_width
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    draw = _xorshift32(seed or 1)

    def elements(count):
        raw = [next(draw) >> 8 for _ in range(count)]
        if extreme:
            return np.array([hi if r & 1 else lo for r in raw], np.int64)
        return np.array([(r & ((1 << bits) - 1)) + lo for r in raw], np.int64)

    x = elements(h * w * cin).reshape(h, w, cin)
    weights = elements(kh * kw * cin * cout).reshape(kh, kw, cin, cout)
    depth = kh * kw * cin
    base_shift = 7 + depth.bit_length() // 2
    bias, multiplier, shift = (np.zeros(cout, np.int64) for _ in range(3))
    for j in range(cout):
        bias[j] = ((next(draw) >> 8) & 0x1FFF) - 4096
        multiplier[j] = 0x4000_0000 | (next(draw) >> 2)
        shift[j] = -base_shift - ((next(draw) >> 8) & 1)
    in_zero = ((next(draw) >> 8) & 7) - 4
    weight_zero = ((next(draw) >> 8) & 3) - 2
    out_zero = ((next(draw) >> 8) & 7) - 4
    requant = Requant(mode="tflite", multiplier=multiplier, shift=shift, out_zero=out_zero,
                      clamp_min=out_zero if relu else lo, clamp_max=hi)
    output = conv2d(x, weights, bias, requant, stride=stride, pad=pad, in_zero=in_zero,
                    weight_zero=weight_zero)
    pooled = maxpool2d(output, pool, pool)
    eb = config.elem_bytes
    return ConvExample(input=x, weights=weights, bias=bias, requant=requant, in_zero=in_zero,
                       weight_zero=weight_zero, output=output, pooled=pooled,
                       conv_checksum=fnv1a(_element_bytes(output, eb)),
                       pool_checksum=fnv1a(_element_bytes(pooled, eb)))


def parse_checksums(text):
    """``{"conv": ..., "pool": ...}``: the checksums ``conv.c`` printed (those it did)."""
    return {name: int(value, 16)
            for name, value in re.findall(r"^(conv|pool) checksum 0x([0-9a-f]{8})$", text, re.M)}


def parse_cycles(text):
    """``{"engine": ..., "cpu": ...}``: the cycles ``conv.c`` printed for each path."""
    return {name: int(value)
            for name, value in re.findall(r"^(engine|cpu): cycles (\d+)", text, re.M)}
