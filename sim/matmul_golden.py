"""The golden result of ``firmware/examples/matmul.c``, computed in Python.

The example makes its operands with a xorshift32 generator; this module repeats the generator
draw for draw, computes ``C`` with :func:`rvnpu.sim.gemm.gemm_reference` (numpy and the
requantisation golden model) and the same FNV-1a checksum of ``C``'s bytes that the firmware
prints. A firmware run is thus checked bit for bit without reading its RAM back.
"""

import dataclasses
import re

import numpy as np

from rvnpu.hdl.config import EngineConfig
from rvnpu.sim.gemm import Requant, gemm_reference


__all__ = ["MatmulExample", "matmul_example", "fnv1a", "parse_checksum"]


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
    c_bytes = (c & ((1 << (8 * eb)) - 1)).astype("<u2" if eb == 2 else "u1").tobytes()
    return MatmulExample(a=a, b=b, bias=bias, requant=requant, a_zero=a_zero, c=c,
                         c_bytes=c_bytes, checksum=fnv1a(c_bytes))


def parse_checksum(text):
    """The checksum of ``C`` that ``matmul.c`` printed last (its ``C at ...`` line), or
    ``None``; a ``FAILED`` line's checksum is not it."""
    found = re.search(r"^C at 0x[0-9a-f]{8}, checksum 0x([0-9a-f]{8})$", text, re.M)
    return int(found.group(1), 16) if found else None
