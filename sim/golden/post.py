"""Golden model of the engine's post-processing commands (CONFIG_POST, CONFIG_POST_ADD,
CONFIG_POST_OUT, MAXPOOL, QLINEAR_ADD) on a main-memory bytearray.

The arithmetic is not written here: max-pooling is :func:`.conv.maxpool2d` and the addition
:func:`.eltwise.qlinear_add_scaled`, the functions the firmware and the ONNX compiler are checked
against, so the post-processing unit (``rvnpu.hdl.engine.post``) agrees with them by
construction of its test. This file adds what the commands add: registers that configuration
commands set, the refusals, and where tensors sit in memory.
"""

from dataclasses import dataclass, field

import numpy as np

from rvnpu.sim.golden.conv import maxpool2d, window_count
from rvnpu.sim.golden.eltwise import qlinear_add_scaled
from rvnpu.spec.commands import ErrorCode, Funct, PostConstant, Unit, decode


__all__ = ["PostRegisters", "pool_shape", "check_post", "execute_post", "run_post",
           "float_of_bits"]


def float_of_bits(bits):
    """The float32 whose bit pattern is the 32-bit integer ``bits``."""
    return np.array([bits & 0xFFFFFFFF], np.uint32).view(np.float32)[0]


@dataclass
class PostRegisters:
    """What CONFIG_POST, CONFIG_POST_ADD and CONFIG_POST_OUT leave for later commands."""
    height: int = 0
    width: int = 0
    kernel_h: int = 0
    kernel_w: int = 0
    channels: int = 0
    stride_h: int = 0
    stride_w: int = 0
    elem_signed: int = 0
    constants: list = field(default_factory=lambda: [0] * len(PostConstant))  # bit patterns
    out_addr: int = 0
    clamp_min: int = 0
    clamp_max: int = 0

    def update(self, funct, fields):
        """Absorb a configuration command (already checked)."""
        if funct == Funct.CONFIG_POST_ADD:
            self.constants[fields["index"]] = fields["value"]
        else:
            for name, value in fields.items():
                setattr(self, name, value)

    @property
    def count(self):
        """Elements a QLINEAR_ADD adds."""
        return self.height * self.width * self.channels


def pool_shape(regs):
    """``(OH, OW, C)`` of a MAXPOOL with registers ``regs``."""
    return (window_count(regs.height, regs.kernel_h, regs.stride_h),
            window_count(regs.width, regs.kernel_w, regs.stride_w), regs.channels)


def _inside(addr, size, mem_bytes):
    return size == 0 or addr + size <= mem_bytes


def check_post(regs, funct, fields, mem_bytes):
    """The :class:`ErrorCode` a post command gets (``NONE`` if it runs)."""
    if funct == Funct.CONFIG_POST_ADD:
        return ErrorCode.BAD_CONFIG if fields["index"] >= len(PostConstant) else ErrorCode.NONE
    if funct not in (Funct.MAXPOOL, Funct.QLINEAR_ADD):
        return ErrorCode.NONE
    lo, hi = (-128, 127) if regs.elem_signed else (0, 255)
    if not lo <= regs.clamp_min <= regs.clamp_max <= hi:
        return ErrorCode.BAD_CONFIG
    if funct == Funct.MAXPOOL:
        if not (1 <= regs.kernel_h <= regs.height and 1 <= regs.kernel_w <= regs.width
                and regs.stride_h >= 1 and regs.stride_w >= 1):
            return ErrorCode.BAD_CONFIG
        spans = [(fields["in_addr"], regs.count),
                 (regs.out_addr, int(np.prod(pool_shape(regs))))]
    else:
        if any((bits >> 23) & 0xFF == 0xFF for bits in regs.constants):
            return ErrorCode.BAD_CONFIG                 # an infinity or a NaN
        spans = [(fields[name], regs.count) for name in ("a_addr", "b_addr")]
        spans.append((regs.out_addr, regs.count))
    if not all(_inside(addr, size, mem_bytes) for addr, size in spans):
        return ErrorCode.BAD_MEMORY
    return ErrorCode.NONE


def _tensor(memory, addr, count, signed):
    values = np.frombuffer(bytes(memory[addr:addr + count]), np.uint8).astype(np.int64)
    return np.where(values > 127, values - 256, values) if signed else values


def execute_post(regs, funct, fields, memory):
    """Run one checked post command on ``memory`` (a bytearray), updating ``regs``."""
    if funct in (Funct.CONFIG_POST, Funct.CONFIG_POST_ADD, Funct.CONFIG_POST_OUT):
        regs.update(funct, fields)
        return
    clamp = (regs.clamp_min, regs.clamp_max)
    if regs.count == 0:
        return
    if funct == Funct.MAXPOOL:
        x = _tensor(memory, fields["in_addr"], regs.count, regs.elem_signed)
        x = x.reshape(regs.height, regs.width, regs.channels)
        out = np.clip(maxpool2d(x, (regs.kernel_h, regs.kernel_w),
                                (regs.stride_h, regs.stride_w)), *clamp)
    else:
        a, b = (_tensor(memory, fields[name], regs.count, regs.elem_signed)
                for name in ("a_addr", "b_addr"))
        out = qlinear_add_scaled(a, b, *(float_of_bits(v) for v in regs.constants), clamp)
    out = (np.asarray(out).ravel() & 0xFF).astype(np.uint8).tobytes()
    memory[regs.out_addr:regs.out_addr + len(out)] = out


def run_post(commands, memory, regs=None):
    """Run ``(funct, op1, op2)`` post commands on ``memory`` in order. A refused command is
    skipped, as the engine skips it. Returns ``(regs, refusals)``: the final registers and a
    list of ``(position, funct, ErrorCode)``."""
    regs = PostRegisters() if regs is None else regs
    refusals = []
    for i, (funct, op1, op2) in enumerate(commands):
        cmd, fields = decode(funct, op1, op2)
        if cmd.unit != Unit.POST:
            raise ValueError(f"{cmd.name} is not a post-processing command")
        error = check_post(regs, cmd.funct, fields, len(memory))
        if error:
            refusals.append((i, cmd.funct, error))
        else:
            execute_post(regs, cmd.funct, fields, memory)
    return regs, refusals
