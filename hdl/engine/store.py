"""The store unit: accumulators to main memory, raw or requantised."""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from rvnpu.hdl.bus import unit_request_signature
from rvnpu.hdl.engine.delay import delayed
from rvnpu.spec.commands import ROW_BITS, QP_ROWS
from rvnpu.hdl.engine.requant import RequantLane
from rvnpu.hdl.engine.unit_ops import dram_addr_bits, store_op


__all__ = ["StoreUnit"]


class StoreUnit(wiring.Component):
    """Reads accumulator rows, requantises them and writes them to main memory.

    One command runs at a time: its requantisation settings feed the lanes directly, so they
    must not change under rows still in the pipeline. Within a command, one accumulator row is
    read a cycle (as long as the output FIFO has room) and leaves as bus words with byte masks,
    so rows may start at any byte and be any width.

    Members
    -------
    cmd : In(stream)
        STORE and STORE_ACC commands (:func:`.unit_ops.store_op`).
    acc_addr, acc_data : accumulator read port (one cycle latency)
    qp_addr, qp_data : requantisation-parameter read port (one cycle latency)
    req : Out(stream)
        This unit's side of the main-memory bus (writes only).
    retire, busy : Out
    """

    fifo_depth = 8

    def __init__(self, config):
        self._config = c = config
        super().__init__({
            "cmd":      In(stream.Signature(store_op(config))),
            "acc_addr": Out(ROW_BITS),
            "acc_data": In(data.ArrayLayout(signed(c.acc_width), c.cols)),
            "qp_addr":  Out(ROW_BITS),
            "qp_data":  In(data.ArrayLayout(32, c.cols)),
            "req":      Out(unit_request_signature(c.bus_bytes, c.bus_width)),
            "retire":   Out(1),
            "busy":     Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        c = self._config
        C = c.cols
        bb = c.bus_bytes
        shift = bb.bit_length() - 1
        maxb = 4 * C

        cmd = Signal(store_op(c))
        active = Signal()
        m.d.comb += self.cmd.ready.eq(~active)
        with m.If(self.cmd.valid & ~active):
            m.d.sync += [cmd.eq(self.cmd.payload), active.eq(1)]

        # -- Requantisation parameters: three rows, read once a command -------------------------
        # Row 0 is the bias; each mode reads the others as its spec says (rvnpu.spec.requant).
        params = [Signal(data.ArrayLayout(32, C), name=f"qp{i}") for i in range(QP_ROWS)]
        qp_i = Signal(range(QP_ROWS + 2), init=QP_ROWS + 1)
        if c.with_requant:
            m.d.comb += self.qp_addr.eq(cmd.qp_row + qp_i)
            got = delayed(m, qp_i, 1, name="qp_got")
            for i, reg in enumerate(params):
                with m.If(active & (got == i)):
                    m.d.sync += reg.eq(self.qp_data)

        # -- Row issue ---------------------------------------------------------------------------
        # With fewer requantisation lanes than columns a row passes the lanes in `groups`
        # slices, one a cycle, so requantised rows are issued at most every `groups` cycles.
        L = c.lanes
        groups = C // L
        es = Mux(cmd.raw, 4, c.elem_bytes)
        nbytes = Signal(range(maxb + 1))
        m.d.comb += nbytes.eq(cmd.cols * es)
        empty = (cmd.rows == 0) | (cmd.cols == 0)

        row_i = Signal(9)
        in_flight = Signal(range(self.fifo_depth + 1))
        issue = Signal()
        popped = Signal()
        gap = Signal(range(groups))
        m.d.sync += in_flight.eq(in_flight + issue - popped)
        with m.If(issue & ~cmd.raw):
            m.d.sync += gap.eq(groups - 1)
        with m.Elif(gap != 0):
            m.d.sync += gap.eq(gap - 1)

        with m.FSM():
            with m.State("Idle"):
                with m.If(self.cmd.valid & ~active):
                    m.d.sync += [qp_i.eq(0), row_i.eq(0)]
                    # Without requantisation every store is raw: no parameters to read.
                    m.next = "Params" if c.with_requant else "Rows"
            with m.State("Params"):
                m.d.sync += qp_i.eq(qp_i + 1)
                with m.If(qp_i == QP_ROWS):
                    m.next = "Rows"
            with m.State("Rows"):
                with m.If(empty | (row_i == cmd.rows)):
                    m.next = "Drain"
                with m.Elif((in_flight < self.fifo_depth) & (gap == 0)):
                    m.d.comb += issue.eq(1)
                    m.d.sync += row_i.eq(row_i + 1)
            with m.State("Drain"):
                with m.If(in_flight == 0):
                    m.d.comb += self.retire.eq(1)
                    m.d.sync += active.eq(0)
                    m.next = "Idle"
        m.d.comb += self.acc_addr.eq(cmd.acc_row + row_i)

        # -- Requantise ---------------------------------------------------------------------------
        # The row read for `issue` is on acc_data the next cycle (`fresh`): slice 0 goes to the
        # lanes at once and the row is kept in `held` for the other slices.
        fresh = delayed(m, issue, 1, name="fresh")
        held = Signal.like(self.acc_data, reset_less=True)
        slice_i = Signal(range(groups))
        with m.If(fresh):
            m.d.sync += held.eq(self.acc_data)
        if groups > 1:
            with m.If(fresh):
                m.d.sync += slice_i.eq(1)
            with m.Elif(slice_i != 0):
                m.d.sync += slice_i.eq(Mux(slice_i == groups - 1, 0, slice_i + 1))
        feeding = fresh | (slice_i != 0)
        in_slice = Mux(fresh, 0, slice_i)

        def column(values, lane, from_acc=False):
            """`lane`'s input this cycle: its column of the slice being fed."""
            later = Array(values[g * L + lane] for g in range(groups))[in_slice]
            return Mux(fresh, self.acc_data[lane], later) if from_acc else later

        if c.with_requant:
            lanes = []
            for lane_i in range(L):
                lane = RequantLane(modes=[mode.name for mode in c.built_requant_modes])
                m.submodules[f"lane{lane_i}"] = lane
                m.d.comb += [
                    lane.i_valid.eq(feeding & ~cmd.raw),
                    lane.acc.eq(column(held, lane_i, from_acc=True)),
                    lane.bias.eq(column(params[0], lane_i)),
                    *(lane.params[i].eq(column(row, lane_i))
                      for i, row in enumerate(params[1:])),
                    lane.mode.eq(cmd.mode),
                    lane.out_zero.eq(cmd.out_zero),
                    lane.clamp_min.eq(cmd.clamp_min),
                    lane.clamp_max.eq(cmd.clamp_max),
                ]
                lanes.append(lane)

            # Slices leave the lanes in order; all but the last wait in `done_slices`.
            eb = c.elem_bytes
            out_slice = delayed(m, in_slice, lanes[0].latency, name="out_slice")
            lane_bytes = Cat(*(lane.o_value[:8 * eb] for lane in lanes))
            done_slices = [Signal(8 * eb * L, name=f"done_slice{g}", reset_less=True)
                           for g in range(groups - 1)]
            for g, reg in enumerate(done_slices):
                with m.If(lanes[0].o_valid & (out_slice == g)):
                    m.d.sync += reg.eq(lane_bytes)
            row_done = lanes[0].o_valid & (out_slice == groups - 1)
            q_bytes = Cat(*done_slices, lane_bytes)
        else:
            q_bytes, row_done = 0, Const(0)

        raw_bytes = Cat(*(Cat(v, v[-1].replicate(32 - len(v))) for v in self.acc_data))
        m.submodules.out = out_q = fifo.SyncFIFOBuffered(width=8 * maxb, depth=self.fifo_depth)
        m.d.comb += [
            out_q.w_en.eq(Mux(cmd.raw, fresh, row_done)),
            out_q.w_data.eq(Mux(cmd.raw, raw_bytes, q_bytes)),
        ]

        # Rows leave in order, so the address of the row at the head is kept here rather than
        # carried through the pipeline.
        head_base = Signal(dram_addr_bits(c))
        with m.If(self.cmd.valid & ~active):
            m.d.sync += head_base.eq(self.cmd.payload.dram_addr)
        with m.Elif(popped):
            m.d.sync += head_base.eq(head_base + cmd.stride)

        # -- Emit bus words -----------------------------------------------------------------------
        align = head_base[:shift]
        first_word = head_base[shift:]
        last_word = (head_base + nbytes - 1)[shift:]
        j = Signal(8)
        shifted = Signal(8 * (maxb + bb))
        mask = Signal(maxb + bb)
        m.d.comb += [
            shifted.eq(out_q.r_data << (align * 8)),
            mask.eq(((Const(1, maxb + bb) << nbytes) - 1) << align),
            self.req.valid.eq(out_q.r_rdy),
            self.req.payload.addr.eq(first_word + j),
            self.req.payload.write.eq(1),
            self.req.payload.data.eq(shifted.word_select(j, 8 * bb)),
            self.req.payload.mask.eq(mask.word_select(j, bb)),
        ]
        with m.If(self.req.valid & self.req.ready):
            with m.If(first_word + j == last_word):
                m.d.comb += [out_q.r_en.eq(1), popped.eq(1)]
                m.d.sync += j.eq(0)
            with m.Else():
                m.d.sync += j.eq(j + 1)

        m.d.comb += self.busy.eq(active)
        return m
