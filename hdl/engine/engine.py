"""The matrix engine: front end, its units, their local memories and the bus arbiter."""

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out, connect

from rvnpu.hdl.bus import BusSignature, word_address_width
from rvnpu.hdl.engine.command_slice import CommandSlice
from rvnpu.hdl.engine.delay import delayed
from rvnpu.spec.config import EngineConfig
from rvnpu.hdl.engine.execute import ExecuteUnit
from rvnpu.hdl.engine.fetch import CommandFetcher
from rvnpu.hdl.command_port import CommandLayout
from rvnpu.hdl.engine.frontend import Frontend
from rvnpu.spec.commands import Space
from rvnpu.hdl.engine.load import LoadUnit
from rvnpu.hdl.engine.post import PostUnit
from rvnpu.hdl.engine.skip_reader import SkipReader, row_words
from rvnpu.hdl.engine.store import StoreUnit
from rvnpu.hdl.engine.unit_ops import exec_op, load_op, post_op, store_op


__all__ = ["MatrixEngine", "engine_signature"]


def engine_signature(config):
    """The engine's ports for ``config``, without building an engine (for tools that only
    describe it)."""
    bus = BusSignature(word_address_width(config.bus_bytes), config.bus_width)
    return wiring.Signature({
        "cmd":    In(stream.Signature(CommandLayout)),
        "rsp":    Out(stream.Signature(32)),
        "bus":    Out(bus),
        "busy":   Out(1),
        "active": Out(1),
        "irq":    Out(1),
    })


