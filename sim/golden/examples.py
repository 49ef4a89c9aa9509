"""The expected outputs of the firmware examples ``matmul.c`` and ``conv.c``, in Python.

Both examples make their operands with one xorshift32 generator (``example_data.h``); this
module repeats it draw for draw, computes the results with the golden operators
(:func:`rvnpu.sim.golden.gemm.gemm_reference`, :mod:`rvnpu.sim.golden.conv`: the firmware's
lowering, but none of its code) and the FNV-1a checksums of their bytes that the firmware
prints. A firmware run is thus checked bit for bit without reading its RAM back.
"""

import dataclasses
import re

import numpy as np

from rvnpu.spec.config import EngineConfig
from rvnpu.sim.golden.conv import conv2d, maxpool2d
from rvnpu.sim.golden.gemm import Requant, gemm_reference


__all__ = ["fnv1a", "MatmulExample", "matmul_example", "parse_checksum",
           "ConvExample", "conv_example", "parse_checksums", "parse_cycles"]


def _xorshift32(state):
    while True:
        state ^= (state << 13) & 0xFFFF_FFFF
        state ^= state >> 17
        state ^= (state << 5) & 0xFFFF_FFFF
        yield state


def fnv1a(data):
    """32-bit FNV-1a of ``data`` (bytes)."""
    h = 0x811C9DC5
    for byte in bytes(data):
        h = ((h ^ byte) * 16777619) & 0xFFFF_FFFF
    return h


def _element_bytes(values, elem_bytes):
    """``values`` as the firmware stores elements of ``elem_bytes`` bytes."""
    return (np.asarray(values, np.int64) & ((1 << (8 * elem_bytes)) - 1)).astype(
        "<u2" if elem_bytes == 2 else "u1").tobytes()


# -- matmul.c --------------------------------------------------------------------------------

@dataclasses.dataclass
class MatmulExample:
    a: np.ndarray
    b: np.ndarray
    bias: np.ndarray
    requant: Requant
    a_zero: int
    c: np.ndarray          #: the expected output elements
    c_bytes: bytes         #: ``c`` as the firmware stores it
    checksum: int


def matmul_example(m=64, n=64, k=64, *, seed=1, config=EngineConfig(), relu=False):
    """What ``matmul.c`` built with ``-DM=m -DN=n -DK=k -DSEED=seed`` (and ``-DRELU``)
    computes on an engine of ``config``."""
    w, eb = config.in_width, config.elem_bytes
    draw = _xorshift32(seed or 1)

    def elements(count):
        return np.array([((next(draw) >> 8) & ((1 << w) - 1)) - (1 << (w - 1))
                         for _ in range(count)], np.int64)

    a = elements(m * k).reshape(m, k)
    b = elements(k * n).reshape(k, n)
    base_shift = 7 + (k.bit_length() - 1 + 1) // 2
    bias, multiplier, shift = (np.zeros(n, np.int64) for _ in range(3))
    for j in range(n):
        bias[j] = ((next(draw) >> 8) & 0x1FFF) - 4096
        multiplier[j] = 0x4000_0000 | (next(draw) >> 2)
        shift[j] = -base_shift - ((next(draw) >> 8) & 1)
    a_zero = ((next(draw) >> 8) & 7) - 4
    out_zero = ((next(draw) >> 8) & 7) - 4
    out_max = (1 << (w - 1)) - 1
    requant = Requant(mode="tflite", multiplier=multiplier, shift=shift, out_zero=out_zero,
                      clamp_min=out_zero if relu else -out_max - 1, clamp_max=out_max)
    c = gemm_reference(a, b, bias, requant, a_zero=a_zero)
    c_bytes = _element_bytes(c, eb)
    return MatmulExample(a=a, b=b, bias=bias, requant=requant, a_zero=a_zero, c=c,
                         c_bytes=c_bytes, checksum=fnv1a(c_bytes))


def parse_checksum(text):
    """The checksum of ``C`` that ``matmul.c`` printed last (its ``C at ...`` line), or
    ``None``; a ``FAILED`` line's checksum is not it."""
    found = re.search(r"^C at 0x[0-9a-f]{8}, checksum 0x([0-9a-f]{8})$", text, re.M)
    return int(found.group(1), 16) if found else None


# -- conv.c ----------------------------------------------------------------------------------

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
