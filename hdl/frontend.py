"""The front end: decodes commands, refuses bad ones, and dispatches the rest in order."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .isa import (Funct, Space, ErrorCode, Dataflow, RequantMode, QP_ROWS, ROW_BITS,
                  STATUS_FIELDS, field_of)
from .unit_ops import LoadOp, ExecOp, StoreOp


__all__ = ["CommandLayout", "Frontend"]


CommandLayout = data.StructLayout({"funct": 7, "op1": 32, "op2": 32})

_LOCAL = ROW_BITS + 3     # flat local addresses: space tag above the row, one bit for the end
_DRAM = 34                # byte addresses and ends, with room for end > 2**32


class _Ranges(data.Struct):
    """Address ranges a live command touches, ``[lo, hi)``; an empty range has lo == hi."""
    w_lo: _LOCAL
    w_hi: _LOCAL
    r1_lo: _LOCAL
    r1_hi: _LOCAL
    r2_lo: _LOCAL
    r2_hi: _LOCAL
    d_lo: _DRAM
    d_hi: _DRAM


def _overlap(a_lo, a_hi, b_lo, b_hi):
    return (a_lo < a_hi) & (b_lo < b_hi) & (a_lo < b_hi) & (b_lo < a_hi)


class Frontend(wiring.Component):
    """Turns the command stream into work for the load, execute and store units.

    It holds the architectural configuration registers and attaches them to each dispatched
    command, checks every command as the golden model does (a refused command writes nothing
    and sets the sticky error status), and keeps, for each unit, the ranges of local memory and
    main memory its unfinished commands touch. A command is held back while it conflicts with an
    unfinished command of another unit, so programs behave as if run one command at a time.

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
            "load":         Out(stream.Signature(LoadOp)),
            "exec":         Out(stream.Signature(ExecOp)),
            "store":        Out(stream.Signature(StoreOp)),
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
        load_stride = Signal(32)
        store_stride = Signal(32)
        qp_row = Signal(ROW_BITS)
        out_zero = Signal(signed(16))
        # Reset to a convention the engine has, as the golden model does.
        mode = Signal(init=RequantMode.TFLITE if c.with_tflite else RequantMode.ORT)
        clamp_min = Signal(signed(16), init=lo)
        clamp_max = Signal(signed(16), init=(1 << (c.in_width - 1)) - 1)

        # -- Checks and ranges (mirroring EngineModel.check) -------------------------------------
        code = Signal(4)
        ranges = Signal(_Ranges)
        unit_load, unit_exec, unit_store, front = (Signal(name=n) for n in
                                                   ("to_load", "to_exec", "to_store", "front"))
        is_os = dataflow == Dataflow.OS

        def dram_range(addr, rows, stride, row_bytes):
            end = Signal(_DRAM + 8)
            m.d.comb += end.eq(addr + (rows - 1) * stride + row_bytes)
            return end

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
                end = dram_range(addr, rows, load_stride, cols * es)
                with m.If((rows != 0) & (cols != 0)):
                    with m.If(row + rows > depth):
                        m.d.comb += code.eq(ErrorCode.BAD_LOCAL)
                    with m.Elif(cols > cap):
                        m.d.comb += code.eq(ErrorCode.BAD_SIZE)
                    with m.Elif(end > c.mem_bytes):
                        m.d.comb += code.eq(ErrorCode.BAD_MEMORY)
                    flat = (space << ROW_BITS) + row
                    m.d.comb += [ranges.w_lo.eq(flat), ranges.w_hi.eq(flat + rows),
                                 ranges.d_lo.eq(addr), ranges.d_hi.eq(end)]
            with m.Case(Funct.STORE, Funct.STORE_ACC):
                m.d.comb += unit_store.eq(1)
                row = fld(Funct.STORE, "acc_row")
                rows, cols = fld(Funct.STORE, "rows"), fld(Funct.STORE, "cols")
                addr = fld(Funct.STORE, "dram_addr")
                es = Mux(funct == Funct.STORE, c.elem_bytes, 4)
                end = dram_range(addr, rows, store_stride, cols * es)
                with m.If((rows != 0) & (cols != 0)):
                    with m.If(row + rows > c.acc_depth):
                        m.d.comb += code.eq(ErrorCode.BAD_LOCAL)
                    with m.Elif(cols > C):
                        m.d.comb += code.eq(ErrorCode.BAD_SIZE)
                    with m.Elif(end > c.mem_bytes):
                        m.d.comb += code.eq(ErrorCode.BAD_MEMORY)
                    flat = (Space.ACC << ROW_BITS) + row
                    qp = (Space.QP << ROW_BITS) + qp_row
                    m.d.comb += [ranges.r1_lo.eq(flat), ranges.r1_hi.eq(flat + rows),
                                 ranges.r2_lo.eq(qp), ranges.r2_hi.eq(qp + QP_ROWS),
                                 ranges.d_lo.eq(addr), ranges.d_hi.eq(end)]
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
                    fa = (Space.SPAD_A << ROW_BITS) + a
                    fb = (Space.SPAD_B << ROW_BITS) + b
                    fc = (Space.ACC << ROW_BITS) + cr
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
        decoded_now = {"code": code, "ranges": ranges, "to_load": unit_load,
                       "to_exec": unit_exec, "to_store": unit_store}
        registered = {name: Signal.like(v, name=f"{name}_q") for name, v in decoded_now.items()}
        m.d.sync += [registered[name].eq(v) for name, v in decoded_now.items()]
        code, ranges, unit_load, unit_exec, unit_store = registered.values()

        # -- Live ranges of each unit ------------------------------------------------------------
        class Ring:
            def __init__(self, name, retire):
                self.entries = [Signal(_Ranges, name=f"{name}_live{i}") for i in range(D)]
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
                hits = []
                for live, e in zip(self.live, self.entries):
                    for mine, theirs in checks:
                        hits.append(live & _overlap(*mine, *(getattr(e, n) for n in theirs)))
                return Cat(*hits).any()

        loads = Ring("load", self.load_retire)
        execs = Ring("exec", self.exec_retire)
        stores = Ring("store", self.store_retire)

        w = (ranges.w_lo, ranges.w_hi)
        r1 = (ranges.r1_lo, ranges.r1_hi)
        r2 = (ranges.r2_lo, ranges.r2_hi)
        d = (ranges.d_lo, ranges.d_hi)
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
                        m.d.sync += load_stride.eq(fld(Funct.CONFIG_LOAD, "stride"))
                    with m.Case(Funct.CONFIG_STORE):
                        m.d.sync += [store_stride.eq(fld(Funct.CONFIG_STORE, "stride")),
                                     qp_row.eq(fld(Funct.CONFIG_STORE, "qp_row"))]
                    with m.Case(Funct.CONFIG_REQUANT):
                        m.d.sync += [out_zero.eq(fld(Funct.CONFIG_REQUANT, "out_zero")),
                                     mode.eq(fld(Funct.CONFIG_REQUANT, "mode")),
                                     clamp_min.eq(fld(Funct.CONFIG_REQUANT, "clamp_min")),
                                     clamp_max.eq(fld(Funct.CONFIG_REQUANT, "clamp_max"))]
        return m
