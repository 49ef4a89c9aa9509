"""The front end: decodes commands, refuses bad ones, and dispatches the rest in order."""

from functools import partial

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rvnpu.spec.commands import (Funct, Space, ErrorCode, Dataflow, PostConstant, QP_ROWS,
                                 ROW_BITS, LIST_ENTRY_BYTES, STATUS_FIELDS, field_of)
from rvnpu.spec.requant import reset_mode
from rvnpu.hdl.command_port import CommandLayout
from rvnpu.hdl.engine.fetch import ListEntry, ListStart
from rvnpu.hdl.engine.post_config import POST_CONFIGS, POST_OPS, PostRegisters
from rvnpu.hdl.engine.unit_ops import (local_row_bits, dram_addr_bits, load_op, exec_op,
                                       store_op, post_op, row_bytes as unit_row_bytes)


__all__ = ["Frontend", "UnitQueue", "RANGE_PAIRS", "ranges_overlap"]


def _ranges_layout(config):
    """Address ranges a live command touches, ``[lo, hi)``; an empty range has lo == hi.

    They are only kept for commands that passed their checks, so they need no more bits than
    the engine's memories: local rows are flat (the space above the row, one bit for the end
    of the last space), main-memory bytes run to ``mem_bytes``. Narrow ranges keep the hazard
    comparisons, the front end's longest path and most of its area, short.
    """
    local = local_row_bits(config) + 3
    dram = dram_addr_bits(config) + 1
    return data.StructLayout({"w_lo": local, "w_hi": local, "r1_lo": local, "r1_hi": local,
                              "r2_lo": local, "r2_hi": local, "d_lo": dram, "d_hi": dram})


#: The range pairs of :func:`_ranges_layout`: written local rows, the two read local ranges and
#: the main-memory bytes.
_W, _R1, _R2, _D = ("w_lo", "w_hi"), ("r1_lo", "r1_hi"), ("r2_lo", "r2_hi"), ("d_lo", "d_hi")


def _overlap(a_lo, a_hi, b_lo, b_hi):
    return (a_lo < a_hi) & (b_lo < b_hi) & (a_lo < b_hi) & (b_lo < a_hi)


