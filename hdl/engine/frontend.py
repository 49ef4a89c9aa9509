"""The front end: decodes commands, refuses bad ones, and dispatches the rest in order."""

from functools import partial

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rvnpu.spec.commands import (Funct, Space, ErrorCode, Dataflow, QP_ROWS, ROW_BITS,
                                 STATUS_FIELDS, field_of)
from rvnpu.spec.requant import reset_mode
from rvnpu.hdl.command_port import CommandLayout
from rvnpu.hdl.engine.unit_ops import local_row_bits, dram_addr_bits, load_op, exec_op, store_op


__all__ = ["Frontend"]


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
        with m.If(self.push):
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


class _ConfigRegisters:
    """The architectural configuration: what the configuration commands set, at reset values.

    Strides are held below the window's size, with a bit set for any beyond it: a command
    moving more than one row with such a stride is out of the window at once.
    """

    def __init__(self, config):
        c = config
        self._mb = mb = dram_addr_bits(c)
        self.dataflow = Signal(init=Dataflow.OS if c.with_os else Dataflow.WS)
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


class _Decoded:
    """What decoding the held command finds: its error code (0: none), the unit it goes to
    (``front``: the front end itself) and the address ranges it touches."""

    def __init__(self, config, suffix=""):
        self.code = Signal(4, name=f"code{suffix}")
        self.ranges = Signal(_ranges_layout(config), name=f"ranges{suffix}")
        self.to_load, self.to_exec, self.to_store, self.front = (
            Signal(name=f"{n}{suffix}") for n in ("to_load", "to_exec", "to_store", "front"))


class _StickyError:
    """The first refused command's code and function, and how many were refused."""

    def __init__(self):
        self.code = Signal(4, name="err_code")
        self.funct = Signal(7, name="err_funct")
        self.count = Signal(16, name="err_count")

    def refuse(self, m, code, funct):
        with m.If(self.code == 0):
            m.d.sync += [self.code.eq(code), self.funct.eq(funct)]
        with m.If(self.count != 0xffff):
            m.d.sync += self.count.eq(self.count + 1)

    def clear(self, m):
        m.d.sync += [self.code.eq(0), self.funct.eq(0), self.count.eq(0)]