class MatrixEngine(wiring.Component):
    """A systolic matrix engine driven by ``(funct, op1, op2)`` commands.

    Loads, computes and stores run concurrently in three units; the front end keeps their
    effects in program order (see :class:`Frontend`). With ``post_unit``, max-pools and
    QLinearAdds run in a fourth (:class:`.post.PostUnit`), alone. Each local memory is an
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
    irq : Out
        Level interrupt: a command list finished (the sticky ``list_done`` status bit);
        software acknowledges it with STATUS ``clear``.
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
        # A slice between the front end and a unit keeps the unit's readiness, and its work
        # on the command it takes, out of the front end's cycle. The execute unit's readiness
        # is a register and it copies the command as it is, so its slice is only a place for
        # one more COMPUTE, which frees the front end for the commands behind it; with one
        # command in flight a unit (queue_depth 1) the front end never has one more to give,
        # and the slice would only hold a copy of the command for a cycle. Without
        # ``unit_slices`` every unit takes its commands from the front end directly.
        def feed(name, source, unit, layout, sliced=True):
            if c.unit_slices and sliced:
                m.submodules[f"{name}_slice"] = cut = CommandSlice(layout)
                connect(m, source, cut.i)
                connect(m, cut.o, unit.cmd)
            else:
                connect(m, source, unit.cmd)

        feed("load", fe.load, ld, load_op(c))
        feed("store", fe.store, st, store_op(c))
        feed("exec", fe.exec, ex, exec_op(c), sliced=c.queue_depth > 1)
        m.d.comb += [
            fe.exec_retire.eq(ex.retire),
            fe.store_retire.eq(st.retire),
            self.busy.eq(fe.busy),
            self.active.eq(ex.active),
            self.irq.eq(fe.list_done),
        ]
        post = None
        if c.post_unit:
            m.submodules.post = post = PostUnit(c)
            feed("post", fe.post, post, post_op(c))
            m.d.comb += fe.post_retire.eq(post.retire)
        fetch = None
        if c.command_fetch:
            m.submodules.fetch = fetch = CommandFetcher(c)
            connect(m, fe.start, fetch.start)
            connect(m, fetch.entries, fe.list)
            m.d.comb += fe.fetch_busy.eq(fetch.busy)

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
        # accumulator write port whenever it writes. With ``load_stage`` each memory's write
        # is registered (its own copy of the row, so that each can sit by its memory) and
        # lands a cycle later, when the execute unit is known not to write the accumulator.
        lw = ld.w.payload
        eb = c.elem_bytes
        acc_busy = ex.acc_we_next if c.load_stage else ex.acc_we
        m.d.comb += ld.w.ready.eq(~((lw.space == Space.ACC) & acc_busy))

        def load_write(space, n, width, size):
            """The load unit's write into ``space``: enable, row and data, as the memory
            sees them."""
            en = ld.w.valid & (lw.space == space)
            if c.load_stage and space == Space.ACC:
                # A row held back now must not land: the execute unit writes then.
                en = en & ld.w.ready
            row = lw.row
            value = Cat(*(Cat(*(lw.data[i * size + b] for b in range(size)))[:width]
                          for i in range(n)))
            if not c.load_stage:
                return en, row, value
            name = space.name.lower()
            en_q = Signal(name=f"load_{name}_en")
            row_q = Signal(len(row), name=f"load_{name}_row", reset_less=True)
            value_q = Signal(len(value), name=f"load_{name}_data", reset_less=True)
            m.d.sync += en_q.eq(en)
            # The copy is taken whenever a row for this memory is offered, whether or not it
            # is taken: an enable from the handshake (which waits on the execute unit) would
            # be a net of its own across the part to every copy's flip-flops.
            with m.If(lw.space == space):
                m.d.sync += [row_q.eq(row), value_q.eq(value)]
            return en_q, row_q, value_q

        for port, space, n, width, size in ((spa_w, Space.SPAD_A, R, c.in_width, eb),
                                            (spb_w, Space.SPAD_B, C, c.in_width, eb),
                                            (qp_w, Space.QP, C, 32, 4)):
            en, row, value = load_write(space, n, width, size)
            m.d.comb += [port.addr.eq(row), port.data.eq(value), port.en.eq(en)]
        load_acc, acc_row, acc_value = load_write(Space.ACC, C, c.acc_width, 4)
        m.d.comb += [
            acc_w.addr.eq(Mux(ex.acc_we, ex.acc_waddr, acc_row)),
            acc_w.data.eq(Mux(ex.acc_we, ex.acc_wdata, acc_value)),
            acc_w.en.eq(ex.acc_we | load_acc),
        ]
        # A LOAD retires once its last row is in its memory.
        m.d.comb += fe.load_retire.eq(
            delayed(m, ld.retire, 1, name="load_retire") if c.load_stage else ld.retire)

        self._arbiter(m, ld, st, fetch, post)
        return m

    def _arbiter(self, m, ld, st, fetch, post):
        """Bus: the fetcher goes first, then loads and stores take turns, then a STORE_ADD's
        skip reads, then the post unit.

        Reads answer in request order, so only one reader (the load unit, the fetcher or the
        post unit) has reads in flight at a time, and answers go to the one that issued the
        reads still in flight: another reader waits until they are answered. The load unit and
        the post unit stop reading while the fetcher waits, so it gets in within a few cycles.
        The load unit and the post unit never wait for each other (the front end never runs
        them at once). The skip reader may wait for the load unit's reads, which never wait
        for the store. Writes (the store unit's, the post unit's) need no answer and no turn.
        """
        bus = self.bus
        m.d.comb += bus.rsp.ready.eq(1)
        readers = {"load": ld}
        if fetch is not None:
            readers["fetch"] = fetch
        skip = None
        if self._config.with_store_add:
            readers["skip"] = skip = SimpleNamespace(req=st.skip_req, rsp=st.skip_rsp)
        if post is not None:
            readers["post"] = post
        last_load = Signal()
        fire = bus.req.valid & bus.req.ready
        grants = {name: Signal(name=f"grant_{name}") for name in (*readers, "store")}

        # A reader may issue only while no other reader's reads are in flight.
        if len(readers) == 1:
            may_read = {"load": Const(1)}
            to_reader = {"load": bus.rsp.valid}
        else:
            credits = (LoadUnit.credits + (PostUnit.credits if post is not None else 0) +
                       (CommandFetcher.depth * 4 if fetch is not None else 0) +
                       (SkipReader.depth * row_words(self._config)
                        if skip is not None else 0))
            reads = Signal(range(credits + 2))       # in flight, all the owner's
            owner = Signal(range(len(readers)))
            codes = {name: i for i, name in enumerate(readers)}
            m.d.sync += reads.eq(reads + (fire & ~bus.req.payload.write) - bus.rsp.valid)
            may_read = {name: (reads == 0) | (owner == codes[name]) for name in readers}
            to_reader = {}
            for name in readers:
                # An answer in the cycle of its request (a memory without latency) is the
                # reader's granted now.
                mine = Mux(reads == 0, grants[name], owner == codes[name])
                to_reader[name] = bus.rsp.valid & mine
            with m.If(fire & ~bus.req.payload.write):
                for name in readers:
                    with m.If(grants[name]):
                        m.d.sync += owner.eq(codes[name])
        fetch_waits = fetch.req.valid if fetch is not None else Const(0)

        if fetch is not None:
            m.d.comb += grants["fetch"].eq(fetch.req.valid & may_read["fetch"])
        else:
            grants["fetch"] = Const(0)
        load_ok = ld.req.valid & ~fetch_waits & may_read["load"]
        m.d.comb += [
            grants["load"].eq(~grants["fetch"] & load_ok & (~st.req.valid | ~last_load)),
            grants["store"].eq(~grants["fetch"] & ~grants["load"] & st.req.valid),
        ]
        skip_granted = Const(0)
        if skip is not None:
            skip_ok = skip.req.valid & ~fetch_waits & may_read["skip"]
            m.d.comb += grants["skip"].eq(~grants["fetch"] & ~grants["load"] &
                                          ~grants["store"] & skip_ok)
            skip_granted = grants["skip"]
        if post is not None:
            post_ok = post.req.valid & (post.req.payload.write |
                                        (~fetch_waits & may_read["post"]))
            m.d.comb += grants["post"].eq(~grants["fetch"] & ~grants["load"] &
                                          ~grants["store"] & ~skip_granted & post_ok)
        m.d.comb += bus.req.valid.eq(Cat(*grants.values()).any())
        for name, unit in (*readers.items(), ("store", st)):
            m.d.comb += unit.req.ready.eq(grants[name] & bus.req.ready)
            with m.If(grants[name]):
                m.d.comb += bus.req.payload.eq(unit.req.payload)
        for name, unit in readers.items():
            m.d.comb += [unit.rsp.payload.eq(bus.rsp.payload),
                         unit.rsp.valid.eq(to_reader[name])]
        with m.If(fire & (grants["load"] | grants["store"])):
            m.d.sync += last_load.eq(grants["load"])
