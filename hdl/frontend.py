"""The front end: decodes commands, refuses bad ones, and dispatches the rest in order."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .isa import (Funct, Space, ErrorCode, Dataflow, RequantMode, QP_ROWS, ROW_BITS,
                  STATUS_FIELDS, field_of)
from .unit_ops import local_row_bits, dram_addr_bits, load_op, exec_op, store_op


__all__ = ["CommandLayout", "Frontend"]


CommandLayout = data.StructLayout({"funct": 7, "op1": 32, "op2": 32})

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


def _overlap(a_lo, a_hi, b_lo, b_hi):
    return (a_lo < a_hi) & (b_lo < b_hi) & (a_lo < b_hi) & (b_lo < a_hi)


class Frontend(wiring.Component):
    """Turns the command stream into work for the load, execute and store units.

    It holds the architectural configuration registers and attaches them to each dispatched
    command, checks every command as the golden model does (a refused command writes nothing
    and sets the sticky error status), and keeps, for each unit, the ranges of local memory and
    main memory its unfinished commands touch. A command is held back while it conflicts with an
    unfinished command of another unit, so programs behave as if run one command at a time.
    With ``hazards="serial"`` it keeps no ranges and a command waits for the other units to
    be idle instead: the same results in a fraction of the area, with less overlap.

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
        R, C = c.rows, c.cols
        D = c.queue_depth

        # -- Input register: decode reads a stable command --------------------------------------
        held = Signal()
        cmd = Signal(CommandLayout)
        accept = Signal()     # the held command is done with this cycle
        # Ready only when empty, not when the held command leaves: that costs a cycle between
        # commands (the core needs many more to issue one) but keeps decoding, the range
        # arithmetic and the hazard checks out of the core's stall logic, the SoC's
        # critical path otherwise.
        m.d.comb += self.cmd.ready.eq(~held)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [held.eq(1), cmd.eq(self.cmd.payload)]
        with m.Elif(accept):
            m.d.sync += held.eq(0)

        funct = cmd.funct

        def fld(fn, name):
            f = field_of(fn, name)
            value = (cmd.op1 if f.operand == 1 else cmd.op2)[f.lsb:f.lsb + f.width]
            return value.as_signed() if f.signed else value

        # -- Architectural configuration ---------------------------------------------------------
        lo, hi = -(1 << (c.in_width - 1)), min((1 << c.in_width) - 1, (1 << 15) - 1)
        # Reset clamp: the signed output range.
        dataflow = Signal(init=Dataflow.OS if c.with_os else Dataflow.WS)
        a_signed = Signal(init=1)
        b_signed = Signal(init=1)
        a_zero = Signal(signed(16))
        b_zero = Signal(signed(16))
        # Strides below the window's size, and a bit set for any beyond it: a command moving
        # more than one row with such a stride is out of the window at once.
        lb, mb = local_row_bits(c), dram_addr_bits(c)
        load_stride = Signal(mb + 1)
        store_stride = Signal(mb + 1)

        def saturated(stride):
            return Cat(stride[:mb], stride[mb:].any())
        qp_row = Signal(ROW_BITS)
        out_zero = Signal(signed(16))
        # Reset to a convention the engine has, as the golden model does.
        mode = Signal(init=RequantMode.TFLITE if c.with_tflite else RequantMode.ORT)
        clamp_min = Signal(signed(16), init=lo)
        clamp_max = Signal(signed(16), init=(1 << (c.in_width - 1)) - 1)

        # -- Checks and ranges (mirroring EngineModel.check) -------------------------------------
        code = Signal(4)
        ranges = Signal(_ranges_layout(c))
        unit_load, unit_exec, unit_store, front = (Signal(name=n) for n in
                                                   ("to_load", "to_exec", "to_store", "front"))
        is_os = dataflow == Dataflow.OS

        # One main-memory range for LOAD and STORE (their transfer fields coincide), worked
        # out below the window's size: an address or a stride reaching past it is out at once.
        for name in ("dram_addr", "rows", "cols"):
            load_f, store_f = field_of(Funct.LOAD, name), field_of(Funct.STORE, name)
            assert (load_f.operand, load_f.lsb, load_f.width) == \
                (store_f.operand, store_f.lsb, store_f.width), name
        addr = fld(Funct.LOAD, "dram_addr")
        rows = fld(Funct.LOAD, "rows")
        stride = Mux(unit_load, load_stride, store_stride)
        row_bytes = Signal(11)
        end = Signal(mb + 10)
        m.d.comb += end.eq(addr[:mb] + (rows - 1) * stride[:mb] + row_bytes)
        outside = (addr[mb:] != 0) | ((rows > 1) & (stride[mb:] != 0)) | (end > c.mem_bytes)

        def element_ok(value, is_signed):
            s_lo, s_hi = -(1 << (c.in_width - 1)), (1 << (c.in_width - 1)) - 1
            return Mux(is_signed, (value >= s_lo) & (value <= s_hi),
                       (value >= 0) & (value <= (1 << c.in_width) - 1))

        with m.Switch(funct):
            with m.Case(Funct.LOAD):
                m.d.comb += unit_load.eq(1)
                space, row = fld(Funct.LOAD, "space"), fld(Funct.LOAD, "local_row")
                rows, cols = fld(Funct.LOAD, "rows"), fld(Funct.LOAD, "cols")
                addr = fld(Funct.LOAD, "dram_addr")
                depth = Signal(ROW_BITS + 1)
                cap = Signal(range(max(R, C) + 1))
                es = Signal(3)
                with m.Switch(space):
                    with m.Case(Space.SPAD_A):
                        m.d.comb += [depth.eq(c.spad_depth), cap.eq(R), es.eq(c.elem_bytes)]
                    with m.Case(Space.SPAD_B):
                        m.d.comb += [depth.eq(c.spad_depth), cap.eq(C), es.eq(c.elem_bytes)]
                    with m.Case(Space.ACC):
                        m.d.comb += [depth.eq(c.acc_depth), cap.eq(C), es.eq(4)]
                    with m.Case(Space.QP):
                        m.d.comb += [depth.eq(c.qp_depth), cap.eq(C), es.eq(4)]
                m.d.comb += row_bytes.eq(cols * es)
                with m.If((rows != 0) & (cols != 0)):
                    with m.If(row + rows > depth):
                        m.d.comb += code.eq(ErrorCode.BAD_LOCAL)
                    with m.Elif(cols > cap):
                        m.d.comb += code.eq(ErrorCode.BAD_SIZE)
                    with m.Elif(outside):
                        m.d.comb += code.eq(ErrorCode.BAD_MEMORY)
                    flat = (space << lb) + row
                    m.d.comb += [ranges.w_lo.eq(flat), ranges.w_hi.eq(flat + rows),
                                 ranges.d_lo.eq(addr), ranges.d_hi.eq(end)]
            with m.Case(Funct.STORE, Funct.STORE_ACC):
                m.d.comb += unit_store.eq(1)
                row = fld(Funct.STORE, "acc_row")
                rows, cols = fld(Funct.STORE, "rows"), fld(Funct.STORE, "cols")
                addr = fld(Funct.STORE, "dram_addr")
                es = Mux(funct == Funct.STORE, c.elem_bytes, 4)
                m.d.comb += row_bytes.eq(cols * es)
                with m.If((rows != 0) & (cols != 0)):
                    with m.If(row + rows > c.acc_depth):
                        m.d.comb += code.eq(ErrorCode.BAD_LOCAL)
                    with m.Elif(cols > C):
                        m.d.comb += code.eq(ErrorCode.BAD_SIZE)
                    with m.Elif(outside):
                        m.d.comb += code.eq(ErrorCode.BAD_MEMORY)
                    flat = (Space.ACC << lb) + row
                    qp = (Space.QP << lb) + qp_row
                    m.d.comb += [ranges.r1_lo.eq(flat), ranges.r1_hi.eq(flat + rows),
                                 ranges.r2_lo.eq(qp), ranges.r2_hi.eq(qp + QP_ROWS),
                                 ranges.d_lo.eq(addr), ranges.d_hi.eq(end)]
                if not c.with_requant:
                    with m.If(funct == Funct.STORE):
                        m.d.comb += code.eq(ErrorCode.BAD_FUNCT)
            with m.Case(Funct.COMPUTE):
                m.d.comb += unit_exec.eq(1)
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
                        m.d.comb += code.eq(ErrorCode.BAD_LOCAL)
                    with m.Elif(~is_os & (k_valid > R)):
                        m.d.comb += code.eq(ErrorCode.BAD_SIZE)
                    fa = (Space.SPAD_A << lb) + a
                    fb = (Space.SPAD_B << lb) + b
                    fc = (Space.ACC << lb) + cr
                    m.d.comb += [ranges.r1_lo.eq(fa), ranges.r1_hi.eq(fa + a_n),
                                 ranges.r2_lo.eq(fb), ranges.r2_hi.eq(fb + b_n),
                                 ranges.w_lo.eq(fc), ranges.w_hi.eq(fc + c_n)]
            with m.Case(Funct.CONFIG_EXEC):
                df = fld(Funct.CONFIG_EXEC, "dataflow")
                supported = Mux(df == Dataflow.OS, int(c.with_os), int(c.with_ws))
                ok = (supported &
                      element_ok(fld(Funct.CONFIG_EXEC, "a_zero"),
                                 fld(Funct.CONFIG_EXEC, "a_signed")) &
                      element_ok(fld(Funct.CONFIG_EXEC, "b_zero"),
                                 fld(Funct.CONFIG_EXEC, "b_signed")))
                m.d.comb += [front.eq(1), code.eq(Mux(ok, 0, ErrorCode.BAD_CONFIG))]
            with m.Case(Funct.CONFIG_REQUANT):
                cmin = fld(Funct.CONFIG_REQUANT, "clamp_min")
                cmax = fld(Funct.CONFIG_REQUANT, "clamp_max")
                s_lo, s_hi = -(1 << (c.in_width - 1)), (1 << (c.in_width - 1)) - 1
                asked = fld(Funct.CONFIG_REQUANT, "mode")
                built = Mux(asked == RequantMode.TFLITE, int(c.with_tflite), int(c.with_ort))
                ok = built & (cmin <= cmax) & (((cmin >= s_lo) & (cmax <= s_hi)) |
                                               ((cmin >= 0) & (cmax <= hi)))
                m.d.comb += [front.eq(1), code.eq(Mux(ok, 0, ErrorCode.BAD_CONFIG))]
            with m.Case(Funct.CONFIG_STORE):
                bad = fld(Funct.CONFIG_STORE, "qp_row") + QP_ROWS > c.qp_depth
                m.d.comb += [front.eq(1), code.eq(Mux(bad, ErrorCode.BAD_LOCAL, 0))]
            with m.Case(Funct.CONFIG_LOAD, Funct.FENCE, Funct.STATUS):
                m.d.comb += front.eq(1)
            with m.Default():
                m.d.comb += code.eq(ErrorCode.BAD_FUNCT)

        # -- Decode takes a cycle of its own ---------------------------------------------------
        # The range arithmetic (a multiplier among it) and the checks are registered before
        # the hazard comparisons use them; otherwise the two in series set the SoC's clock.
        # The held command and the configuration it reads do not change meanwhile.
        decoded = Signal()
        m.d.sync += decoded.eq(held & ~accept)
        tracked = c.hazards == "ranges"
        decoded_now = {"code": code, "ranges": ranges, "to_load": unit_load,
                       "to_exec": unit_exec, "to_store": unit_store}
        if not tracked:
            del decoded_now["ranges"]
        registered = {name: Signal.like(v, name=f"{name}_q") for name, v in decoded_now.items()}
        m.d.sync += [registered[name].eq(v) for name, v in decoded_now.items()]
        code, unit_load, unit_exec, unit_store = (registered[n] for n in
                                                  ("code", "to_load", "to_exec", "to_store"))
        ranges = registered.get("ranges")

        # -- Live ranges of each unit ------------------------------------------------------------
        class Ring:
            def __init__(self, name, retire):
                self.entries = [Signal(_ranges_layout(c), name=f"{name}_live{i}")
                                for i in range(D)] if tracked else []
                self.head = Signal(range(D), name=f"{name}_head")   # oldest
                self.count = Signal(range(D + 1), name=f"{name}_count")
                self.push = Signal(name=f"{name}_push")
                self.retire = retire
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
                if not tracked:
                    return self.count != 0
                hits = []
                for live, e in zip(self.live, self.entries):
                    for mine, theirs in checks:
                        hits.append(live & _overlap(*mine, *(getattr(e, n) for n in theirs)))
                return Cat(*hits).any()

        loads = Ring("load", self.load_retire)
        execs = Ring("exec", self.exec_retire)
        stores = Ring("store", self.store_retire)

        if tracked:
            w = (ranges.w_lo, ranges.w_hi)
            r1 = (ranges.r1_lo, ranges.r1_hi)
            r2 = (ranges.r2_lo, ranges.r2_hi)
            d = (ranges.d_lo, ranges.d_hi)
        else:
            w = r1 = r2 = d = None
        W, R1, R2, DR = ("w_lo", "w_hi"), ("r1_lo", "r1_hi"), ("r2_lo", "r2_hi"), \
            ("d_lo", "d_hi")
        hazard = Signal()
        with m.If(unit_load):
            m.d.comb += hazard.eq(execs.conflicts([(w, W), (w, R1), (w, R2)]) |
                                  stores.conflicts([(w, R1), (w, R2), (d, DR)]))
        with m.If(unit_exec):
            m.d.comb += hazard.eq(loads.conflicts([(w, W), (r1, W), (r2, W)]) |
                                  stores.conflicts([(w, R1)]))
        with m.If(unit_store):
            m.d.comb += hazard.eq(loads.conflicts([(r1, W), (r2, W), (d, DR)]) |
                                  execs.conflicts([(r1, W)]))

        busy = Signal()
        m.d.comb += [busy.eq((loads.count != 0) | (execs.count != 0) | (stores.count != 0)),
                     self.busy.eq(busy | held)]

        # -- Payloads ----------------------------------------------------------------------------
        lp, ep, sp = self.load.payload, self.exec.payload, self.store.payload
        m.d.comb += [
            lp.dram_addr.eq(fld(Funct.LOAD, "dram_addr")), lp.space.eq(fld(Funct.LOAD, "space")),
            lp.row.eq(fld(Funct.LOAD, "local_row")), lp.rows.eq(fld(Funct.LOAD, "rows")),
            lp.cols.eq(fld(Funct.LOAD, "cols")), lp.stride.eq(load_stride),
        ]
        m.d.comb += [getattr(ep, n).eq(fld(Funct.COMPUTE, n)) for n in
                     ("a_row", "b_row", "c_row", "steps", "k_valid", "accumulate")]
        m.d.comb += [ep.dataflow.eq(dataflow), ep.a_signed.eq(a_signed),
                     ep.b_signed.eq(b_signed), ep.a_zero.eq(a_zero), ep.b_zero.eq(b_zero)]
        m.d.comb += [
            sp.raw.eq(funct == Funct.STORE_ACC), sp.dram_addr.eq(fld(Funct.STORE, "dram_addr")),
            sp.acc_row.eq(fld(Funct.STORE, "acc_row")), sp.rows.eq(fld(Funct.STORE, "rows")),
            sp.cols.eq(fld(Funct.STORE, "cols")), sp.stride.eq(store_stride),
            sp.qp_row.eq(qp_row), sp.out_zero.eq(out_zero), sp.mode.eq(mode),
            sp.clamp_min.eq(clamp_min), sp.clamp_max.eq(clamp_max),
        ]

        # -- Status ------------------------------------------------------------------------------
        err_code = Signal(4)
        err_funct = Signal(7)
        err_count = Signal(16)
        status = Signal(32)
        values = {"busy": busy, "error": err_code != 0, "error_code": err_code,
                  "error_funct": err_funct, "error_count": err_count}
        m.d.comb += [status[f.lsb:f.lsb + f.width].eq(values[f.name]) for f in STATUS_FIELDS]
        m.d.comb += self.rsp.payload.eq(status)

        # -- Dispatch ----------------------------------------------------------------------------
        with m.If(held & decoded):
            with m.If(code != 0):
                m.d.comb += accept.eq(1)
                with m.If(err_code == 0):
                    m.d.sync += [err_code.eq(code), err_funct.eq(funct)]
                with m.If(err_count != 0xffff):
                    m.d.sync += err_count.eq(err_count + 1)
            with m.Elif(unit_load | unit_exec | unit_store):
                for unit, ring, port in ((unit_load, loads, self.load),
                                         (unit_exec, execs, self.exec),
                                         (unit_store, stores, self.store)):
                    with m.If(unit & ~hazard & (ring.count != D)):
                        m.d.comb += [port.valid.eq(1)]
                        with m.If(port.ready):
                            m.d.comb += [ring.push.eq(1), accept.eq(1)]
            with m.Elif(funct == Funct.STATUS):
                m.d.comb += self.rsp.valid.eq(1)
                with m.If(self.rsp.ready):
                    m.d.comb += accept.eq(1)
                    with m.If(fld(Funct.STATUS, "clear")):
                        m.d.sync += [err_code.eq(0), err_funct.eq(0), err_count.eq(0)]
            with m.Elif(funct == Funct.FENCE):
                m.d.comb += self.rsp.valid.eq(~busy)
                m.d.comb += accept.eq(~busy & self.rsp.ready)
            with m.Else():
                m.d.comb += accept.eq(1)
                with m.Switch(funct):
                    with m.Case(Funct.CONFIG_EXEC):
                        m.d.sync += [dataflow.eq(fld(Funct.CONFIG_EXEC, n)) for n in
                                     ("dataflow",)]
                        m.d.sync += [a_signed.eq(fld(Funct.CONFIG_EXEC, "a_signed")),
                                     b_signed.eq(fld(Funct.CONFIG_EXEC, "b_signed")),
                                     a_zero.eq(fld(Funct.CONFIG_EXEC, "a_zero")),
                                     b_zero.eq(fld(Funct.CONFIG_EXEC, "b_zero"))]
                    with m.Case(Funct.CONFIG_LOAD):
                        m.d.sync += load_stride.eq(saturated(fld(Funct.CONFIG_LOAD, "stride")))
                    with m.Case(Funct.CONFIG_STORE):
                        m.d.sync += [store_stride.eq(saturated(fld(Funct.CONFIG_STORE, "stride"))),
                                     qp_row.eq(fld(Funct.CONFIG_STORE, "qp_row"))]
                    with m.Case(Funct.CONFIG_REQUANT):
                        m.d.sync += [out_zero.eq(fld(Funct.CONFIG_REQUANT, "out_zero")),
                                     mode.eq(fld(Funct.CONFIG_REQUANT, "mode")),
                                     clamp_min.eq(fld(Funct.CONFIG_REQUANT, "clamp_min")),
                                     clamp_max.eq(fld(Funct.CONFIG_REQUANT, "clamp_max"))]
        return m
