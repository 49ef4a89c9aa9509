"""A QLinearAdd fused into a convolution's stores (``compile_conv(..., add=SkipAdd(...))``).

A residual Add after a convolution reads the convolution's output and a *skip* tensor written
earlier. STORE_ADD requantises the accumulators as STORE does and adds the skip tensor's
elements with QLINEAR_ADD's arithmetic before writing, so the convolution's output is never
written nor read back. Every STORE_ADD finds its skip rows one fixed offset from where it
writes, at the output's row stride: the skip tensor must lie in memory as the output map does
(the same buffer width and pixel pitch), which this module checks.
"""

from dataclasses import dataclass

import numpy as np

from rvnpu.spec.commands import Funct, PostConstant, encode
from rvnpu.sim.golden.engine import element_range
from rvnpu.compiler.gemm import GemmError


__all__ = ["SkipAdd", "skip_offset", "skip_add_commands"]


@dataclass(frozen=True)
class SkipAdd:
    """The Add a convolution's stores perform: ``c = clamp(rint(fma(a, ratio_a, fma(b,
    ratio_b, fixed))))`` in float32, where ``a`` is the skip tensor's element and ``b`` the
    convolution's requantised output with ``skip_first``, else the other way round.

    ``skip`` is the skip tensor's :class:`~rvnpu.compiler.conv.FeatureMap`; the constants are
    float32 values (MLAS's, see
    :func:`rvnpu.compiler.onnx.layers.add.qlinear_add_constants`); ``clamp`` is the output's
    ``(lo, hi)``; ``signed`` says the skip elements, the convolution's outputs and the result
    are int8 (else uint8).
    """
    skip: object
    ratio_a: float
    ratio_b: float
    fixed: float
    clamp: tuple = (-128, 127)
    signed: bool = True
    skip_first: bool = False

    def constants(self):
        """``{PostConstant: float32 bit pattern}`` of the three constants."""
        values = (self.ratio_a, self.ratio_b, self.fixed)
        return {index: int(np.asarray(v, np.float32).view(np.uint32))
                for index, v in zip((PostConstant.RATIO_A, PostConstant.RATIO_B,
                                     PostConstant.FIXED), values)}


def skip_offset(add, x, y, spec, config):
    """Bytes from each output element to its skip element (modulo 2**32), after refusing
    with a one-line :class:`GemmError` an Add the stores cannot take: a skip tensor laid out
    unlike the output ``y``, overlapping it, constants that are not finite float32 values, a
    clamp or a convolution output outside the element type."""
    skip, eb = add.skip, config.elem_bytes
    skip.check("skip tensor", config)
    if (skip.h, skip.w, skip.channels) != (y.h, y.w, y.channels):
        raise GemmError(f"the skip tensor is {skip.h}x{skip.w}x{skip.channels}, the output "
                        f"{y.h}x{y.w}x{y.channels}: the Add is not fused")
    if (skip.width, skip.pitch) != (y.width, y.pitch):
        raise GemmError(f"the skip tensor's buffer rows are {skip.width} pixels of "
                        f"{skip.pitch}, the output's {y.width} of {y.pitch}: one offset "
                        f"cannot reach it, the Add is not fused")
    offset = skip.addr(skip.top, skip.left, 0, eb) - y.addr(y.top, y.left, 0, eb)
    if offset and np.intersect1d(skip.interior_addresses(eb), y.interior_addresses(eb)).size:
        raise GemmError("the output overlaps the skip tensor without being it: the Add is "
                        "not fused")
    for index, bits in add.constants().items():
        if (bits >> 23) & 0xFF == 0xFF:
            raise GemmError(f"the Add's {index.name.lower()} is not a finite float32: the "
                            f"Add is not fused")
    lo, hi = element_range(8, add.signed)
    kind = "int8" if add.signed else "uint8"
    if not lo <= add.clamp[0] <= add.clamp[1] <= hi:
        raise GemmError(f"the Add's clamp {tuple(add.clamp)} is not a range of {kind} "
                        f"elements")
    rq = spec.requant
    if not lo <= rq.clamp_min <= rq.clamp_max <= hi:
        raise GemmError(f"the convolution's outputs [{rq.clamp_min}, {rq.clamp_max}] are not "
                        f"{kind} elements like the skip tensor's: the Add is not fused")
    return offset & 0xFFFFFFFF


def skip_add_commands(add, offset):
    """The configuration every STORE_ADD of the program reads: the three constants and the
    skip tensor's place, element type, operand order and clamp."""
    commands = [encode(Funct.CONFIG_STORE_ADD, value=bits, index=index)
                for index, bits in add.constants().items()]
    commands.append(encode(Funct.CONFIG_STORE_SKIP, offset=offset, clamp_min=add.clamp[0],
                           clamp_max=add.clamp[1], elem_signed=int(add.signed),
                           skip_first=int(add.skip_first)))
    return commands
