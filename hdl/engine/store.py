"""The store unit: accumulators to main memory, raw or requantised."""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from rvnpu.hdl.bus import unit_request_signature
from rvnpu.hdl.engine.delay import delayed
from rvnpu.hdl.engine.qadd import ELEMENT, QLinearAddPipeline
from rvnpu.hdl.engine.skip_reader import SkipReader
from rvnpu.spec.commands import ROW_BITS, QP_ROWS
from rvnpu.hdl.engine.requant import RequantLane
from rvnpu.hdl.engine.unit_ops import dram_addr_bits, row_bytes, store_op


__all__ = ["StoreUnit"]


class StoreUnit(wiring.Component):
    """Reads accumulator rows, requantises them and writes them to main memory.

    A STORE_ADD (engines built with it) sends each requantised slice, with the skip tensor's
    elements a :class:`.skip_reader.SkipReader` read ahead, through a QLinearAdd pipeline a
    lane, and writes its results; a row is issued only once its skip row is in.

    A STORE_POOL reads each output row's window, ``kernel_h * kernel_w`` accumulator rows, one
    a cycle, and writes the lane-wise max of their requantised values; a STORE is the same
    with a 1 x 1 window, so it reads and writes one row a cycle as before.

    One command runs at a time: its requantisation settings feed the lanes directly, so they
    must not change under rows still in the pipeline. Within a command, one accumulator row is
    read a cycle (as long as the output FIFO has room) and leaves as bus words with byte masks,
    so rows may start at any byte and be any width.

    Members
    -------
    cmd : In(stream)
        STORE, STORE_POOL and STORE_ACC commands (:func:`.unit_ops.store_op`).
    acc_addr, acc_data : accumulator read port (one cycle latency)
    qp_addr, qp_data : requantisation-parameter read port (one cycle latency)
    req : Out(stream)
        This unit's side of the main-memory bus (writes only).
    skip_req : Out(stream), skip_rsp : In(stream)
        With STORE_ADD: the skip reader's side of the bus (reads only).
    retire, busy : Out
    """

    fifo_depth = 8

    def __init__(self, config):
        self._config = c = config
        skip = {}
        if c.with_store_add:
            skip = {"skip_req": Out(unit_request_signature(c.bus_bytes, c.bus_width)),
                    "skip_rsp": In(stream.Signature(c.bus_width, always_ready=True))}
        super().__init__({
            **skip,
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
        # A row's bytes, worked out as the command is taken.
        nbytes = Signal(range(maxb + 1))
        new = self.cmd.payload
        with m.If(self.cmd.valid & ~active):
            m.d.sync += nbytes.eq(row_bytes(c, new.cols, new.raw))
        empty = (cmd.rows == 0) | (cmd.cols == 0)

        row_i = Signal(9)
        in_flight = Signal(range(self.fifo_depth + 1))
        issue = Signal()
        popped = Signal()
        gap = Signal(range(groups))

        # The window's taps (engines built with STORE_POOL): tap (dy, dx) of output row j
        # reads ACC row acc_row + j * step + dy * pitch + dx, kept in `tap_row`; `line_row` is
        # the first of its window row and `window_row` the window's first. Only a window's
        # last tap makes an output row, so only it counts against the output FIFO.
        if c.store_pool:
            last_tap, tap_row = self._window(m, cmd, active, issue)
        else:
            last_tap, tap_row = Const(1), cmd.acc_row + row_i
        # A STORE_ADD issues a row only once its skip row is in (`skip_ok`).
        if c.with_store_add:
            skip, skip_ok, skip_used = self._skip_rows(m, cmd, active, issue & last_tap)
        else:
            skip_ok = Const(1)
        m.d.sync += in_flight.eq(in_flight + (issue & last_tap) - popped)
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
                with m.Elif((in_flight < self.fifo_depth) & (gap == 0) & skip_ok):
                    m.d.comb += issue.eq(1)
                    with m.If(last_tap):
                        m.d.sync += row_i.eq(row_i + 1)
            with m.State("Drain"):
                with m.If(in_flight == 0):
                    m.d.comb += self.retire.eq(1)
                    m.d.sync += active.eq(0)
                    m.next = "Idle"
        m.d.comb += self.acc_addr.eq(tap_row)

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
                lane = RequantLane(modes=[mode.name for mode in c.built_requant_modes],
                                   deep=c.deep_lane)
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
            if c.store_pool:
                q_bytes, row_done = self._pooled(m, cmd, q_bytes, row_done)
            if c.with_store_add:
                m.d.comb += skip_used.eq(cmd.add & row_done)
                sums, sums_done = self._added(m, cmd, lanes, out_slice, skip)
                q_bytes = Mux(cmd.add, sums, q_bytes)
                row_done = Mux(cmd.add, sums_done, row_done)
        else:
            q_bytes, row_done = 0, Const(0)

        raw_bytes = Cat(*(Cat(v, v[-1].replicate(32 - len(v))) for v in self.acc_data))
        m.submodules.out = out_q = fifo.SyncFIFOBuffered(width=8 * maxb, depth=self.fifo_depth)
        m.d.comb += [
            out_q.w_en.eq(Mux(cmd.raw, fresh, row_done)),
            out_q.w_data.eq(Mux(cmd.raw, raw_bytes, q_bytes)),
        ]

        # Rows leave in order, so the address of the row at the head is kept here rather than
        # carried through the pipeline. A row ends at its `last_j`-th bus word: a narrow sum
        # of the row's alignment and its bytes, not the row's end address compared with the
        # word's.
        head_base = Signal(dram_addr_bits(c))
        with m.If(self.cmd.valid & ~active):
            m.d.sync += head_base.eq(self.cmd.payload.dram_addr)
        with m.Elif(popped):
            m.d.sync += head_base.eq(head_base + cmd.stride)

        # -- Emit bus words -----------------------------------------------------------------------
        align = head_base[:shift]
        first_word = head_base[shift:]
        j = Signal(8)
        last_j = Signal(8)
        m.d.comb += last_j.eq((align + nbytes - 1) >> shift)
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
            with m.If(j == last_j):
                m.d.comb += [out_q.r_en.eq(1), popped.eq(1)]
                m.d.sync += j.eq(0)
            with m.Else():
                m.d.sync += j.eq(j + 1)

        m.d.comb += self.busy.eq(active)
        return m

    def _window(self, m, cmd, active, issue):
        """The ACC row of each tap of a STORE_POOL's windows; returns ``(last_tap, tap_row)``,
        ``last_tap`` marking a window's last tap."""
        rb = len(cmd.acc_row)
        dx = Signal.like(cmd.kernel_w)
        dy = Signal.like(cmd.kernel_h)
        tap_row, line_row, window_row = (Signal(rb, name=n)
                                         for n in ("tap_row", "line_row", "window_row"))
        last_x = dx == cmd.kernel_w - 1
        last_tap = last_x & (dy == cmd.kernel_h - 1)
        with m.If(self.cmd.valid & ~active):
            first = self.cmd.payload.acc_row
            m.d.sync += [dx.eq(0), dy.eq(0), tap_row.eq(first), line_row.eq(first),
                         window_row.eq(first)]
        with m.Elif(issue):
            with m.If(~last_x):
                m.d.sync += [dx.eq(dx + 1), tap_row.eq(tap_row + 1)]
            with m.Elif(~last_tap):
                m.d.sync += [dx.eq(0), dy.eq(dy + 1), line_row.eq(line_row + cmd.pitch),
                             tap_row.eq(line_row + cmd.pitch)]
            with m.Else():
                next_window = window_row + cmd.step
                m.d.sync += [dx.eq(0), dy.eq(0), window_row.eq(next_window),
                             line_row.eq(next_window), tap_row.eq(next_window)]
        return last_tap, tap_row

    def _pooled(self, m, cmd, row, row_done):
        """The requantised rows of a window folded into their lane-wise max: returns the
        output row and its valid pulse, the window's last row. Elements compare signed when
        the clamp allows negative values (so the output is signed), else unsigned: the clamp
        keeps every requantised value within the element read either way."""
        c = self._config
        eb8 = 8 * c.elem_bytes
        dx = Signal.like(cmd.kernel_w, name="out_dx")
        dy = Signal.like(cmd.kernel_h, name="out_dy")
        last_x = dx == cmd.kernel_w - 1
        last = last_x & (dy == cmd.kernel_h - 1)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [dx.eq(0), dy.eq(0)]
        with m.Elif(row_done):
            m.d.sync += [dx.eq(Mux(last_x, 0, dx + 1)),
                         dy.eq(Mux(last_x, Mux(last, 0, dy + 1), dy))]
        best = Signal(len(row), name="pool_best", reset_less=True)
        signed_out = cmd.clamp_min < 0
        merged = []
        for i in range(c.cols):
            new, old = row[i * eb8:(i + 1) * eb8], best[i * eb8:(i + 1) * eb8]
            bigger = Mux(signed_out, new.as_signed() > old.as_signed(), new > old)
            first = (dx == 0) & (dy == 0)
            merged.append(Mux(first | bigger, new, old))
        merged = Cat(*merged)
        with m.If(row_done):
            m.d.sync += best.eq(merged)
        return merged, row_done & last

    def _skip_rows(self, m, cmd, active, row_issued):
        """The skip reader, started with each STORE_ADD. Returns ``(row, ok, used)``: the skip
        row of the oldest row in the lanes, whether one more row may be issued (its skip row
        is in), and the signal to drive when that oldest row is done with its skip row."""
        c = self._config
        m.submodules.skip = reader = SkipReader(c)
        wiring.connect(m, reader.req, wiring.flipped(self.skip_req))
        wiring.connect(m, wiring.flipped(self.skip_rsp), reader.rsp)
        new = self.cmd.payload
        m.d.comb += [
            reader.start.valid.eq(self.cmd.valid & ~active & new.add),
            reader.start.payload.addr.eq(new.skip_addr),
            reader.start.payload.stride.eq(new.stride),
            reader.start.payload.rows.eq(new.rows),
            reader.start.payload.nbytes.eq(new.cols),     # checked: at most cols
        ]
        # Rows issued whose skip row has not been used yet: each needs a row of its own.
        claimed = Signal(range(SkipReader.depth + self.fifo_depth + 1))
        used = Signal()
        m.d.sync += claimed.eq(claimed + (row_issued & cmd.add) - used)
        m.d.comb += reader.rows.ready.eq(used)
        return reader.rows.payload, ~cmd.add | (claimed < reader.level), used

    def _added(self, m, cmd, lanes, out_slice, skip):
        """Each lane's requantised value and its skip element through a QLinearAdd pipeline;
        returns the output row and its valid pulse, as the requantised rows have them."""
        c = self._config
        L = len(lanes)
        groups = c.cols // L
        adders = []
        for i, lane in enumerate(lanes):
            adder = QLinearAddPipeline(tag_width=len(out_slice))
            m.submodules[f"add{i}"] = adder
            column = Array(skip.word_select(g * L + i, 8) for g in range(groups))[out_slice]
            elem = Signal(ELEMENT, name=f"skip_elem{i}")
            m.d.comb += elem.eq(Mux(cmd.elem_signed, column.as_signed(), column))
            value = lane.o_value
            m.d.comb += [
                adder.i_valid.eq(lane.o_valid & cmd.add),
                adder.a.eq(Mux(cmd.skip_first, elem, value)),
                adder.b.eq(Mux(cmd.skip_first, value, elem)),
                adder.tag.eq(out_slice),
                adder.constants.eq(cmd.constants),
                adder.clamp_min.eq(cmd.add_clamp_min),
                adder.clamp_max.eq(cmd.add_clamp_max),
            ]
            adders.append(adder)
        sums = Cat(*(adder.value[:8] for adder in adders))
        done_slices = [Signal(8 * L, name=f"sum_slice{g}", reset_less=True)
                       for g in range(groups - 1)]
        for g, reg in enumerate(done_slices):
            with m.If(adders[0].o_valid & (adders[0].o_tag == g)):
                m.d.sync += reg.eq(sums)
        done = adders[0].o_valid & (adders[0].o_tag == groups - 1)
        return Cat(*done_slices, sums), done
