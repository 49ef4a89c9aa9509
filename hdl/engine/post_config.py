"""The front end's share of the post-processing unit: its configuration registers, the tensor
sizes derived from them, and the refusals of ``sim/golden/post.check_post`` in hardware.

Why sizes are derived from the registers, not from the command: the sizes a MAXPOOL or
QLINEAR_ADD checks against the memory window take divisions and multiplications
(``(height - kernel_h) // stride_h + 1``, ``height * width * channels``). Worked out from the
registers in a pipeline of their own, they stay off the decoder's path; a post command waits
out the cycles after a configuration command (:attr:`PostRegisters.settling`). The divisions
take a quotient bit a cycle: done in one cycle, they set the engine's clock on ECP5 (19 MHz,
docs/boards.md), and post commands are rare enough that waiting a dozen cycles more after
a configuration command goes unseen.
"""

from amaranth.hdl import Cat, Const, Mux, Signal, signed

from rvnpu.spec.commands import ErrorCode, Funct, PostConstant, field_of
from rvnpu.hdl.engine.unit_ops import dram_addr_bits


__all__ = ["PostRegisters", "POST_CONFIGS", "POST_OPS"]


#: Commands the front end absorbs into :class:`PostRegisters`, and those the unit runs.
POST_CONFIGS = (Funct.CONFIG_POST, Funct.CONFIG_POST_ADD, Funct.CONFIG_POST_OUT)
POST_OPS = (Funct.MAXPOOL, Funct.QLINEAR_ADD)

_SHAPE = ("height", "width", "kernel_h", "kernel_w", "channels", "stride_h", "stride_w",
          "elem_signed")
_SIZE_BITS = field_of(Funct.CONFIG_POST, "height").width
assert field_of(Funct.CONFIG_POST, "width").width == _SIZE_BITS


def _window_count(m, name, size, kernel, stride, load, step):
    """``(size - kernel) // stride + 1`` (``window_count`` of sim/golden/conv.py: 0 unless
    ``1 <= kernel <= size`` and ``stride >= 1``), registered, worked out by restoring division
    a quotient bit a cycle: ``load`` starts it, each of the ``len(size)`` cycles with ``step``
    after takes a bit, and the count is right two cycles after the last (the quotient, then
    its register). Returns the count and whether the window is valid at all (registered
    as ``load`` starts the division)."""
    some = Signal(name=f"{name}_some")
    bits = Signal(len(size), name=f"{name}_bits")  # dividend bits to come above, quotient below
    rest = Signal(len(stride), name=f"{name}_rest")  # the remainder, below the stride
    trial = Cat(bits[-1], rest)
    fits = trial >= stride
    with m.If(load):
        m.d.sync += [some.eq((kernel != 0) & (kernel <= size) & (stride != 0)),
                     bits.eq(size - kernel), rest.eq(0)]
    with m.Elif(step):
        m.d.sync += [rest.eq(Mux(fits, trial - stride, trial)), bits.eq(Cat(fits, bits[:-1]))]
    count = Signal(len(size), name=name)
    m.d.sync += count.eq(Mux(some, bits + 1, 0))
    return count, some


