"""The execute unit: feeds the systolic array from the scratchpads and collects its results."""

from types import SimpleNamespace

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rvnpu.hdl.engine.array import SystolicArray
from rvnpu.hdl.engine.delay import delayed
from rvnpu.spec.commands import ROW_BITS, Dataflow, Funct, field_of
from rvnpu.hdl.engine.unit_ops import exec_op


__all__ = ["ExecuteUnit"]


class ExecuteUnit(wiring.Component):
    """Runs COMPUTE commands back to back, without draining the array between them.

    A command passes two stages. *Preload* (weight-stationary only) shifts the command's
    ``rows`` weight rows into the array's shadow registers while the previous command streams;
    it starts once that command's weight swap has passed every row. *Stream* reads one scratchpad
    row a cycle. In OS mode each ``rows``-th read refills one row's shift register, so A is held
    in natural row order and still reaches row ``r`` of the array ``r`` cycles late, as the
    systolic schedule needs. A fixed-latency metadata line follows the data to the bottom of the
    array, where results are written (or added) to the accumulators in order.

    With ``zero_point_sums`` the cells multiply the elements as they are and a WS command
    streams one step more, first: every kept lane's ``a`` is the zero point, so that the
    array's results for it are ``za * sum(w)`` a column, which a register a column keeps for
    the command's steps. Beside the array a line carries ``zw * sum(a - za)`` for each step,
    and both come off the step's results below the array (:class:`.EngineConfig`).

    Members
    -------
    cmd : In(stream)
        Commands (:func:`.unit_ops.exec_op`) from the front end.
    retire : Out
        One pulse a command, in order, once all its accumulator writes are done.
    active : Out
        A step entering the array this cycle (for utilisation counters).
    spa_addr, spa_data, spb_addr, spb_data : scratchpad read ports (one cycle latency)
    acc_raddr, acc_rdata : accumulator read port (one cycle latency, transparent to writes)
    acc_waddr, acc_wdata, acc_we : accumulator write port (this unit has priority)
    acc_we_next : Out
        ``acc_we`` a cycle early, for a writer that registers its writes (``load_stage``).
    """

    def __init__(self, config):
        self._config = c = config
        elem = unsigned(c.in_width)
        acc = data.ArrayLayout(signed(c.acc_width), c.cols)
        super().__init__({
            "cmd":       In(stream.Signature(exec_op(config))),
            "retire":    Out(1),
            "active":    Out(1),
            "spa_addr":  Out(ROW_BITS),
            "spa_data":  In(data.ArrayLayout(elem, c.rows)),
            "spb_addr":  Out(ROW_BITS),
            "spb_data":  In(data.ArrayLayout(elem, c.cols)),
            "acc_raddr": Out(ROW_BITS),
            "acc_rdata": In(acc),
            "acc_waddr": Out(ROW_BITS),
            "acc_wdata": Out(acc),
            "acc_we":    Out(1),
            "acc_we_next": Out(1),
        })

    @property
    def latency(self):
        """Cycles from a WS step's scratchpad read to its result at the accumulator write."""
        c = self._config
        return c.rows + c.cols + 1 + c.mac_latency

    def elaborate(self, platform):
        m = Module()
        c = self._config

        m.submodules.array = array = SystolicArray(
            rows=c.rows, cols=c.cols, in_width=c.in_width, acc_width=c.acc_width,
            with_os=c.with_os, with_ws=c.with_ws, logic_macs=c.logic_macs,
            mac_latency=c.mac_latency, raw=c.zero_point_sums,
            sb_mac16_pairs=c.sb_mac16_pairs)

        # 1 while the array runs output-stationary. Only changed with the pipeline empty.
        os_mode = Signal(init=int(c.with_os))
        m.d.comb += array.os.eq(os_mode)

        inflight = Signal(range(c.queue_depth + 2))
        started = Signal()
        m.d.sync += inflight.eq(inflight + started - self.retire)

        s_valid = Signal()      # the stream stage holds a command
        p = self._preload_stage(m, os_mode, drained=~s_valid & (inflight == 0))
        s = self._stream_stage(m, p, s_valid, os_mode, started)
        m.d.comb += [
            self.spa_addr.eq(s.cmd.a_row + s.step),
            self.spb_addr.eq(Mux(p.preload, p.cmd.b_row + p.row, s.cmd.b_row + s.k)),
            self.active.eq(s.issue & ~s.zero_step),
        ]
        zero_line = self._feed_array(m, array, p, s, os_mode)
        self._write_results(m, array, s, zero_line)
        return m

    def _preload_stage(self, m, os_mode, drained):
        """Take a command; in WS mode shift its weight rows into the array's shadow registers.

        Returns the stage's state: ``valid``, ``cmd``, ``os``, ``noop``, ``go`` (it may pass to
        the stream stage), ``preload`` (a weight row is read this cycle, row ``row``) and
        ``since_start`` (cycles since the last WS command started streaming, up to ``rows``).
        """
        c = self._config
        R = c.rows
        p_valid = Signal()
        p_cmd = Signal(exec_op(c))
        p_ready = Signal()
        p_i = Signal(range(R + 1))
        since_start = Signal(range(R + 1), init=R)
        with m.If(since_start != R):
            m.d.sync += since_start.eq(since_start + 1)

        p_os = p_cmd.dataflow == Dataflow.OS
        p_noop = p_cmd.steps == 0

        # The dataflow changes only once the array has drained.
        mode_ok = Signal()
        m.d.comb += mode_ok.eq(p_noop | (os_mode == p_os))
        if c.with_os and c.with_ws:
            with m.If(p_valid & ~mode_ok & drained):
                m.d.sync += os_mode.eq(p_os)

        m.d.comb += self.cmd.ready.eq(~p_valid)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [p_valid.eq(1), p_cmd.eq(self.cmd.payload), p_ready.eq(0), p_i.eq(0)]

        preload = Signal()        # a weight row is read this cycle
        preload_row = Signal(range(R))
        p_go = Signal()
        m.d.comb += p_go.eq(p_valid & mode_ok & (p_noop | p_os | p_ready))
        with m.If(p_valid & mode_ok & ~p_noop & ~p_os & ~p_ready &
                  ((p_i != 0) | (since_start == R))):
            m.d.comb += [preload.eq(1), preload_row.eq(R - 1 - p_i)]
            m.d.sync += p_i.eq(p_i + 1)
            with m.If(p_i == R - 1):
                m.d.sync += p_ready.eq(1)
        return SimpleNamespace(valid=p_valid, cmd=p_cmd, os=p_os, noop=p_noop, go=p_go,
                               preload=preload, row=preload_row, since_start=since_start)

    def _stream_stage(self, m, p, s_valid, os_mode, started):
        """Read one scratchpad row a cycle for the streaming command.

        Returns its state: ``cmd``, ``k`` (the step), ``lane`` (OS: the array row whose shift
        register the read refills), ``os``, ``noop``, ``last`` (its last step), ``issue`` (a
        step enters the array), ``step_valid`` and ``step_mark`` (the array's valid and mark
        flags of the step), ``zero_step`` (with ``zero_point_sums``: the step that works out
        ``za * sum(w)``, a WS command's first) and ``step`` (the row of A and of the
        accumulators the step is for: ``k``, less that first step).
        """
        R = self._config.rows
        extra = int(self._config.zero_point_sums)
        s_cmd = Signal(exec_op(self._config))
        s_k = Signal(field_of(Funct.COMPUTE, "steps").width + 1)
        s_lane = Signal(range(R))
        s_os = Signal()
        s_noop = s_cmd.steps == 0
        s_last = Signal()
        with m.If(s_noop):
            # A no-op still takes its turn so that it retires in order; in OS mode it waits
            # out the previous tile's result train.
            m.d.comb += s_last.eq(Mux(s_os, s_lane == R - 1, 1))
        with m.Elif(s_os):
            m.d.comb += s_last.eq((s_k + 1 >= s_cmd.steps) & (s_lane == R - 1))
        with m.Else():
            m.d.comb += s_last.eq(s_k + 1 == s_cmd.steps + extra)

        s_free = ~s_valid | s_last
        # Advance first: a command starting in the same cycle overrides these.
        with m.If(s_valid):
            m.d.sync += [s_k.eq(s_k + 1), s_lane.eq(Mux(s_lane == R - 1, 0, s_lane + 1))]
        with m.If(p.go & s_free):
            m.d.comb += started.eq(1)
            m.d.sync += [s_valid.eq(1), s_cmd.eq(p.cmd), s_k.eq(0), s_lane.eq(0),
                         s_os.eq(Mux(p.noop, os_mode, p.os)), p.valid.eq(0)]
            with m.If(~p.noop & ~p.os):
                m.d.sync += p.since_start.eq(0)
        with m.Elif(s_valid & s_last):
            m.d.sync += s_valid.eq(0)

        issue = Signal()
        m.d.comb += issue.eq(s_valid & ~s_noop)
        zero_step = Signal()
        if extra:
            m.d.comb += zero_step.eq(~s_os & (s_k == 0))
        return SimpleNamespace(
            valid=s_valid, cmd=s_cmd, k=s_k, lane=s_lane, os=s_os, noop=s_noop, last=s_last,
            issue=issue, step_valid=Mux(s_os, s_k < s_cmd.steps, 1),
            step_mark=Mux(s_os, s_last, s_k == 0), zero_step=zero_step,
            step=(s_k - extra) if extra else s_k)

    def _feed_array(self, m, array, p, s, os_mode):
        """Operands: zero points off, then onto the edges of the array, skewed.

        With ``zero_point_sums`` the operands enter as they are and the zero points come off
        below the array: returns ``zw * sum(a - za)`` of the step whose results leave the
        array the next cycle (``None`` without).
        """
        c = self._config
        R, C = c.rows, c.cols
        op_shape = signed(c.in_width + 1)
        raw_shape = signed(c.in_width)
        top_bit = 1 << (c.in_width - 1)

        def raw(x, is_signed):
            # An unsigned element with its top bit flipped is the element less 2**(w-1), as
            # a signed value; its zero point is moved down the same (`raw_zero`).
            return Mux(is_signed, x.as_signed(), (x ^ top_bit).as_signed())

        def raw_zero(zero, is_signed):
            value = Signal(raw_shape)
            m.d.comb += value.eq(Mux(is_signed, zero, zero - top_bit))
            return value

        def corrected(raw, is_signed, zero, keep):
            values = []
            for i, x in enumerate(raw):
                value = Signal(op_shape)
                # lab 1 hole begin: the element's value, zero point off
                extended = Mux(is_signed, x.as_signed(), x.as_unsigned())
                m.d.comb += value.eq(Mux(keep(i), extended - zero, 0))
                # lab 1 starter:
                # m.d.comb += value.eq(Mux(keep(i), x.as_unsigned(), 0))
                # lab 1 hole end
                values.append(value)
            return values

        d1_issue = delayed(m, s.issue, 1, name="d1_issue")
        d1_lane = delayed(m, s.lane, 1, name="d1_lane")
        d1_scmd = delayed(m, s.cmd.as_value(), 1, name="d1_scmd")
        d1_s = data.View(exec_op(c), d1_scmd)
        d1_preload = delayed(m, p.preload, 1, name="d1_preload")
        d1_prow = delayed(m, p.row, 1, name="d1_prow")
        d1_pcmd = data.View(exec_op(c), delayed(m, p.cmd.as_value(), 1, name="d1_pcmd"))

        ws_lane_ok = lambda i: Mux(s.os, 1, i < d1_s.k_valid)   # noqa: E731
        a_now = corrected(self.spa_data, d1_s.a_signed, d1_s.a_zero, ws_lane_ok)
        b_signed = Mux(d1_preload, d1_pcmd.b_signed, d1_s.b_signed)
        b_zero = Mux(d1_preload, d1_pcmd.b_zero, d1_s.b_zero)
        b_keep = ~d1_preload | (d1_prow < d1_pcmd.k_valid)
        zero_line = None
        if c.zero_point_sums:
            zero_line = self._zero_point_line(m, a_now, raw_zero(d1_s.b_zero, d1_s.b_signed))
            d1_zero_step = delayed(m, s.issue & s.zero_step, 1, name="d1_zero_step")
            za = raw_zero(d1_s.a_zero, d1_s.a_signed)
            a_now = [Mux(ws_lane_ok(i), Mux(d1_zero_step, za, raw(x, d1_s.a_signed)), 0)
                     for i, x in enumerate(self.spa_data)]
            # A weight row past `k_valid` meets a zero `a` in every step, the zero step too.
            b_now = [raw(x, b_signed) for x in self.spb_data]
            op_shape = raw_shape
        else:
            b_now = corrected(self.spb_data, b_signed, b_zero, lambda i: b_keep)

        a_vec = [delayed(m, a, 1, name=f"a_vec{i}") for i, a in enumerate(a_now)]
        b_vec = [delayed(m, b, 1, name=f"b_vec{i}") for i, b in enumerate(b_now)]

        # OS: one shift register a row, refilled every R steps, emptied one element a cycle.
        shift_regs = []
        if c.with_os:
            for r in range(R):
                sr = [Signal(op_shape, name=f"sr{r}_{i}") for i in range(R)]
                with m.If(d1_issue & os_mode & (d1_lane == r)):
                    m.d.sync += [reg.eq(a) for reg, a in zip(sr, a_now)]
                with m.Else():
                    m.d.sync += [sr[i].eq(sr[i + 1]) for i in range(R - 1)]
                shift_regs.append(sr)

        flag_valid = delayed(m, s.issue & s.step_valid, 2, name="flag_valid")
        flag_mark = delayed(m, s.issue & s.step_mark, 2, name="flag_mark")
        shift_ws = delayed(m, p.preload, 2, name="shift_ws")
        # lab 2 hole begin: skew the edges (row r and column c start r and c cycles late)
        for r in range(R):
            ws_a = delayed(m, a_vec[r], r, name=f"skew_a{r}") if c.with_ws else 0
            os_a = shift_regs[r][0] if c.with_os else 0
            m.d.comb += [
                array.a[r].eq(Mux(os_mode, os_a, ws_a)),
                array.valid[r].eq(delayed(m, flag_valid, r, name=f"skew_v{r}")),
                array.mark[r].eq(delayed(m, flag_mark, r, name=f"skew_m{r}")),
            ]
        for col in range(C):
            m.d.comb += [
                array.b[col].eq(delayed(m, b_vec[col], col, name=f"skew_b{col}")),
                array.shift[col].eq(os_mode | delayed(m, shift_ws, col, name=f"skew_s{col}")),
            ]
        # lab 2 starter:
        # for r in range(R):
        #     ws_a = a_vec[r] if c.with_ws else 0
        #     os_a = shift_regs[r][0] if c.with_os else 0
        #     m.d.comb += [
        #         array.a[r].eq(Mux(os_mode, os_a, ws_a)),
        #         array.valid[r].eq(flag_valid),
        #         array.mark[r].eq(flag_mark),
        #     ]
        # for col in range(C):
        #     m.d.comb += [array.b[col].eq(b_vec[col]), array.shift[col].eq(os_mode | shift_ws)]
        # lab 2 hole end
        return zero_line

    def _zero_point_line(self, m, corrected_a, b_zero):
        """``zw * sum(a - za)`` of each WS step (the kept lanes' corrected elements, which
        ``corrected_a`` are, and B's zero point as the array sees it), on a fixed line that
        ends the cycle before the step's results leave the array, as the correction below it
        wants them."""
        c = self._config
        # `rows` corrected elements, each of magnitude below 2**in_width, and a sign.
        total = Signal(signed(c.in_width + 1 + (c.rows - 1).bit_length()))
        zero = Signal(signed(c.in_width))
        # The step read its row at T; its results leave the array at T + latency. Where the
        # line allows it, the elements are registered before they are summed, so that the
        # scratchpad's read (a block RAM's clock-to-out) and the sum of a row are not one
        # cycle's path; the line then starts a cycle later.
        staged = self.latency > 3
        if staged:
            corrected_a = [delayed(m, a, 1, name=f"zero_line_a{i}")
                           for i, a in enumerate(corrected_a)]
            b_zero = delayed(m, b_zero, 1, name="zero_line_zw")
        m.d.sync += [total.eq(sum(corrected_a)), zero.eq(b_zero)]
        product = Signal(signed(len(total) + len(zero)))
        m.d.comb += product.eq(total * zero)
        # The sum is registered at T + 2, or T + 3 when staged.
        return delayed(m, product, self.latency - 3 - staged, name="zero_line")

    def _write_results(self, m, array, s, zero_line):
        """Results: de-skew, then write or add them to the accumulators, in order, retiring
        each command after its last write. With ``zero_point_sums`` the zero points' terms
        come off first (``zero_line``, :meth:`_feed_array`)."""
        c = self._config
        R, C = c.rows, c.cols
        # Sign-extended to the accumulators' width (the array's sums may be narrower).
        bottom = Signal(data.ArrayLayout(signed(c.acc_width), C))
        # lab 2 hole begin: de-skew the results (column c leaves the array c cycles late)
        for col in range(C):
            m.d.comb += bottom[col].eq(delayed(m, array.out[col], C - 1 - col,
                                               name=f"deskew{col}"))
        # lab 2 starter:
        # for col in range(C):
        #     m.d.comb += bottom[col].eq(array.out[col])
        # lab 2 hole end

        # What each step's result must do, on a fixed-latency line beside the array.
        meta_layout = data.StructLayout({
            "write": 1, "train": 1, "retire": 1, "os": 1, "accumulate": 1, "addr": ROW_BITS,
            "zero_step": 1,
        })
        meta = Signal(meta_layout)
        m.d.comb += [
            meta.write.eq(s.issue & ~s.os & ~s.zero_step),
            meta.train.eq(s.issue & s.os & s.last),
            meta.retire.eq(s.valid & s.last),
            meta.os.eq(s.os),
            meta.accumulate.eq(s.cmd.accumulate),
            meta.addr.eq(Mux(s.os, s.cmd.c_row, s.cmd.c_row + s.step)),
            meta.zero_step.eq(s.issue & s.zero_step),
        ]
        # The cells' arithmetic runs mac_latency cycles behind their operands. The line ends
        # a cycle before a step's results reach the bottom (`x`), so that the accumulator is
        # read while they come out and they are written as they arrive (`y`): the results
        # are never held a cycle, only their address. With ``acc_stage`` it ends two cycles
        # before, and the row read is held a cycle before the sum.
        read_ahead = 2 if c.acc_stage else 1
        meta_ws = data.View(meta_layout, delayed(m, meta.as_value(),
                                                 R + C + c.mac_latency + 1 - read_ahead,
                                                 name="meta"))
        meta_os = data.View(meta_layout, delayed(m, meta_ws.as_value(), 1, name="meta_os"))

        # OS results leave the array bottom row first, one row a cycle.
        train = Signal(range(R + 1))
        train_base = Signal(ROW_BITS)
        train_acc = Signal()
        train_retire = Signal()
        with m.If(meta_os.os & meta_os.train):
            m.d.sync += [train.eq(R - 1), train_base.eq(meta_os.addr),
                         train_acc.eq(meta_os.accumulate), train_retire.eq(meta_os.retire)]
        with m.Elif(train != 0):
            m.d.sync += train.eq(train - 1)
        train_now = Signal()
        train_row = Signal(range(R))
        with m.If(meta_os.os & meta_os.train):
            m.d.comb += [train_now.eq(1), train_row.eq(R - 1)]
        with m.Elif(train != 0):
            m.d.comb += [train_now.eq(1), train_row.eq(train - 1)]

        x_we = Signal()
        x_addr = Signal(ROW_BITS)
        x_acc = Signal()
        x_retire = Signal()
        with m.If(train_now):
            m.d.comb += [x_we.eq(1), x_addr.eq(Mux(meta_os.train & meta_os.os, meta_os.addr,
                                                    train_base) + train_row),
                         x_acc.eq(Mux(meta_os.train & meta_os.os, meta_os.accumulate,
                                      train_acc)),
                         x_retire.eq(Mux(meta_os.train & meta_os.os,
                                         meta_os.retire & (R == 1),
                                         train_retire & (train == 1)))]
        with m.Elif(~meta_ws.os & meta_ws.write):
            m.d.comb += [x_we.eq(1), x_addr.eq(meta_ws.addr), x_acc.eq(meta_ws.accumulate),
                         x_retire.eq(meta_ws.retire)]
        with m.Elif(~meta_ws.os & meta_ws.retire):
            m.d.comb += x_retire.eq(1)
        with m.Elif(meta_os.os & meta_os.retire & ~meta_os.train):
            m.d.comb += x_retire.eq(1)

        # The accumulator is read for `x` and written a cycle later (`y`), with the results
        # leaving the array in that cycle.
        m.d.comb += self.acc_raddr.eq(x_addr)
        y_we = delayed(m, x_we, 1, name="y_we")
        y_addr = delayed(m, x_addr, 1, name="y_addr")
        y_acc = delayed(m, x_acc, 1, name="y_acc")
        y_retire = delayed(m, x_retire, 1, name="y_retire")
        if not c.acc_stage:
            addend = [Mux(y_acc, self.acc_rdata[col], 0) for col in range(C)]
            we, we_next, addr, retire = y_we, x_we, y_addr, y_retire
        else:
            # The row read for `x` is held in `y` and summed with the results in `z`, so
            # that the block RAM's output and the sum are paths of their own. The write
            # landing in `y` (the step before's `z`) is not in what `y` reads: when it is to
            # the same row, its data is taken instead (a write in `x` is, the read port being
            # transparent to it). The stream stage leaves a cycle between two steps to one
            # row today (no program of the tests reaches the forward); the forward keeps the
            # sum right without leaning on that.
            z_we = delayed(m, y_we, 1, name="z_we")
            z_addr = delayed(m, y_addr, 1, name="z_addr")
            z_retire = delayed(m, y_retire, 1, name="z_retire")
            addend = Signal(data.ArrayLayout(signed(c.acc_width), C), reset_less=True)
            forward = z_we & (z_addr == y_addr)
            for col in range(C):
                m.d.sync += addend[col].eq(Mux(y_acc, Mux(forward, self.acc_wdata[col],
                                                          self.acc_rdata[col]), 0))
            we, we_next, addr, retire = z_we, y_we, z_addr, z_retire
        if zero_line is not None:
            # A zero step's results (`za * sum(w)` a column) are kept for the command's
            # steps; a step's correction is that plus `zw * sum(a - za)`, both taken off,
            # summed a cycle ahead so that the write's sum takes one register more, not a
            # chain. `kept` is as wide as the array's sums, one of which it is; `correction`
            # as the line, whose product has a bit more than its values need (B's zero
            # point, as the array sees it, is at most 2**(w-1) in magnitude): room for both.
            zero_now = delayed(m, meta_ws.zero_step, read_ahead, name="zero_now")
            width = array.sum_width
            kept = Signal(data.ArrayLayout(signed(width), C), reset_less=True)
            correction = Signal(data.ArrayLayout(signed(max(width, len(zero_line))), C),
                                reset_less=True)
            for col in range(C):
                column = Mux(zero_now, bottom[col], kept[col])
                m.d.sync += [kept[col].eq(column), correction[col].eq(column + zero_line)]
                bottom_col = bottom[col] - correction[col]
                m.d.comb += self.acc_wdata[col].eq(bottom_col + addend[col])
        else:
            for col in range(C):
                m.d.comb += self.acc_wdata[col].eq(bottom[col] + addend[col])
        m.d.comb += [self.acc_we.eq(we), self.acc_we_next.eq(we_next),
                     self.acc_waddr.eq(addr), self.retire.eq(retire)]