def _compute_extents(rows, is_os, steps, k_valid):
    """The rows a COMPUTE reads of SPAD_A and SPAD_B and writes of the accumulators: output-
    stationary, ``steps`` rounded up to whole tiles of A, ``steps`` of B, a tile of C;
    weight-stationary, ``steps`` of A, ``k_valid`` weight rows, ``steps`` of C."""
    return (Mux(is_os, (steps + rows - 1) // rows * rows, steps),
            Mux(is_os, steps, k_valid),
            Mux(is_os, rows, steps))


def _field(cmd, funct, name):
    """Field ``name`` of command ``funct`` in the held command ``cmd``, as the spec places it."""
    f = field_of(funct, name)
    value = (cmd.op1 if f.operand == 1 else cmd.op2)[f.lsb:f.lsb + f.width]
    return value.as_signed() if f.signed else value


class _UnitQueue:
    """The commands one unit has not finished yet, and the address ranges each touches.

    A ring of ``depth`` entries: ``push`` appends ``ranges`` (the decoded command's), the unit's
    ``retire`` pulse drops the oldest. With ``ranges`` None (``hazards="serial"``) only the count
    is kept, and any unfinished command conflicts.

    The slot after the newest is written with ``ranges`` every cycle the ring is not full,
    pushed or not: it is not live until a push counts it, and its write enable then depends
    on nothing the hazard checks decide (that path, hazard to push to every range bit, was
    the engine's slowest).
    """

    def __init__(self, m, name, depth, retire, ranges):
        self._ranges = ranges
        D = depth
        self.entries = [] if ranges is None else [
            Signal(ranges.shape(), name=f"{name}_live{i}") for i in range(D)]
        self.head = Signal(range(D), name=f"{name}_head")   # oldest
        self.count = Signal(range(D + 1), name=f"{name}_count")
        self.push = Signal(name=f"{name}_push")
        self.full = self.count == D
        tail = Signal(range(D), name=f"{name}_tail")
        m.d.comb += tail.eq(Mux(self.head + self.count >= D,
                                self.head + self.count - D, self.head + self.count))
        with m.If(~self.full):
            for i, e in enumerate(self.entries):
                with m.If(tail == i):
                    m.d.sync += e.eq(ranges)
        with m.If(retire):
            m.d.sync += self.head.eq(Mux(self.head == D - 1, 0, self.head + 1))
        m.d.sync += self.count.eq(self.count + self.push - retire)
        self.live = []
        for i in range(D):
            offset = Mux(i >= self.head, i - self.head, i + D - self.head)
            self.live.append(offset < self.count)

    def conflicts(self, checks):
        """Any unfinished command whose ranges overlap: ``checks`` pairs a range field pair of
        the decoded command with one of the queued commands, e.g. ``(_W, _R1)``."""
        if self._ranges is None:
            return self.count != 0
        hits = []
        for live, e in zip(self.live, self.entries):
            for mine, theirs in checks:
                hits.append(live & _overlap(*(getattr(self._ranges, n) for n in mine),
                                            *(getattr(e, n) for n in theirs)))
        return Cat(*hits).any()

    def conflicts_ahead(self, m, name, ranges, rules):
        """:meth:`conflicts` worked out a cycle ahead: ``ranges`` are the ranges of the command
        being decoded (not yet registered) and ``rules`` pair a condition on that decoding
        with the range pairs it checks. Each entry's comparisons are registered, one bit an
        entry, and read the next cycle with the entries still live then, so that dispatch
        reads a bit an entry instead of comparing ranges.

        Sound because an entry live next cycle is live this cycle with the same ranges: only
        the front end pushes, and it pushes nothing while a command decodes (the cycle after a
        command is taken) or waits (every later cycle until it is dispatched); the slot
        written every cycle is the one after the newest, not live.
        """
        assert self._ranges is not None, "a ring without ranges (hazards='serial') only counts"
        hits = []
        for i, (live, e) in enumerate(zip(self.live, self.entries)):
            hit = Signal(name=f"{name}_hit{i}")
            m.d.sync += hit.eq(Cat(
                condition & Cat(_overlap(*(getattr(ranges, n) for n in mine),
                                         *(getattr(e, n) for n in theirs))
                                for mine, theirs in checks).any()
                for condition, checks in rules).any())
            hits.append(live & hit)
        return Cat(*hits).any()


#: The ring and its range comparisons under public names, for checking the ring on its own
#: (rvnpu/formal/frontend.py): the range field pairs of :func:`_ranges_layout` by meaning.
UnitQueue = _UnitQueue
RANGE_PAIRS = {"write": _W, "read1": _R1, "read2": _R2, "memory": _D}
ranges_overlap = _overlap


class _ConfigRegisters:
    """The architectural configuration: what the configuration commands set, at reset values.

    Strides are held below the window's size, with a bit set for any beyond it: a command
    moving more than one row with such a stride is out of the window at once.
    """

    def __init__(self, config):
        c = config
        self._mb = mb = dram_addr_bits(c)
        self._store_pool = c.store_pool
        self.dataflow = Signal(init=Dataflow.OS if c.with_os else Dataflow.WS)
        # An engine built for one dataflow refuses a CONFIG_EXEC of the other, so `dataflow`
        # never leaves its reset value: a constant, which synthesis cannot see from the
        # register. With a row count not a power of two, the output-stationary extent
        # (`steps` rounded up to whole tiles) is a division and a product that would
        # otherwise sit in every COMPUTE's range arithmetic.
        self.is_os = (self.dataflow == Dataflow.OS) if c.with_os and c.with_ws else \
            Const(int(c.with_os), 1)
        self.a_signed = Signal(init=1)
        self.b_signed = Signal(init=1)
        self.a_zero = Signal(signed(16))
        self.b_zero = Signal(signed(16))
        self.load_stride = Signal(mb + 1)
        self.store_stride = Signal(mb + 1)
        self.qp_row = Signal(ROW_BITS)
        self.out_zero = Signal(signed(16))
        # Reset to a convention the engine has, as the golden model does.
        self.mode = Signal(field_of(Funct.CONFIG_REQUANT, "mode").width,
                           init=reset_mode(c.built_requant_modes).code)
        # Reset clamp: the signed output range.
        self.clamp_min = Signal(signed(16), init=-(1 << (c.in_width - 1)))
        self.clamp_max = Signal(signed(16), init=(1 << (c.in_width - 1)) - 1)
        # STORE_POOL's window, 1 x 1 at reset.
        self.kernel_h = Signal(field_of(Funct.CONFIG_STORE_POOL, "kernel_h").width, init=1)
        self.kernel_w = Signal(field_of(Funct.CONFIG_STORE_POOL, "kernel_w").width, init=1)
        self.step = Signal(field_of(Funct.CONFIG_STORE_POOL, "step").width, init=1)
        self.pitch = Signal(field_of(Funct.CONFIG_STORE_POOL, "pitch").width)
        # What a STORE_POOL's windows reach past its rows times the step, set with the window:
        # (kernel_h - 1) * pitch + kernel_w - step, so that a command's extent is one product
        # and one sum as it is taken (_Early). With the range stage it follows the window's
        # registers two cycles behind (:meth:`derive`) instead of being worked out from the
        # command, a product and two sums in the cycle of the write.
        self.pool_reach = Signal(signed(20), init=0)
        self._reach_later = c.range_stage
        # STORE_ADD's settings, all 0 at reset.
        self._store_add = c.with_store_add
        self.add_constants = [Signal(32, name=f"add_{k.name.lower()}") for k in PostConstant]
        self.skip_offset = Signal(32)
        self.add_clamp_min = Signal(signed(field_of(Funct.CONFIG_STORE_SKIP, "clamp_min").width))
        self.add_clamp_max = Signal(signed(field_of(Funct.CONFIG_STORE_SKIP, "clamp_max").width))
        self.elem_signed = Signal()
        self.skip_first = Signal()

    def derive(self, m):
        """With the range stage, ``pool_reach`` from the window's registers: the product the
        cycle after they are written, the sum the cycle after that. The earliest command to
        read it is taken the cycle after the write and reads it two cycles later still
        (:meth:`Frontend._input_register`), so it is in place then; the product is a DSP
        block between registers, not after the command's field multiplexers."""
        if not (self._store_pool and self._reach_later):
            return
        reach_product = Signal(signed(len(self.kernel_h) + len(self.pitch) + 1),
                               name="pool_reach_product")
        m.d.sync += [reach_product.eq((self.kernel_h - 1) * self.pitch),
                     self.pool_reach.eq(reach_product + self.kernel_w - self.step)]

    def _saturated(self, stride):
        return Cat(stride[:self._mb], stride[self._mb:].any())

    def update(self, m, funct, fld):
        """Take a configuration command ``funct`` (already checked) into the registers."""
        with m.Switch(funct):
            with m.Case(Funct.CONFIG_EXEC):
                m.d.sync += [getattr(self, n).eq(fld(Funct.CONFIG_EXEC, n)) for n in
                             ("dataflow", "a_signed", "b_signed", "a_zero", "b_zero")]
            with m.Case(Funct.CONFIG_LOAD):
                m.d.sync += self.load_stride.eq(self._saturated(fld(Funct.CONFIG_LOAD, "stride")))
            with m.Case(Funct.CONFIG_STORE):
                m.d.sync += [
                    self.store_stride.eq(self._saturated(fld(Funct.CONFIG_STORE, "stride"))),
                    self.qp_row.eq(fld(Funct.CONFIG_STORE, "qp_row")),
                ]
            with m.Case(Funct.CONFIG_REQUANT):
                m.d.sync += [getattr(self, n).eq(fld(Funct.CONFIG_REQUANT, n)) for n in
                             ("out_zero", "mode", "clamp_min", "clamp_max")]
            if self._store_pool:
                with m.Case(Funct.CONFIG_STORE_POOL):
                    f = partial(fld, Funct.CONFIG_STORE_POOL)
                    m.d.sync += [getattr(self, n).eq(f(n)) for n in
                                 ("kernel_h", "kernel_w", "step", "pitch")]
                    if not self._reach_later:
                        m.d.sync += self.pool_reach.eq((f("kernel_h") - 1) * f("pitch")
                                                       + f("kernel_w") - f("step"))
            if self._store_add:
                with m.Case(Funct.CONFIG_STORE_ADD):
                    index = fld(Funct.CONFIG_STORE_ADD, "index")
                    for k, reg in zip(PostConstant, self.add_constants):
                        with m.If(index == k):
                            m.d.sync += reg.eq(fld(Funct.CONFIG_STORE_ADD, "value"))
                with m.Case(Funct.CONFIG_STORE_SKIP):
                    f = partial(fld, Funct.CONFIG_STORE_SKIP)
                    m.d.sync += [self.skip_offset.eq(f("offset")),
                                 self.add_clamp_min.eq(f("clamp_min")),
                                 self.add_clamp_max.eq(f("clamp_max")),
                                 self.elem_signed.eq(f("elem_signed")),
                                 self.skip_first.eq(f("skip_first"))]

    def add_ok(self):
        """STORE_ADD's constants are finite and its clamp fits its element type."""
        lo, hi = Mux(self.elem_signed, -128, 0), Mux(self.elem_signed, 127, 255)
        finite = Cat(*(reg[23:31] != 0xFF for reg in self.add_constants)).all()
        return finite & (lo <= self.add_clamp_min) & (self.add_clamp_min <= self.add_clamp_max) \
            & (self.add_clamp_max <= hi)


class _Early:
    """What decoding needs that is worked out as a command is taken (``take``), from its
    operands (``incoming``) and the configuration registers ``regs``, so that no multiplier
    and fewer adders lie on the decoding cycle's path:

    * ``rows_stride``, ``(rows - 1) * stride`` of a LOAD or a store below the window's size
      (garbage for no rows, which no check uses), and ``far_stride``, that stride reaching
      past the window;
    * ``row_bytes``, the bytes a row moves (``cols`` times the element's size: the space's
      for a LOAD, four for STORE_ACC), and ``end``, the transfer's end, ``dram_addr`` below
      the window's size plus ``rows_stride`` and ``row_bytes`` (garbage for no rows);
    * with STORE_POOL, ``extent``, the accumulator rows a store reads (a STORE_POOL's windows
      reach past its rows: :meth:`EngineModel.store_extent`);
    * with STORE_ADD, ``skip_addr``, ``dram_addr`` plus the skip offset, modulo 2**32;
    * ``switch``, what decoding switches on (with :meth:`cases`): with range hazards, a bit
      for each command function the engine has, set for the command's own, so that the
      function's comparisons and their fanout to every check and range are off the path
      into the hazard bits; with serial hazards, built where cells are short and the clock
      slow, the held function itself (``held_funct``);
    * with range hazards, ``ranges``, the address ranges the command touches (empty for one
      that moves nothing), so that the hazard comparisons start from registers.

    With ``registered_products`` the products (rows times a stride, rows times the pool's
    step) are registers, loaded every cycle from ``incoming`` and the configuration, which
    must then hold still for a cycle before ``take``: a multiplier, a DSP block whose routing
    alone took 9 ns on the LFE5U-85F, is then a path between registers of its own.
    """

    def __init__(self, m, config, incoming, take, regs, held_funct, *,
                 registered_products=False):
        c = config

        def multiply(a, b, name):
            if not registered_products:
                return a * b
            p = Signal(len(a) + len(b), name=f"early_{name}")
            m.d.sync += p.eq(a * b)
            return p

        mb = dram_addr_bits(c)
        f = partial(_field, incoming)
        funct = incoming.funct
        self.rows_stride = Signal(mb + 8, name="early_rows_stride")
        self.far_stride = Signal(name="early_far_stride")
        self.row_bytes = Signal(11, name="early_row_bytes")
        self.end = Signal(mb + 10, name="early_end")
        self.extent = Signal(ROW_BITS + 6, name="early_extent")
        stride = Mux(funct == Funct.LOAD, regs.load_stride, regs.store_stride)
        space = f(Funct.LOAD, "space")
        to_words = (space != Space.SPAD_A) & (space != Space.SPAD_B)
        row_bytes = unit_row_bytes(c, f(Funct.LOAD, "cols"),
                                   Mux(funct == Funct.LOAD, to_words, funct == Funct.STORE_ACC))
        rows = f(Funct.STORE, "rows")
        extent = rows
        pooled = multiply(rows, regs.step, "rows_step") if c.store_pool else None
        if c.store_pool:
            extent = Mux(funct == Funct.STORE_POOL, pooled + regs.pool_reach, rows)
        addr = f(Funct.LOAD, "dram_addr")[:mb]
        # rows * stride, a product for each stride chosen after the multipliers, whose inputs
        # are then the command's rows and a configuration register; (rows - 1) * stride and
        # the end, (rows - 1) * stride + addr + row_bytes, one sum after it each.
        product = Signal(mb + 8)
        m.d.comb += product.eq(Mux(funct == Funct.LOAD,
                                   multiply(rows, regs.load_stride[:mb], "rows_load_stride"),
                                   multiply(rows, regs.store_stride[:mb],
                                            "rows_store_stride")))
        end = Signal(mb + 10)
        m.d.comb += end.eq(product + (addr + row_bytes - stride[:mb]).as_signed())
        with m.If(take):
            m.d.sync += [self.rows_stride.eq(product - stride[:mb]),
                         self.far_stride.eq(stride[mb:] != 0),
                         self.row_bytes.eq(row_bytes),
                         self.end.eq(end),
                         self.extent.eq(extent)]
        if c.with_store_add:
            self.skip_addr = Signal(32, name="early_skip_addr")
            with m.If(take):
                m.d.sync += self.skip_addr.eq(f(Funct.STORE, "dram_addr") + regs.skip_offset)
        if c.hazards != "ranges":
            self.switch, self._kinds = held_funct, None
            return
        unbuilt = set()
        if not c.store_pool:
            unbuilt |= {Funct.CONFIG_STORE_POOL, Funct.STORE_POOL}
        if not c.with_store_add:
            unbuilt |= {Funct.CONFIG_STORE_ADD, Funct.CONFIG_STORE_SKIP, Funct.STORE_ADD}
        if not c.command_fetch:
            unbuilt.add(Funct.RUN)
        if not c.post_unit:
            unbuilt |= set(POST_CONFIGS + POST_OPS)
        self._kinds = [code for code in Funct if code not in unbuilt]
        #: What decoding switches on: the held function, or a bit a function.
        self.switch = Signal(len(self._kinds), name="early_kinds")
        with m.If(take):
            m.d.sync += self.switch.eq(Cat(funct == code for code in self._kinds))
        self.ranges = Signal(_ranges_layout(c), name="early_ranges")
        with m.If(take):
            m.d.sync += self.ranges.eq(self._ranges(m, c, f, funct, regs, end, pooled))

    @staticmethod
    def _ranges(m, c, f, funct, regs, end, pooled):
        """The ranges of the command being taken, as :meth:`EngineModel.check` has them:
        empty where it moves nothing, or for a function without ranges."""
        lb = local_row_bits(c)
        r = Signal(_ranges_layout(c))
        rows, cols = f(Funct.LOAD, "rows"), f(Funct.LOAD, "cols")
        moves = (rows != 0) & (cols != 0)
        with m.Switch(funct):
            with m.Case(Funct.LOAD):
                w_lo = (f(Funct.LOAD, "space") << lb) + f(Funct.LOAD, "local_row")
                with m.If(moves):
                    m.d.comb += [r.w_lo.eq(w_lo), r.w_hi.eq(w_lo + rows),
                                 r.d_lo.eq(f(Funct.LOAD, "dram_addr")), r.d_hi.eq(end)]
            with m.Case(Funct.STORE, Funct.STORE_ACC, Funct.STORE_POOL, Funct.STORE_ADD):
                r1_lo = (Space.ACC << lb) + f(Funct.STORE, "acc_row")
                # r1_lo plus the extent (see __init__), one sum after the product.
                r1_hi = r1_lo + rows
                if c.store_pool:
                    r1_hi = Mux(funct == Funct.STORE_POOL,
                                pooled + (r1_lo + regs.pool_reach), r1_hi)
                qp = (Space.QP << lb) + regs.qp_row
                with m.If(moves):
                    m.d.comb += [r.r1_lo.eq(r1_lo), r.r1_hi.eq(r1_hi),
                                 r.r2_lo.eq(qp), r.r2_hi.eq(qp + QP_ROWS),
                                 r.d_lo.eq(f(Funct.STORE, "dram_addr")), r.d_hi.eq(end)]
            with m.Case(Funct.COMPUTE):
                steps = f(Funct.COMPUTE, "steps")
                a_n, b_n, c_n = _compute_extents(c.rows, regs.is_os, steps,
                                                 f(Funct.COMPUTE, "k_valid"))
                fa = (Space.SPAD_A << lb) + f(Funct.COMPUTE, "a_row")
                fb = (Space.SPAD_B << lb) + f(Funct.COMPUTE, "b_row")
                fc = (Space.ACC << lb) + f(Funct.COMPUTE, "c_row")
                with m.If(steps != 0):
                    m.d.comb += [r.r1_lo.eq(fa), r.r1_hi.eq(fa + a_n),
                                 r.r2_lo.eq(fb), r.r2_hi.eq(fb + b_n),
                                 r.w_lo.eq(fc), r.w_hi.eq(fc + c_n)]
        return r

    def cases(self, *functs):
        """What ``m.Case`` takes for a command that is one of ``functs``: the functions, or
        patterns of the bits (a function the engine lacks matches none, as its code would
        match no case)."""
        if self._kinds is None:
            return functs
        width = len(self._kinds)
        return tuple("".join("1" if width - 1 - i == self._kinds.index(code) else "-"
                             for i in range(width)) for code in functs if code in self._kinds)


class _Decoded:
    """What decoding the held command finds: its error code (0: none), the unit it goes to
    (``front``: the front end itself) and the address ranges it touches."""

    def __init__(self, config, suffix=""):
        self.code = Signal(4, name=f"code{suffix}")
        self.ranges = Signal(_ranges_layout(config), name=f"ranges{suffix}")
        self.to_load, self.to_exec, self.to_store, self.to_post, self.front = (
            Signal(name=f"{n}{suffix}")
            for n in ("to_load", "to_exec", "to_store", "to_post", "front"))


class _StickyError:
    """The first refused command's code and function, and how many were refused.

    A STATUS may clear them in the cycle a list entry is refused (the STATUS read the word
    before the refusal): the refusal then counts as the first after the clear.
    """

    def __init__(self, m):
        self.code = Signal(4, name="err_code")
        self.funct = Signal(7, name="err_funct")
        self.count = Signal(16, name="err_count")
        refusing, clearing = Signal(name="err_refusing"), Signal(name="err_clearing")
        self._refusing, self._clearing = refusing, clearing
        self._new_code = Signal(4, name="err_new_code")
        self._new_funct = Signal(7, name="err_new_funct")
        code = Mux(clearing, 0, self.code)
        count = Mux(clearing, 0, self.count)
        with m.If(refusing):
            with m.If(code == 0):
                m.d.sync += [self.code.eq(self._new_code), self.funct.eq(self._new_funct)]
            m.d.sync += self.count.eq(Mux(count == 0xffff, count, count + 1))
        with m.Elif(clearing):
            m.d.sync += [self.code.eq(0), self.funct.eq(0), self.count.eq(0)]

    def refuse(self, m, code, funct):
        m.d.comb += [self._refusing.eq(1), self._new_code.eq(code), self._new_funct.eq(funct)]

    def clear(self, m):
        m.d.comb += self._clearing.eq(1)


class _ListState:
    """A list running (``busy``), the sticky ``done`` bit, whether the held command came from
    a list, and whether the core's STATUS is taken aside this cycle."""

    def __init__(self, m, config):
        self.busy = Signal(name="list_busy")
        self.done = Signal(name="list_done")
        self.from_list = Signal(name="from_list")
        self.side_take = Signal(name="side_take")


class Frontend(wiring.Component):
    """Turns the command stream into work for the load, execute and store units.

    It holds the architectural configuration registers and attaches them to each dispatched
    command, checks every command as the golden model does (a refused command writes nothing
    and sets the sticky error status), and keeps, for each unit, the ranges of local memory and
    main memory its unfinished commands touch. A command is held back while it conflicts with an
    unfinished command of another unit, so programs behave as if run one command at a time.
    With ``hazards="serial"`` it keeps no ranges and a command waits for the other units to
    be idle instead: the same results in a fraction of the area, with less overlap.

    With ``post_unit``, MAXPOOL and QLINEAR_ADD go to the post-processing unit with its
    registers (:class:`.post_config.PostRegisters`) attached. They work on main memory
    anywhere, so they are a barrier both ways: one waits until the other units have nothing
    unfinished, and while it is unfinished no other unit's command is dispatched.

    A command takes three steps: the input register holds it, decoding (the checks and the
    ranges it touches) takes a cycle of its own, then it is dispatched, refused or answered.
    With ``range_stage`` the range arithmetic (:class:`_Early`) takes two cycles of its own
    between the first two: the products in one, the sums and ranges in the next.

    With ``command_fetch``, RUN (once every earlier command finished) starts the fetcher on
    ``start`` and the input register takes the list's commands from ``list`` instead of the
    core's, until the list and all it dispatched have finished. Meanwhile a STATUS from the
    core is taken into a register of its own and answered at once; other commands wait.

    Members
    -------
    cmd : In(stream)
        ``(funct, op1, op2)`` commands (:data:`CommandLayout`).
    rsp : Out(stream)
        32-bit answers of FENCE and STATUS.
    load, exec, store : Out(stream)
        Decoded commands for each unit.
    load_retire, exec_retire, store_retire : In
        A unit finished its oldest command.
    post, post_retire
        With ``post_unit``: the post-processing unit's commands, and its retire pulse.
    busy : Out
    list_done : Out
        The sticky ``list_done`` status bit.
    list, start
        With ``command_fetch``: the fetcher's commands (:data:`.fetch.ListEntry`), and the
        lists RUN starts it on (:func:`.fetch.ListStart`).
    fetch_busy : In
        With ``command_fetch``: the fetcher is still reading or handing on a list.
    """

    def __init__(self, config):
        self._config = config
        ports = {}
        if config.command_fetch:
            ports = {"list":       In(stream.Signature(ListEntry)),
                     "start":      Out(stream.Signature(ListStart(config))),
                     "fetch_busy": In(1)}
        if config.post_unit:
            ports.update({"post":        Out(stream.Signature(post_op(config))),
                          "post_retire": In(1)})
        super().__init__({
            **ports,
            "cmd":          In(stream.Signature(CommandLayout)),
            "rsp":          Out(stream.Signature(32)),
            "load":         Out(stream.Signature(load_op(config))),
            "exec":         Out(stream.Signature(exec_op(config))),
            "store":        Out(stream.Signature(store_op(config))),
            "load_retire":  In(1),
            "exec_retire":  In(1),
            "store_retire": In(1),
            "busy":         Out(1),
            "list_done":    Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        c = self._config

        lists = _ListState(m, c)
        regs = _ConfigRegisters(c)
        regs.derive(m)
        held, cmd, accept, early = self._input_register(m, lists, regs)
        fld = partial(_field, cmd)
        post = PostRegisters(m, c) if c.post_unit else None

        decoded, now, dec = self._decode(m, cmd.funct, fld, regs, post, held, accept, lists,
                                         early)

        ranges = dec.ranges if c.hazards == "ranges" else None
        queues = {unit: _UnitQueue(m, unit, c.queue_depth, getattr(self, f"{unit}_retire"),
                                   ranges)
                  for unit in ("load", "exec", "store")}
        if post is not None:
            # Only counted: a post command is a barrier whatever it touches.
            queues["post"] = _UnitQueue(m, "post", c.queue_depth, self.post_retire, None)
        hazard = self._hazard(m, now, dec, queues)

        busy = Signal()
        m.d.comb += [busy.eq(Cat(q.count != 0 for q in queues.values()).any()),
                     self.busy.eq(busy | held | lists.busy)]

        self._payloads(m, cmd.funct, fld, regs)
        if post is not None:
            post.payload(m, self.post.payload, cmd.funct, fld)
        errors = _StickyError(m)
        status = self._status(m, busy, errors, lists)
        if c.command_fetch:
            self._side_status(m, status, errors, lists)
            # The list is over once the fetcher handed on its last command and everything
            # since has finished.
            with m.If(lists.busy & ~self.fetch_busy & ~held & ~busy):
                m.d.sync += [lists.busy.eq(0), lists.done.eq(1)]
        m.d.comb += self.list_done.eq(lists.done)
        with m.If(held & decoded):
            self._dispatch(m, cmd.funct, fld, dec, hazard, queues, regs, post, errors, busy,
                           accept, lists)
        return m

    def _input_register(self, m, lists, regs):
        """Hold one command so that decoding reads a stable one; returns ``(held, cmd,
        accept, early)``, ``accept`` meaning the held command is done with this cycle. While a
        list runs, the command comes from the fetcher (``lists.from_list`` marks it).

        ``early`` holds what decoding needs of the command's operands and the configuration
        that is worked out as the command is taken (:class:`_Early`): the configuration it
        reads was set by commands accepted before, so it is already in place then, and the
        multiplier and the adders are off the decoding cycle's path."""
        c = self._config
        held = Signal()
        cmd = Signal(CommandLayout)
        accept = Signal()
        incoming = Signal(CommandLayout)
        take = Signal()
        # Ready only when empty, not when the held command leaves: that costs a cycle between
        # commands (the core needs many more to issue one) but keeps decoding, the range
        # arithmetic and the hazard checks out of the core's stall logic, the SoC's
        # critical path otherwise.
        take_core = ~held & ~lists.busy
        m.d.comb += incoming.eq(self.cmd.payload)
        with m.If(self.cmd.valid & take_core):
            m.d.comb += take.eq(1)
            m.d.sync += lists.from_list.eq(0)
        if c.command_fetch:
            m.d.comb += [self.cmd.ready.eq(take_core | lists.side_take),
                         self.list.ready.eq(~held & lists.busy)]
            # The source is chosen by `lists.busy` alone (a list's entry is taken only while
            # it runs, the core's command only while none does), so that the fetcher's
            # `valid` is no part of the operands' path into the early arithmetic.
            with m.If(lists.busy):
                m.d.comb += incoming.eq(self.list.payload.cmd)
            with m.If(self.list.valid & self.list.ready):
                m.d.comb += take.eq(1)
                m.d.sync += lists.from_list.eq(1)
        else:
            m.d.comb += self.cmd.ready.eq(take_core)
        if c.range_stage:
            # From the input register: the products the cycle after the command is taken,
            # the rest the cycle after that.
            taken = Signal(2)
            m.d.sync += taken.eq(Cat(take, taken[0]))
            early = _Early(m, c, cmd, taken[1], regs, cmd.funct, registered_products=True)
        else:
            early = _Early(m, c, incoming, take, regs, cmd.funct)
        with m.If(take):
            m.d.sync += [held.eq(1), cmd.eq(incoming)]
        with m.If(accept):
            m.d.sync += held.eq(0)
        return held, cmd, accept, early

    # -- Decoding: checks and ranges (mirroring EngineModel.check) ---------------------------

    def _decode(self, m, funct, fld, regs, post, held, accept, lists, early):
        """Check the held command and work out its ranges, then register both.

        Returns ``(decoded, now, dec)``: ``decoded`` is high once ``dec`` (a
        :class:`_Decoded`) describes the held command; ``now`` is the same decoding before
        its register. The checks are registered before dispatch reads them, and so are the
        hazard comparisons made on ``now``'s ranges (:meth:`_hazard`); in series with
        dispatch either set the engine's clock. The held command and the configuration it
        reads do not change meanwhile.
        """
        c = self._config
        now = _Decoded(c)
        if c.hazards == "ranges":
            m.d.comb += now.ranges.eq(early.ranges)

        # One main-memory range for LOAD and STORE (their transfer fields coincide), worked
        # out below the window's size: an address or a stride reaching past it is out at once.
        for name in ("dram_addr", "rows", "cols"):
            load_f, store_f = field_of(Funct.LOAD, name), field_of(Funct.STORE, name)
            assert (load_f.operand, load_f.lsb, load_f.width) == \
                (store_f.operand, store_f.lsb, store_f.width), name
        mb = dram_addr_bits(c)
        addr = fld(Funct.LOAD, "dram_addr")
        rows = fld(Funct.LOAD, "rows")
        span, end = Signal(mb + 10), early.end
        m.d.comb += span.eq(early.rows_stride + early.row_bytes)
        far_rows = (rows > 1) & early.far_stride
        outside = (addr[mb:] != 0) | far_rows | (end > c.mem_bytes)
        if c.with_store_add:
            # A STORE_ADD's skip rows: the same span from dram_addr + offset.
            skip = early.skip_addr
            skip_end = Signal(mb + 10)
            m.d.comb += skip_end.eq(skip[:mb] + span)
            skip_outside = (skip[mb:] != 0) | far_rows | (skip_end > c.mem_bytes)

        with m.Switch(early.switch):
            with m.Case(*early.cases(Funct.LOAD)):
                self._check_load(m, fld, now, outside)
            with m.Case(*early.cases(Funct.STORE, Funct.STORE_ACC,
                                     *((Funct.STORE_POOL,) if c.store_pool else ()))):
                self._check_store(m, funct, fld, now, outside, early.extent)
            if c.with_store_add:
                with m.Case(*early.cases(Funct.STORE_ADD)):
                    self._check_store(m, funct, fld, now, outside, early.extent,
                                      add=(regs.add_ok(), skip_outside))
                with m.Case(*early.cases(Funct.CONFIG_STORE_ADD)):
                    bad = fld(Funct.CONFIG_STORE_ADD, "index") >= len(PostConstant)
                    m.d.comb += [now.front.eq(1),
                                 now.code.eq(Mux(bad, ErrorCode.BAD_CONFIG, 0))]
                with m.Case(*early.cases(Funct.CONFIG_STORE_SKIP)):
                    m.d.comb += now.front.eq(1)
            if c.store_pool:
                with m.Case(*early.cases(Funct.CONFIG_STORE_POOL)):
                    bad = ((fld(Funct.CONFIG_STORE_POOL, "kernel_h") == 0) |
                           (fld(Funct.CONFIG_STORE_POOL, "kernel_w") == 0))
                    m.d.comb += [now.front.eq(1),
                                 now.code.eq(Mux(bad, ErrorCode.BAD_CONFIG, 0))]
            with m.Case(*early.cases(Funct.COMPUTE)):
                self._check_compute(m, fld, regs, now)
            with m.Case(*early.cases(Funct.CONFIG_EXEC)):
                self._check_config_exec(m, fld, now)
            with m.Case(*early.cases(Funct.CONFIG_REQUANT)):
                self._check_config_requant(m, fld, now)
            with m.Case(*early.cases(Funct.CONFIG_STORE)):
                bad = fld(Funct.CONFIG_STORE, "qp_row") + QP_ROWS > c.qp_depth
                m.d.comb += [now.front.eq(1), now.code.eq(Mux(bad, ErrorCode.BAD_LOCAL, 0))]
            with m.Case(*early.cases(Funct.CONFIG_LOAD)):
                m.d.comb += now.front.eq(1)
            with m.Case(*early.cases(Funct.FENCE, Funct.STATUS)):
                m.d.comb += [now.front.eq(1),
                             now.code.eq(Mux(lists.from_list, ErrorCode.BAD_IN_LIST, 0))]
            if c.command_fetch:
                with m.Case(*early.cases(Funct.RUN)):
                    self._check_run(m, fld, now, lists)
            if post is not None:
                for f in POST_CONFIGS + POST_OPS:
                    with m.Case(*early.cases(f)):
                        m.d.comb += [now.code.eq(post.check(m, f, fld)),
                                     (now.to_post if f in POST_OPS else now.front).eq(1)]
            with m.Default():
                m.d.comb += now.code.eq(ErrorCode.BAD_FUNCT)

        decoded = Signal()
        if c.range_stage:
            # Decoding reads the range arithmetic, done two cycles after the command was taken.
            arithmetic = Signal(2)
            waiting = held & ~accept
            m.d.sync += [arithmetic.eq(Cat(waiting, arithmetic[0] & waiting)),
                         decoded.eq(arithmetic[1] & waiting)]
        else:
            m.d.sync += decoded.eq(held & ~accept)
        dec = _Decoded(c, suffix="_q")
        names = ["code", "to_load", "to_exec", "to_store", "to_post"]
        if c.hazards == "ranges":
            names.append("ranges")
        m.d.sync += [getattr(dec, n).eq(getattr(now, n)) for n in names]
        return decoded, now, dec

    def _check_load(self, m, fld, now, outside):
        c = self._config
        m.d.comb += now.to_load.eq(1)
        space, row = fld(Funct.LOAD, "space"), fld(Funct.LOAD, "local_row")
        rows, cols = fld(Funct.LOAD, "rows"), fld(Funct.LOAD, "cols")
        depth = Signal(ROW_BITS + 1)
        cap = Signal(range(max(c.rows, c.cols) + 1))
        with m.Switch(space):
            with m.Case(Space.SPAD_A):
                m.d.comb += [depth.eq(c.spad_depth), cap.eq(c.rows)]
            with m.Case(Space.SPAD_B):
                m.d.comb += [depth.eq(c.spad_depth), cap.eq(c.cols)]
            with m.Case(Space.ACC):
                m.d.comb += [depth.eq(c.acc_depth), cap.eq(c.cols)]
            with m.Case(Space.QP):
                m.d.comb += [depth.eq(c.qp_depth), cap.eq(c.cols)]
        with m.If((rows != 0) & (cols != 0)):
            with m.If(row + rows > depth):
                m.d.comb += now.code.eq(ErrorCode.BAD_LOCAL)
            with m.Elif(cols > cap):
                m.d.comb += now.code.eq(ErrorCode.BAD_SIZE)
            with m.Elif(outside):
                m.d.comb += now.code.eq(ErrorCode.BAD_MEMORY)

    def _check_store(self, m, funct, fld, now, outside, extent, add=None):
        """A STORE, STORE_ACC or STORE_POOL reading ``extent`` accumulator rows; with ``add``,
        ``(config_ok, skip_outside)``, a STORE_ADD."""
        c = self._config
        m.d.comb += now.to_store.eq(1)
        row = fld(Funct.STORE, "acc_row")
        rows, cols = fld(Funct.STORE, "rows"), fld(Funct.STORE, "cols")
        with m.If((rows != 0) & (cols != 0)):
            with m.If(row + extent > c.acc_depth):
                m.d.comb += now.code.eq(ErrorCode.BAD_LOCAL)
            with m.Elif(cols > c.cols):
                m.d.comb += now.code.eq(ErrorCode.BAD_SIZE)
            if add is not None:
                config_ok, skip_outside = add
                with m.Elif(~config_ok):
                    m.d.comb += now.code.eq(ErrorCode.BAD_CONFIG)
                outside = outside | skip_outside
            with m.Elif(outside):
                m.d.comb += now.code.eq(ErrorCode.BAD_MEMORY)
        if not c.with_requant:
            with m.If(funct != Funct.STORE_ACC):
                m.d.comb += now.code.eq(ErrorCode.BAD_FUNCT)

    def _check_run(self, m, fld, now, lists):
        """A list must be aligned and inside the window, unless empty; never inside a list."""
        c = self._config
        addr, count = fld(Funct.RUN, "list_addr"), fld(Funct.RUN, "count")
        end = Signal(38)                # 2**32 + 2**32 * LIST_ENTRY_BYTES < 2**38
        m.d.comb += end.eq(addr + count * LIST_ENTRY_BYTES)
        misaligned = addr[:LIST_ENTRY_BYTES.bit_length() - 1] != 0
        m.d.comb += now.front.eq(1)
        with m.If(lists.from_list):
            m.d.comb += now.code.eq(ErrorCode.BAD_IN_LIST)
        with m.Elif((count != 0) & (misaligned | (end > c.mem_bytes))):
            m.d.comb += now.code.eq(ErrorCode.BAD_MEMORY)

    def _check_compute(self, m, fld, regs, now):
        c = self._config
        R = c.rows
        is_os = regs.is_os
        m.d.comb += now.to_exec.eq(1)
        steps = fld(Funct.COMPUTE, "steps")
        k_valid = fld(Funct.COMPUTE, "k_valid")
        a = fld(Funct.COMPUTE, "a_row")
        b = fld(Funct.COMPUTE, "b_row")
        cr = fld(Funct.COMPUTE, "c_row")
        a_n, b_n, c_n = _compute_extents(R, is_os, steps, k_valid)
        with m.If(steps != 0):
            with m.If((a + a_n > c.spad_depth) | (b + b_n > c.spad_depth) |
                      (cr + c_n > c.acc_depth)):
                m.d.comb += now.code.eq(ErrorCode.BAD_LOCAL)
            with m.Elif(~is_os & (k_valid > R)):
                m.d.comb += now.code.eq(ErrorCode.BAD_SIZE)

    def _element_ok(self, value, is_signed):
        """``value`` lies in the range of a (signed or unsigned) operand element."""
        w = self._config.in_width
        s_lo, s_hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
        return Mux(is_signed, (value >= s_lo) & (value <= s_hi),
                   (value >= 0) & (value <= (1 << w) - 1))

    def _check_config_exec(self, m, fld, now):
        c = self._config
        df = fld(Funct.CONFIG_EXEC, "dataflow")
        supported = Mux(df == Dataflow.OS, int(c.with_os), int(c.with_ws))
        ok = (supported &
              self._element_ok(fld(Funct.CONFIG_EXEC, "a_zero"),
                               fld(Funct.CONFIG_EXEC, "a_signed")) &
              self._element_ok(fld(Funct.CONFIG_EXEC, "b_zero"),
                               fld(Funct.CONFIG_EXEC, "b_signed")))
        m.d.comb += [now.front.eq(1), now.code.eq(Mux(ok, 0, ErrorCode.BAD_CONFIG))]

    def _check_config_requant(self, m, fld, now):
        """The mode must be built and the clamp must fit the signed or the unsigned output
        element (within the 16-bit clamp fields)."""
        c = self._config
        w = c.in_width
        cmin = fld(Funct.CONFIG_REQUANT, "clamp_min")
        cmax = fld(Funct.CONFIG_REQUANT, "clamp_max")
        s_lo, s_hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
        u_hi = min((1 << w) - 1, (1 << 15) - 1)
        asked = fld(Funct.CONFIG_REQUANT, "mode")
        built = Cat(Const(0, 1), *(asked == mode.code for mode in c.built_requant_modes)).any()
        ok = built & (cmin <= cmax) & (((cmin >= s_lo) & (cmax <= s_hi)) |
                                       ((cmin >= 0) & (cmax <= u_hi)))
        m.d.comb += [now.front.eq(1), now.code.eq(Mux(ok, 0, ErrorCode.BAD_CONFIG))]

    # -- Hazards, payloads, status, dispatch ------------------------------------------------

    def _hazard(self, m, now, dec, queues):
        """The decoded command conflicts with an unfinished command of another unit: it would
        write what they read or write, or read what they write. A post command conflicts with
        any unfinished command, and any command with an unfinished post command.

        The range comparisons are made as the command is decoded (``now``) and registered, a
        bit a ring entry (:meth:`_UnitQueue.conflicts_ahead`): compared at dispatch, they
        were the engine's slowest path."""
        loads, execs, stores = queues["load"], queues["exec"], queues["store"]
        ranged = Signal()
        if self._config.hazards == "serial":
            m.d.comb += ranged.eq((dec.to_load & ((execs.count != 0) | (stores.count != 0))) |
                                  (dec.to_exec & ((loads.count != 0) | (stores.count != 0))) |
                                  (dec.to_store & ((loads.count != 0) | (execs.count != 0))))
        else:
            r = now.ranges
            # For each ring, the decoded command's unit and the range pairs it checks there.
            m.d.comb += ranged.eq(
                execs.conflicts_ahead(m, "exec", r, [
                    (now.to_load, [(_W, _W), (_W, _R1), (_W, _R2)]),
                    (now.to_store, [(_R1, _W)])]) |
                stores.conflicts_ahead(m, "store", r, [
                    (now.to_load, [(_W, _R1), (_W, _R2), (_D, _D)]),
                    (now.to_exec, [(_W, _R1)])]) |
                loads.conflicts_ahead(m, "load", r, [
                    (now.to_exec, [(_W, _W), (_R1, _W), (_R2, _W)]),
                    (now.to_store, [(_R1, _W), (_R2, _W), (_D, _D)])]))
        if "post" not in queues:
            return ranged
        hazard = Signal()
        others = Cat(q.count != 0 for q in (loads, execs, stores)).any()
        m.d.comb += hazard.eq(ranged | (queues["post"].count != 0) | (dec.to_post & others))
        return hazard

    def _payloads(self, m, funct, fld, regs):
        """Each unit's command: the held command's fields and the configuration it runs with."""
        lp, ep, sp = self.load.payload, self.exec.payload, self.store.payload
        m.d.comb += [
            lp.dram_addr.eq(fld(Funct.LOAD, "dram_addr")), lp.space.eq(fld(Funct.LOAD, "space")),
            lp.row.eq(fld(Funct.LOAD, "local_row")), lp.rows.eq(fld(Funct.LOAD, "rows")),
            lp.cols.eq(fld(Funct.LOAD, "cols")), lp.stride.eq(regs.load_stride),
        ]
        m.d.comb += [getattr(ep, n).eq(fld(Funct.COMPUTE, n)) for n in
                     ("a_row", "b_row", "c_row", "steps", "k_valid", "accumulate")]
        m.d.comb += [getattr(ep, n).eq(getattr(regs, n)) for n in
                     ("dataflow", "a_signed", "b_signed", "a_zero", "b_zero")]
        m.d.comb += [
            sp.raw.eq(funct == Funct.STORE_ACC), sp.dram_addr.eq(fld(Funct.STORE, "dram_addr")),
            sp.acc_row.eq(fld(Funct.STORE, "acc_row")), sp.rows.eq(fld(Funct.STORE, "rows")),
            sp.cols.eq(fld(Funct.STORE, "cols")), sp.stride.eq(regs.store_stride),
        ]
        m.d.comb += [getattr(sp, n).eq(getattr(regs, n)) for n in
                     ("qp_row", "out_zero", "mode", "clamp_min", "clamp_max")]
        if self._config.with_store_add:
            mb = dram_addr_bits(self._config)
            m.d.comb += [
                sp.add.eq(funct == Funct.STORE_ADD),
                sp.skip_addr.eq((fld(Funct.STORE, "dram_addr") + regs.skip_offset)[:mb]),
                sp.add_clamp_min.eq(regs.add_clamp_min), sp.add_clamp_max.eq(regs.add_clamp_max),
                sp.elem_signed.eq(regs.elem_signed), sp.skip_first.eq(regs.skip_first),
                *(sp.constants[i].eq(reg) for i, reg in enumerate(regs.add_constants)),
            ]
        if self._config.store_pool:
            pool = funct == Funct.STORE_POOL
            m.d.comb += [sp.kernel_h.eq(Mux(pool, regs.kernel_h, 1)),
                         sp.kernel_w.eq(Mux(pool, regs.kernel_w, 1)),
                         sp.step.eq(Mux(pool, regs.step, 1)), sp.pitch.eq(regs.pitch)]

    def _status(self, m, busy, errors, lists):
        """The status word FENCE and STATUS answer."""
        status = Signal(32)
        values = {"busy": busy, "error": errors.code != 0, "error_code": errors.code,
                  "error_funct": errors.funct, "error_count": errors.count,
                  "list_busy": lists.busy, "list_done": lists.done}
        m.d.comb += [status[f.lsb:f.lsb + f.width].eq(values[f.name]) for f in STATUS_FIELDS]
        m.d.comb += self.rsp.payload.eq(status)
        return status

    def _side_status(self, m, status, errors, lists):
        """A STATUS from the core while a list runs: taken into a register of its own (the
        core waits for the answer in a later cycle than it issues) and answered from there."""
        side_held = Signal()
        side = Signal(CommandLayout)
        m.d.comb += lists.side_take.eq(lists.busy & ~side_held &
                                       (self.cmd.payload.funct == Funct.STATUS))
        with m.If(self.cmd.valid & lists.side_take):
            m.d.sync += [side_held.eq(1), side.eq(self.cmd.payload)]
        with m.If(side_held):
            m.d.comb += self.rsp.valid.eq(1)
            with m.If(self.rsp.ready):
                m.d.sync += side_held.eq(0)
                self._status_clears(m, partial(_field, side), errors, lists)

    def _status_clears(self, m, fld, errors, lists):
        """What an answered STATUS clears (``fld`` reads its fields)."""
        with m.If(fld(Funct.STATUS, "clear")):
            errors.clear(m)
        if self._config.command_fetch:
            with m.If(fld(Funct.STATUS, "clear_done")):
                m.d.sync += lists.done.eq(0)

    def _dispatch(self, m, funct, fld, dec, hazard, queues, regs, post, errors, busy, accept,
                  lists):
        """Refuse, dispatch or answer the decoded command (within ``held & decoded``)."""
        settling = post.settling if post is not None else Const(0)
        with m.If(dec.to_post & settling):
            pass                    # its checks are not yet those of the new registers
        with m.Elif(dec.code != 0):
            m.d.comb += accept.eq(1)
            errors.refuse(m, dec.code, funct)
        with m.Elif(dec.to_load | dec.to_exec | dec.to_store | dec.to_post):
            for unit, queue in queues.items():
                port = getattr(self, unit)
                with m.If(getattr(dec, f"to_{unit}") & ~hazard & ~queue.full):
                    m.d.comb += port.valid.eq(1)
                    with m.If(port.ready):
                        m.d.comb += [queue.push.eq(1), accept.eq(1)]
        with m.Elif(funct == Funct.STATUS):
            m.d.comb += self.rsp.valid.eq(1)
            with m.If(self.rsp.ready):
                m.d.comb += accept.eq(1)
                self._status_clears(m, fld, errors, lists)
        with m.Elif(funct == Funct.FENCE):
            m.d.comb += self.rsp.valid.eq(~busy)
            m.d.comb += accept.eq(~busy & self.rsp.ready)
        if self._config.command_fetch:
            with m.Elif(funct == Funct.RUN):
                # After every earlier command, whose stores might write the list.
                count = fld(Funct.RUN, "count")
                with m.If(~busy & (count == 0)):
                    m.d.comb += accept.eq(1)
                    m.d.sync += lists.done.eq(1)
                with m.Elif(~busy):
                    mb = dram_addr_bits(self._config)
                    m.d.comb += [
                        self.start.valid.eq(1),
                        self.start.payload.addr.eq(fld(Funct.RUN, "list_addr")[:mb]),
                        self.start.payload.count.eq(count[:mb + 1]),
                        accept.eq(self.start.ready),
                    ]
                    with m.If(self.start.ready):
                        m.d.sync += lists.busy.eq(1)
        with m.Else():
            m.d.comb += accept.eq(1)
            regs.update(m, funct, fld)
            if post is not None:
                post.update(m, funct, fld)