class PostRegisters:
    """What CONFIG_POST, CONFIG_POST_ADD and CONFIG_POST_OUT set, at reset zero as in the
    golden model, and the element counts derived from them.

    ``out_addr`` and the counts are held saturated: below the window's size, with one bit set
    for anything beyond, which is all a check against the window needs.
    """

    #: Cycles after a configuration command until the derived sizes (and a decoded command's
    #: checks, registered once more) are those of the new registers: one to load the dividers,
    #: a quotient bit a cycle, then the window counts, their product, the element count and
    #: the checks, a register each.
    settle_cycles = _SIZE_BITS + 5

    def __init__(self, m, config):
        self._mb = mb = dram_addr_bits(config)
        self._mem_bytes = config.mem_bytes
        for name in _SHAPE:
            setattr(self, name, Signal(field_of(Funct.CONFIG_POST, name).width,
                                       name=f"post_{name}"))
        self.constants = [Signal(32, name=f"post_{k.name.lower()}") for k in PostConstant]
        self.out_addr = Signal(mb + 1, name="post_out_addr")
        self.clamp_min = Signal(signed(16), name="post_clamp_min")
        self.clamp_max = Signal(signed(16), name="post_clamp_max")
        self._updating = Signal(name="post_updating")
        # The configuration's own checks, registered: they read the registers alone, which
        # post commands wait out (`settling`) after every change, so a register more costs no
        # cycle and keeps the comparisons off the decoding cycle's path. MAXPOOL's window
        # checks are the window counts' own (below).
        lo = Mux(self.elem_signed, -128, 0)
        hi = Mux(self.elem_signed, 127, 255)
        clamp_ok = (lo <= self.clamp_min) & (self.clamp_min <= self.clamp_max) & \
            (self.clamp_max <= hi)
        self._clamp_ok = Signal(name="post_clamp_ok", init=1)   # at reset: zeros, which pass
        self._add_ok = Signal(name="post_add_ok", init=1)
        m.d.sync += [
            self._clamp_ok.eq(clamp_ok),
            self._add_ok.eq(clamp_ok &
                            Cat(*(reg[23:31] != 0xFF for reg in self.constants)).all()),
        ]
        settle = Signal(range(self.settle_cycles + 1), name="post_settle")
        with m.If(self._updating):
            m.d.sync += settle.eq(self.settle_cycles)
        with m.Elif(settle != 0):
            m.d.sync += settle.eq(settle - 1)
        self.settling = settle != 0

        # Derived sizes: MAXPOOL's output rows and columns _SIZE_BITS + 2 register stages after
        # the registers and its output elements two more; the input's elements two after the
        # registers.
        load = settle == self.settle_cycles
        step = (settle < self.settle_cycles) & (settle >= self.settle_cycles - _SIZE_BITS)
        oh, some_h = _window_count(m, "post_oh", self.height, self.kernel_h, self.stride_h,
                                   load, step)
        ow, some_w = _window_count(m, "post_ow", self.width, self.kernel_w, self.stride_w,
                                   load, step)
        self.out_height, self.out_width = oh, ow
        # A window at all in both directions (as the divisions start), and a clamp that fits.
        self._pool_ok = self._clamp_ok & some_h & some_w

        # Every product is saturated too, which keeps the multipliers one DSP block wide.
        hw, ohw = Signal(mb + 2, name="post_hw"), Signal(mb + 2, name="post_ohw")
        self.count = Signal(mb + 2, name="post_count")          # height * width * channels
        self.out_count = Signal(mb + 2, name="post_out_count")  # MAXPOOL's output elements
        m.d.sync += [
            hw.eq(self._saturated(self.height * self.width, mb + 1)),
            ohw.eq(self._saturated(oh * ow, mb + 1)),
            self.count.eq(self._saturated(hw * self.channels, mb + 1)),
            self.out_count.eq(self._saturated(ohw * self.channels, mb + 1)),
        ]

    @staticmethod
    def _saturated(value, bits):
        return Cat(value[:bits], value[bits:].any())

    def update(self, m, funct, fld):
        """Take a post configuration command ``funct`` (already checked) into the registers."""
        with m.Switch(funct):
            with m.Case(Funct.CONFIG_POST):
                m.d.comb += self._updating.eq(1)
                m.d.sync += [getattr(self, n).eq(fld(Funct.CONFIG_POST, n)) for n in _SHAPE]
            with m.Case(Funct.CONFIG_POST_ADD):
                m.d.comb += self._updating.eq(1)
                index = fld(Funct.CONFIG_POST_ADD, "index")
                for k, reg in zip(PostConstant, self.constants):
                    with m.If(index == k):
                        m.d.sync += reg.eq(fld(Funct.CONFIG_POST_ADD, "value"))
            with m.Case(Funct.CONFIG_POST_OUT):
                m.d.comb += self._updating.eq(1)
                m.d.sync += [
                    self.out_addr.eq(self._saturated(fld(Funct.CONFIG_POST_OUT, "out_addr"),
                                                     self._mb)),
                    self.clamp_min.eq(fld(Funct.CONFIG_POST_OUT, "clamp_min")),
                    self.clamp_max.eq(fld(Funct.CONFIG_POST_OUT, "clamp_max")),
                ]

    def _outside(self, addr, count):
        """``count`` bytes at ``addr`` reach past the window (an empty tensor never does)."""
        return (count != 0) & (addr + count > self._mem_bytes)

    def check(self, m, funct, fld):
        """The error code of post command ``funct`` (0: it runs), as ``check_post`` says."""
        code = Signal(4, name="post_code")
        if funct is Funct.CONFIG_POST_ADD:
            bad = fld(funct, "index") >= len(PostConstant)
            m.d.comb += code.eq(Mux(bad, ErrorCode.BAD_CONFIG, 0))
            return code
        if funct not in POST_OPS:
            return code
        if funct is Funct.MAXPOOL:
            config_ok = self._pool_ok
            outside = self._outside(fld(funct, "in_addr"), self.count) | \
                self._outside(self.out_addr, self.out_count)
        else:
            config_ok = self._add_ok
            outside = Cat(self._outside(fld(funct, "a_addr"), self.count),
                          self._outside(fld(funct, "b_addr"), self.count),
                          self._outside(self.out_addr, self.count)).any()
        with m.If(~config_ok):
            m.d.comb += code.eq(ErrorCode.BAD_CONFIG)
        with m.Elif(outside):
            m.d.comb += code.eq(ErrorCode.BAD_MEMORY)
        return code

    def payload(self, m, op, funct, fld):
        """Fill ``op`` (a :func:`.unit_ops.post_op` view) for the held MAXPOOL or QLINEAR_ADD."""
        pool_in, add_a = field_of(Funct.MAXPOOL, "in_addr"), field_of(Funct.QLINEAR_ADD, "a_addr")
        assert (pool_in.operand, pool_in.lsb, pool_in.width) == \
            (add_a.operand, add_a.lsb, add_a.width)
        m.d.comb += [
            op.add.eq(funct == Funct.QLINEAR_ADD),
            op.in_addr.eq(fld(Funct.MAXPOOL, "in_addr")),
            op.b_addr.eq(fld(Funct.QLINEAR_ADD, "b_addr")),
            *(getattr(op, n).eq(getattr(self, n)) for n in _SHAPE),
            op.out_addr.eq(self.out_addr),
            op.clamp_min.eq(self.clamp_min),
            op.clamp_max.eq(self.clamp_max),
            *(op.constants[i].eq(reg) for i, reg in enumerate(self.constants)),
        ]
