"""The matrix engine: front end, three units, their local memories and the bus arbiter."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out, connect

from rvnpu.hdl.bus import BusSignature
from rvnpu.hdl.engine.command_slice import CommandSlice
from rvnpu.spec.config import EngineConfig
from rvnpu.hdl.engine.execute import ExecuteUnit
from rvnpu.hdl.command_port import CommandLayout
from rvnpu.hdl.engine.frontend import Frontend
from rvnpu.spec.commands import Space
from rvnpu.hdl.engine.load import LoadUnit
from rvnpu.hdl.engine.store import StoreUnit
from rvnpu.hdl.engine.unit_ops import exec_op, load_op, store_op


__all__ = ["MatrixEngine", "engine_signature"]


def engine_signature(config):
    """The engine's ports for ``config``, without building an engine (for tools that only
    describe it)."""
    bus = BusSignature(32 - (config.bus_bytes.bit_length() - 1), config.bus_width)
    return wiring.Signature({
        "cmd":    In(stream.Signature(CommandLayout)),
        "rsp":    Out(stream.Signature(32)),
        "bus":    Out(bus),
        "busy":   Out(1),
        "active": Out(1),
    })


class MatrixEngine(wiring.Component):
    """A systolic matrix engine driven by ``(funct, op1, op2)`` commands.

    Loads, computes and stores run concurrently in three units; the front end keeps their
    effects in program order (see :class:`Frontend`). Each local memory is an
    :class:`amaranth.lib.memory.Memory` with one writer and one or two readers, so it maps onto
    FPGA block RAM.

    Parameters
    ----------
    config : EngineConfig

    Members
    -------
    cmd : In(stream)
        Commands (:data:`CommandLayout`), as a RISC-V custom-0 instruction carries them.
    rsp : Out(stream)
        Answers of FENCE and STATUS.
    bus : Out(BusSignature)
        Main-memory port.
    busy : Out
        A command is in flight.
    active : Out
        A step enters the systolic array this cycle.
    """

    def __init__(self, config=EngineConfig()):
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        self._config = config
        super().__init__(engine_signature(config))
        self.bus_signature = self.signature.members["bus"].signature

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        c = self._config
        R, C = c.rows, c.cols
        elem = unsigned(c.in_width)

        m.submodules.frontend = fe = Frontend(c)
        m.submodules.load = ld = LoadUnit(c)
        m.submodules.execute = ex = ExecuteUnit(c)
        m.submodules.store = st = StoreUnit(c)

        connect(m, wiring.flipped(self.cmd), fe.cmd)
        connect(m, fe.rsp, wiring.flipped(self.rsp))
        for name, source, unit, layout in (("load", fe.load, ld, load_op(c)),
                                           ("exec", fe.exec, ex, exec_op(c)),
                                           ("store", fe.store, st, store_op(c))):
            m.submodules[f"{name}_slice"] = cut = CommandSlice(layout)
            connect(m, source, cut.i)
            connect(m, cut.o, unit.cmd)
        m.d.comb += [
            fe.load_retire.eq(ld.retire),
            fe.exec_retire.eq(ex.retire),
            fe.store_retire.eq(st.retire),
            self.busy.eq(fe.busy),
            self.active.eq(ex.active),
        ]

        # -- Local memories ----------------------------------------------------------------------
        m.submodules.spad_a = spad_a = Memory(
            shape=data.ArrayLayout(elem, R), depth=c.spad_depth, init=[])
        m.submodules.spad_b = spad_b = Memory(
            shape=data.ArrayLayout(elem, C), depth=c.spad_depth, init=[])
        m.submodules.acc = acc = Memory(
            shape=data.ArrayLayout(signed(c.acc_width), C), depth=c.acc_depth, init=[])
        m.submodules.qp = qp = Memory(
            shape=data.ArrayLayout(32, C), depth=c.qp_depth, init=[])

        spa_w, spb_w, acc_w, qp_w = (mem.write_port() for mem in (spad_a, spad_b, acc, qp))
        spa_r, spb_r = spad_a.read_port(), spad_b.read_port()
        acc_rx = acc.read_port(transparent_for=(acc_w,))
        acc_rs = acc.read_port()
        qp_r = qp.read_port()

        m.d.comb += [
            spa_r.addr.eq(ex.spa_addr), ex.spa_data.eq(spa_r.data),
            spb_r.addr.eq(ex.spb_addr), ex.spb_data.eq(spb_r.data),
            acc_rx.addr.eq(ex.acc_raddr), ex.acc_rdata.eq(acc_rx.data),
            acc_rs.addr.eq(st.acc_addr), st.acc_data.eq(acc_rs.data),
            qp_r.addr.eq(st.qp_addr), st.qp_data.eq(qp_r.data),
        ]

        # Load unit rows into whichever memory they are for; the execute unit owns the
        # accumulator write port whenever it writes.
        lw = ld.w.payload
        eb = c.elem_bytes
        for port, space, n, width, size in ((spa_w, Space.SPAD_A, R, c.in_width, eb),
                                            (spb_w, Space.SPAD_B, C, c.in_width, eb),
                                            (qp_w, Space.QP, C, 32, 4)):
            m.d.comb += [
                port.addr.eq(lw.row),
                port.data.eq(Cat(*(Cat(*(lw.data[i * size + b] for b in range(size)))[:width]
                                   for i in range(n)))),
                port.en.eq(ld.w.valid & (lw.space == space)),
            ]
        load_acc = ld.w.valid & (lw.space == Space.ACC)
        m.d.comb += [
            ld.w.ready.eq(~((lw.space == Space.ACC) & ex.acc_we)),
            acc_w.addr.eq(Mux(ex.acc_we, ex.acc_waddr, lw.row)),
            acc_w.data.eq(Mux(ex.acc_we, ex.acc_wdata,
                              Cat(*(Cat(*(lw.data[i * 4 + b] for b in range(4)))[:c.acc_width]
                                    for i in range(C))))),
            acc_w.en.eq(ex.acc_we | load_acc),
        ]

        # -- Bus: loads and stores take turns when both want it ----------------------------------
        last_load = Signal()
        grant_load = Signal()
        m.d.comb += grant_load.eq(ld.req.valid & (~st.req.valid | ~last_load))
        m.d.comb += [
            self.bus.req.valid.eq(ld.req.valid | st.req.valid),
            self.bus.req.payload.eq(Mux(grant_load, ld.req.payload, st.req.payload)),
            ld.req.ready.eq(grant_load & self.bus.req.ready),
            st.req.ready.eq(~grant_load & self.bus.req.ready),
            ld.rsp.payload.eq(self.bus.rsp.payload),
            ld.rsp.valid.eq(self.bus.rsp.valid),
            self.bus.rsp.ready.eq(1),
        ]
        with m.If(self.bus.req.valid & self.bus.req.ready):
            m.d.sync += last_load.eq(grant_load)
        return m
