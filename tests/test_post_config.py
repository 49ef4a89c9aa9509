"""The front end's post registers (hdl/engine/post_config.py): after a CONFIG_POST, the sizes
derived from it (MAXPOOL's output rows and columns by a divider taking a quotient bit a cycle,
the element counts by saturated products) equal the golden model's (sim/golden/post.py) by the
last cycle a post command waits out, in Amaranth's simulator.

Only the checks of a valid shape reach a command's outcome (a refused shape never gets to the
counts), so the engine-level tests cannot see a wrong count for kernel > size, stride 0 or
kernel 0; here every shape is compared, and so is a configuration replaced while the previous
one is still settling.
"""

from functools import partial

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.sim import Simulator

from rvnpu.hdl.command_port import CommandLayout
from rvnpu.hdl.engine.post_config import PostRegisters
from rvnpu.hdl.engine.unit_ops import dram_addr_bits
from rvnpu.sim.golden.post import PostRegisters as GoldenRegisters, pool_shape
from rvnpu.spec.commands import Funct, field_of, encode
from rvnpu.spec.config import EngineConfig


_SIZES = ("out_height", "out_width", "count", "out_count")


def _field(cmd, funct, name):
    f = field_of(funct, name)
    value = (cmd.op1 if f.operand == 1 else cmd.op2)[f.lsb:f.lsb + f.width]
    return value.as_signed() if f.signed else value


class _Harness(Elaboratable):
    """:class:`PostRegisters` taking ``cmd`` while ``take`` is high, as the front end does."""

    def __init__(self, config):
        self.config = config
        self.cmd = Signal(CommandLayout)
        self.take = Signal()

    def elaborate(self, platform):
        m = Module()
        self.regs = PostRegisters(m, self.config)
        with m.If(self.take):
            self.regs.update(m, self.cmd.funct, partial(_field, self.cmd))
        return m


def _shapes(rng, count):
    """Edge cases of the division (kernel > size, kernel 0, stride 0, size 0, the largest
    sizes, kernel == size, strides beyond the span) and of the products, then random ones."""
    top = (1 << field_of(Funct.CONFIG_POST, "height").width) - 1
    base = dict(height=7, width=9, kernel_h=3, kernel_w=2, channels=5, stride_h=2,
                stride_w=1, elem_signed=0)
    edges = [
        dict(kernel_h=8), dict(kernel_w=15, width=3), dict(kernel_h=0), dict(kernel_w=0),
        dict(stride_h=0), dict(stride_w=0), dict(height=0), dict(width=0, kernel_w=0),
        dict(height=top, width=top, kernel_h=1, kernel_w=1, stride_h=1, stride_w=1),
        dict(height=top, width=top, kernel_h=15, kernel_w=15, stride_h=15, stride_w=15,
             channels=0xFFFF),
        dict(height=3, kernel_h=3, width=15, kernel_w=15), dict(stride_h=15, stride_w=15),
        dict(height=top, kernel_h=2, stride_h=3, channels=0), dict(channels=0xFFFF),
        dict(height=1, width=1, kernel_h=1, kernel_w=1, stride_h=1, stride_w=1, channels=1),
    ]
    shapes = [{**base, **edge} for edge in edges]
    for _ in range(count):
        big = rng.random() < 0.3
        shapes.append(dict(
            height=int(rng.integers(0, top + 1 if big else 40)),
            width=int(rng.integers(0, top + 1 if big else 40)),
            kernel_h=int(rng.integers(0, 16)), kernel_w=int(rng.integers(0, 16)),
            channels=int(rng.integers(0, 1 << 16 if big else 300)),
            stride_h=int(rng.integers(0, 16)), stride_w=int(rng.integers(0, 16)),
            elem_signed=int(rng.integers(0, 2))))
    return shapes


def _expected(shape, config):
    """The golden model's sizes, as the hardware holds them: exact below the saturation bit,
    that bit alone beyond."""
    regs = GoldenRegisters()
    regs.update(Funct.CONFIG_POST, shape)
    oh, ow, channels = pool_shape(regs)
    limit = 1 << (dram_addr_bits(config) + 1)
    return {"out_height": oh, "out_width": ow, "count": min(regs.count, limit),
            "out_count": min(oh * ow * channels, limit)}


@pytest.mark.parametrize("mem_bytes", [1 << 12, 64 << 10])
def test_derived_sizes_match_the_golden_model(mem_bytes):
    config = EngineConfig(rows=2, cols=2, spad_depth=32, acc_depth=16, qp_depth=8,
                          mem_bytes=mem_bytes)
    dut = _Harness(config)
    limit = 1 << (dram_addr_bits(config) + 1)
    rng = np.random.default_rng(mem_bytes)
    shapes = _shapes(rng, 120)
    # Some configurations replace the one before while it settles, some cycles later.
    interrupt = [int(rng.integers(1, PostRegisters.settle_cycles)) if rng.random() < 0.25
                 else None for _ in shapes]
    seen = []

    async def bench(ctx):
        regs = dut.regs
        for shape, cut in zip(shapes, interrupt):
            if cut is not None:         # a shape with everything at 1, cut short
                funct, op1, op2 = encode(Funct.CONFIG_POST, **{k: 1 for k in shape})
                ctx.set(dut.cmd, {"funct": funct, "op1": op1, "op2": op2})
                ctx.set(dut.take, 1)
                await ctx.tick()
                ctx.set(dut.take, 0)
                await ctx.tick().repeat(cut)
            funct, op1, op2 = encode(Funct.CONFIG_POST, **shape)
            ctx.set(dut.cmd, {"funct": funct, "op1": op1, "op2": op2})
            ctx.set(dut.take, 1)
            await ctx.tick()
            ctx.set(dut.take, 0)
            waited, last = 0, None
            while ctx.get(regs.settling):
                # The sizes held in the last cycle before settling ends: those a decoded post
                # command's checks, registered once more, read then.
                last = {name: ctx.get(getattr(regs, name)) for name in _SIZES}
                waited += 1
                await ctx.tick()
            assert waited == PostRegisters.settle_cycles
            assert {name: ctx.get(getattr(regs, name)) for name in _SIZES} == last, shape
            seen.append(last)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(seen) == len(shapes)
    for shape, got in zip(shapes, seen):
        want = _expected(shape, config)
        got = {k: (min(v, limit) if k in ("count", "out_count") else v) for k, v in got.items()}
        assert got == want, shape