class Frontend(wiring.Component):
    """Turns the command stream into work for the load, execute and store units.

    It holds the architectural configuration registers and attaches them to each dispatched
    command, checks every command as the golden model does (a refused command writes nothing
    and sets the sticky error status), and keeps, for each unit, the ranges of local memory and
    main memory its unfinished commands touch. A command is held back while it conflicts with an
    unfinished command of another unit, so programs behave as if run one command at a time.
    With ``hazards="serial"`` it keeps no ranges and a command waits for the other units to
    be idle instead: the same results in a fraction of the area, with less overlap.

    A command takes three steps: the input register holds it, decoding (the checks and the
    ranges it touches) takes a cycle of its own, then it is dispatched, refused or answered.

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
    busy : Out
    """

    def __init__(self, config):
        self._config = config
        super().__init__({
            "cmd":          In(stream.Signature(CommandLayout)),
            "rsp":          Out(stream.Signature(32)),
            "load":         Out(stream.Signature(load_op(config))),
            "exec":         Out(stream.Signature(exec_op(config))),
            "store":        Out(stream.Signature(store_op(config))),
            "load_retire":  In(1),
            "exec_retire":  In(1),
            "store_retire": In(1),
            "busy":         Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        c = self._config

        held, cmd, accept = self._input_register(m)
        fld = partial(_field, cmd)
        regs = _ConfigRegisters(c)

        decoded, dec = self._decode(m, cmd.funct, fld, regs, held, accept)

        ranges = dec.ranges if c.hazards == "ranges" else None
        queues = {unit: _UnitQueue(m, unit, c.queue_depth, getattr(self, f"{unit}_retire"),
                                   ranges)
                  for unit in ("load", "exec", "store")}
        hazard = self._hazard(m, dec, queues)

        busy = Signal()
        m.d.comb += [busy.eq(Cat(q.count != 0 for q in queues.values()).any()),
                     self.busy.eq(busy | held)]

        self._payloads(m, cmd.funct, fld, regs)
        errors = self._status(m, busy)
        with m.If(held & decoded):
            self._dispatch(m, cmd.funct, fld, dec, hazard, queues, regs, errors, busy, accept)
        return m

    def _input_register(self, m):
        """Hold one command so that decoding reads a stable one; returns ``(held, cmd,
        accept)``, ``accept`` meaning the held command is done with this cycle."""
        held = Signal()
        cmd = Signal(CommandLayout)
        accept = Signal()
        # Ready only when empty, not when the held command leaves: that costs a cycle between
        # commands (the core needs many more to issue one) but keeps decoding, the range
        # arithmetic and the hazard checks out of the core's stall logic, the SoC's
        # critical path otherwise.
        m.d.comb += self.cmd.ready.eq(~held)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [held.eq(1), cmd.eq(self.cmd.payload)]
        with m.Elif(accept):
            m.d.sync += held.eq(0)
        return held, cmd, accept

    # -- Decoding: checks and ranges (mirroring EngineModel.check) ---------------------------

    def _decode(self, m, funct, fld, regs, held, accept):
        """Check the held command and work out its ranges, then register both.

        Returns ``(decoded, dec)``: ``decoded`` is high once ``dec`` (a :class:`_Decoded`)
        describes the held command. The range arithmetic (a multiplier among it) and the checks
        are registered before the hazard comparisons use them; otherwise the two in series set
        the SoC's clock. The held command and the configuration it reads do not change
        meanwhile.
        """
        c = self._config
        now = _Decoded(c)

        # One main-memory range for LOAD and STORE (their transfer fields coincide), worked
        # out below the window's size: an address or a stride reaching past it is out at once.
        for name in ("dram_addr", "rows", "cols"):
            load_f, store_f = field_of(Funct.LOAD, name), field_of(Funct.STORE, name)
            assert (load_f.operand, load_f.lsb, load_f.width) == \
                (store_f.operand, store_f.lsb, store_f.width), name
        mb = dram_addr_bits(c)
        addr = fld(Funct.LOAD, "dram_addr")
        rows = fld(Funct.LOAD, "rows")
        stride = Mux(now.to_load, regs.load_stride, regs.store_stride)
        row_bytes = Signal(11)
        end = Signal(mb + 10)
        m.d.comb += end.eq(addr[:mb] + (rows - 1) * stride[:mb] + row_bytes)
        outside = (addr[mb:] != 0) | ((rows > 1) & (stride[mb:] != 0)) | (end > c.mem_bytes)
        transfer = (row_bytes, end, outside)

        with m.Switch(funct):
            with m.Case(Funct.LOAD):
                self._check_load(m, fld, now, transfer)
            with m.Case(Funct.STORE, Funct.STORE_ACC):
                self._check_store(m, funct, fld, regs, now, transfer)
            with m.Case(Funct.COMPUTE):
                self._check_compute(m, fld, regs, now)
            with m.Case(Funct.CONFIG_EXEC):
                self._check_config_exec(m, fld, now)
            with m.Case(Funct.CONFIG_REQUANT):
                self._check_config_requant(m, fld, now)
            with m.Case(Funct.CONFIG_STORE):
                bad = fld(Funct.CONFIG_STORE, "qp_row") + QP_ROWS > c.qp_depth
                m.d.comb += [now.front.eq(1), now.code.eq(Mux(bad, ErrorCode.BAD_LOCAL, 0))]
            with m.Case(Funct.CONFIG_LOAD, Funct.FENCE, Funct.STATUS):
                m.d.comb += now.front.eq(1)
            with m.Default():
                m.d.comb += now.code.eq(ErrorCode.BAD_FUNCT)

        decoded = Signal()
        m.d.sync += decoded.eq(held & ~accept)
        dec = _Decoded(c, suffix="_q")
        names = ["code", "to_load", "to_exec", "to_store"]
        if c.hazards == "ranges":
            names.append("ranges")
        m.d.sync += [getattr(dec, n).eq(getattr(now, n)) for n in names]
        return decoded, dec

    def _check_load(self, m, fld, now, transfer):
        c = self._config
        row_bytes, end, outside = transfer
        m.d.comb += now.to_load.eq(1)
        space, row = fld(Funct.LOAD, "space"), fld(Funct.LOAD, "local_row")
        rows, cols = fld(Funct.LOAD, "rows"), fld(Funct.LOAD, "cols")
        addr = fld(Funct.LOAD, "dram_addr")
        depth = Signal(ROW_BITS + 1)
        cap = Signal(range(max(c.rows, c.cols) + 1))
        es = Signal(3)
        with m.Switch(space):
            with m.Case(Space.SPAD_A):
                m.d.comb += [depth.eq(c.spad_depth), cap.eq(c.rows), es.eq(c.elem_bytes)]
            with m.Case(Space.SPAD_B):
                m.d.comb += [depth.eq(c.spad_depth), cap.eq(c.cols), es.eq(c.elem_bytes)]
            with m.Case(Space.ACC):
                m.d.comb += [depth.eq(c.acc_depth), cap.eq(c.cols), es.eq(4)]
            with m.Case(Space.QP):
                m.d.comb += [depth.eq(c.qp_depth), cap.eq(c.cols), es.eq(4)]
        m.d.comb += row_bytes.eq(cols * es)
        with m.If((rows != 0) & (cols != 0)):
            with m.If(row + rows > depth):
                m.d.comb += now.code.eq(ErrorCode.BAD_LOCAL)
            with m.Elif(cols > cap):
                m.d.comb += now.code.eq(ErrorCode.BAD_SIZE)
            with m.Elif(outside):
                m.d.comb += now.code.eq(ErrorCode.BAD_MEMORY)
            flat = (space << local_row_bits(c)) + row
            m.d.comb += [now.ranges.w_lo.eq(flat), now.ranges.w_hi.eq(flat + rows),
                         now.ranges.d_lo.eq(addr), now.ranges.d_hi.eq(end)]

    def _check_store(self, m, funct, fld, regs, now, transfer):
        c = self._config
        lb = local_row_bits(c)
        row_bytes, end, outside = transfer
        m.d.comb += now.to_store.eq(1)
        row = fld(Funct.STORE, "acc_row")
        rows, cols = fld(Funct.STORE, "rows"), fld(Funct.STORE, "cols")
        addr = fld(Funct.STORE, "dram_addr")
        es = Mux(funct == Funct.STORE, c.elem_bytes, 4)
        m.d.comb += row_bytes.eq(cols * es)
        with m.If((rows != 0) & (cols != 0)):
            with m.If(row + rows > c.acc_depth):
                m.d.comb += now.code.eq(ErrorCode.BAD_LOCAL)
            with m.Elif(cols > c.cols):
                m.d.comb += now.code.eq(ErrorCode.BAD_SIZE)
            with m.Elif(outside):
                m.d.comb += now.code.eq(ErrorCode.BAD_MEMORY)
            flat = (Space.ACC << lb) + row
            qp = (Space.QP << lb) + regs.qp_row
            m.d.comb += [now.ranges.r1_lo.eq(flat), now.ranges.r1_hi.eq(flat + rows),
                         now.ranges.r2_lo.eq(qp), now.ranges.r2_hi.eq(qp + QP_ROWS),
                         now.ranges.d_lo.eq(addr), now.ranges.d_hi.eq(end)]
        if not c.with_requant:
            with m.If(funct == Funct.STORE):
                m.d.comb += now.code.eq(ErrorCode.BAD_FUNCT)

    def _check_compute(self, m, fld, regs, now):
        c = self._config
        R, lb = c.rows, local_row_bits(c)
        is_os = regs.dataflow == Dataflow.OS
        m.d.comb += now.to_exec.eq(1)
        steps = fld(Funct.COMPUTE, "steps")
        k_valid = fld(Funct.COMPUTE, "k_valid")
        a = fld(Funct.COMPUTE, "a_row")
        b = fld(Funct.COMPUTE, "b_row")
        cr = fld(Funct.COMPUTE, "c_row")
        a_n = Mux(is_os, (steps + R - 1) // R * R, steps)
        b_n = Mux(is_os, steps, k_valid)
        c_n = Mux(is_os, R, steps)
        with m.If(steps != 0):
            with m.If((a + a_n > c.spad_depth) | (b + b_n > c.spad_depth) |
                      (cr + c_n > c.acc_depth)):
                m.d.comb += now.code.eq(ErrorCode.BAD_LOCAL)
            with m.Elif(~is_os & (k_valid > R)):
                m.d.comb += now.code.eq(ErrorCode.BAD_SIZE)
            fa = (Space.SPAD_A << lb) + a
            fb = (Space.SPAD_B << lb) + b
            fc = (Space.ACC << lb) + cr
            m.d.comb += [now.ranges.r1_lo.eq(fa), now.ranges.r1_hi.eq(fa + a_n),
                         now.ranges.r2_lo.eq(fb), now.ranges.r2_hi.eq(fb + b_n),
                         now.ranges.w_lo.eq(fc), now.ranges.w_hi.eq(fc + c_n)]

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

    def _hazard(self, m, dec, queues):
        """The decoded command conflicts with an unfinished command of another unit: it would
        write what they read or write, or read what they write."""
        loads, execs, stores = queues["load"], queues["exec"], queues["store"]
        hazard = Signal()
        with m.If(dec.to_load):
            m.d.comb += hazard.eq(execs.conflicts([(_W, _W), (_W, _R1), (_W, _R2)]) |
                                  stores.conflicts([(_W, _R1), (_W, _R2), (_D, _D)]))
        with m.If(dec.to_exec):
            m.d.comb += hazard.eq(loads.conflicts([(_W, _W), (_R1, _W), (_R2, _W)]) |
                                  stores.conflicts([(_W, _R1)]))
        with m.If(dec.to_store):
            m.d.comb += hazard.eq(loads.conflicts([(_R1, _W), (_R2, _W), (_D, _D)]) |
                                  execs.conflicts([(_R1, _W)]))
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

    def _status(self, m, busy):
        """The sticky error registers and the status word FENCE and STATUS answer."""
        errors = _StickyError()
        status = Signal(32)
        values = {"busy": busy, "error": errors.code != 0, "error_code": errors.code,
                  "error_funct": errors.funct, "error_count": errors.count}
        m.d.comb += [status[f.lsb:f.lsb + f.width].eq(values[f.name]) for f in STATUS_FIELDS]
        m.d.comb += self.rsp.payload.eq(status)
        return errors

    def _dispatch(self, m, funct, fld, dec, hazard, queues, regs, errors, busy, accept):
        """Refuse, dispatch or answer the decoded command (within ``held & decoded``)."""
        with m.If(dec.code != 0):
            m.d.comb += accept.eq(1)
            errors.refuse(m, dec.code, funct)
        with m.Elif(dec.to_load | dec.to_exec | dec.to_store):
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
                with m.If(fld(Funct.STATUS, "clear")):
                    errors.clear(m)
        with m.Elif(funct == Funct.FENCE):
            m.d.comb += self.rsp.valid.eq(~busy)
            m.d.comb += accept.eq(~busy & self.rsp.ready)
        with m.Else():
            m.d.comb += accept.eq(1)
            regs.update(m, funct, fld)
