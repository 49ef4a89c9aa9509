"""The post-processing unit: max-pooling and QLinearAdd on int8/uint8 NHWC tensors in main memory.

Why in the engine: on the control core a max-pooled element costs about 17 cycles and a
QLinearAdd element about 2,250 (its float32 fused multiply-adds in software); here they cost
the bus accesses they need.
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from rvnpu.hdl.bus import unit_request_signature
from rvnpu.hdl.engine.qadd import ELEMENT, QLinearAddPipeline
from rvnpu.hdl.engine.unit_ops import dram_addr_bits, post_op


__all__ = ["PostUnit"]


class PostUnit(wiring.Component):
    """Runs MAXPOOL and QLINEAR_ADD commands, one at a time, one bus access a cycle.

    Reads are single bytes, issued in the order the arithmetic consumes them and up to
    ``credits`` ahead of their responses: a max-pool reads each output's window (kernel row,
    then column) channel by channel, a QLINEAR_ADD reads ``a[i]`` then ``b[i]``. Results are
    written one byte a bus word (a byte mask), in output order, and take the bus before reads,
    so the unit never waits on itself. A command retires once its last write was accepted, and
    the next command starts only then, so its reads see every earlier write (the bus keeps
    request order).

    Throughput: a max-pool output costs ``kernel_h * kernel_w + 1`` bus cycles, a QLINEAR_ADD
    element 3; the arithmetic keeps up with either.

    Members
    -------
    cmd : In(stream)
        Commands (:func:`.unit_ops.post_op`), checked by the front end: kernels of 1 to the
        input's size, strides of at least 1, a clamp inside the element type, finite
        constants, tensors inside the memory window.
    req : Out(stream), rsp : In(stream)
        This unit's side of the main-memory bus (:mod:`rvnpu.hdl.bus`), reads and writes.
    retire : Out
        One pulse a command, after its last write was accepted.
    busy : Out
    """

    credits = 8
    out_depth = 16

    def __init__(self, config):
        self._config = c = config
        super().__init__({
            "cmd":    In(stream.Signature(post_op(config))),
            "req":    Out(unit_request_signature(c.bus_bytes, c.bus_width)),
            "rsp":    In(stream.Signature(c.bus_width, always_ready=True)),
            "retire": Out(1),
            "busy":   Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        c = self._config
        bb = c.bus_bytes
        shift = bb.bit_length() - 1
        addr_bits = dram_addr_bits(c)

        op = Signal(post_op(c))

        tag_layout = data.StructLayout({"lane": range(bb), "end": 1, "last": 1})
        m.submodules.tags = tags_q = fifo.SyncFIFOBuffered(width=tag_layout.size,
                                                           depth=self.credits)
        m.submodules.words = words_q = fifo.SyncFIFOBuffered(width=c.bus_width,
                                                             depth=self.credits)
        m.submodules.out = out_q = fifo.SyncFIFOBuffered(width=9, depth=self.out_depth)
        m.d.comb += [words_q.w_data.eq(self.rsp.payload), words_q.w_en.eq(self.rsp.valid)]

        pending = Signal(range(self.credits + 1))      # reads issued, word not yet consumed
        issued, consumed = Signal(), Signal()
        m.d.sync += pending.eq(pending + issued - consumed)

        # -- Read addresses ---------------------------------------------------------------------
        # A max-pool walks output row y (the window's top input row), output column x (its
        # left input column), channel ch, then the window's taps (ky, kx); `tap` is the byte
        # read, the other pointers are where each loop started. A QLINEAR_ADD walks its
        # elements with the same y, x, ch counters, reading `tap` (a) then `b_ptr` (b).
        reading = Signal()
        y, x = Signal(12), Signal(12)
        ch = Signal(16)
        ky, kx = Signal(4), Signal(4)
        phase = Signal()                                # QLINEAR_ADD: 0 reads a, 1 reads b
        row_base, pix_base, elem, tap_row, tap, b_ptr = (
            Signal(addr_bits, name=n)
            for n in ("row_base", "pix_base", "elem", "tap_row", "tap", "b_ptr"))
        row_bytes, step_x, step_y = (Signal(addr_bits, name=n)
                                     for n in ("row_bytes", "step_x", "step_y"))

        window_end = Mux(op.add, phase, (kx == op.kernel_w - 1) & (ky == op.kernel_h - 1))
        ch_last = ch == op.channels - 1
        x_last = Mux(op.add, x == op.width - 1, x + op.stride_w + op.kernel_w > op.width)
        y_last = Mux(op.add, y == op.height - 1, y + op.stride_h + op.kernel_h > op.height)
        last = window_end & ch_last & x_last & y_last
        read_addr = Mux(op.add & phase, b_ptr, tap)

        tag_in = data.View(tag_layout, tags_q.w_data)
        m.d.comb += [tag_in.lane.eq(read_addr[:shift]), tag_in.end.eq(window_end),
                     tag_in.last.eq(last)]

        empty = Mux(op.add, (op.height == 0) | (op.width == 0) | (op.channels == 0),
                    (op.channels == 0) | (op.kernel_h == 0) | (op.kernel_w == 0) |
                    (op.kernel_h > op.height) | (op.kernel_w > op.width) |
                    (op.stride_h == 0) | (op.stride_w == 0))

        read_fire, last_written = Signal(), Signal()
        with m.FSM() as fsm:
            with m.State("Idle"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    p = self.cmd.payload
                    m.d.sync += [
                        op.eq(p),
                        y.eq(0), x.eq(0), ch.eq(0), ky.eq(0), kx.eq(0), phase.eq(0),
                        *(ptr.eq(p.in_addr) for ptr in (row_base, pix_base, elem, tap_row,
                                                        tap)),
                        b_ptr.eq(p.b_addr),
                        row_bytes.eq(p.width * p.channels),
                        step_x.eq(p.stride_w * p.channels),
                    ]
                    m.next = "Setup"
            with m.State("Setup"):
                m.d.sync += step_y.eq(op.stride_h * row_bytes)
                with m.If(empty):
                    m.d.comb += self.retire.eq(1)
                    m.next = "Idle"
                with m.Else():
                    m.next = "Read"
            with m.State("Read"):
                m.d.comb += reading.eq(1)
                with m.If(read_fire):
                    with m.If(last):
                        m.next = "Drain"
            with m.State("Drain"):
                with m.If(last_written):
                    m.d.comb += self.retire.eq(1)
                    m.next = "Idle"
        m.d.comb += self.busy.eq(~fsm.ongoing("Idle"))

        with m.If(read_fire):
            m.d.comb += [issued.eq(1), tags_q.w_en.eq(1)]
            with m.If(~window_end):
                with m.If(op.add):
                    m.d.sync += phase.eq(1)
                with m.Elif(kx != op.kernel_w - 1):
                    m.d.sync += [kx.eq(kx + 1), tap.eq(tap + op.channels)]
                with m.Else():
                    m.d.sync += [kx.eq(0), ky.eq(ky + 1), tap_row.eq(tap_row + row_bytes),
                                 tap.eq(tap_row + row_bytes)]
            with m.Else():
                m.d.sync += [phase.eq(0), kx.eq(0), ky.eq(0)]
                with m.If(op.add):
                    m.d.sync += [tap.eq(tap + 1), b_ptr.eq(b_ptr + 1)]
                with m.If(~ch_last):
                    m.d.sync += ch.eq(ch + 1)
                    with m.If(~op.add):
                        m.d.sync += [ptr.eq(elem + 1) for ptr in (elem, tap_row, tap)]
                with m.Elif(~x_last):
                    m.d.sync += [ch.eq(0), x.eq(x + Mux(op.add, 1, op.stride_w))]
                    with m.If(~op.add):
                        m.d.sync += [ptr.eq(pix_base + step_x)
                                     for ptr in (pix_base, elem, tap_row, tap)]
                with m.Elif(~y_last):
                    m.d.sync += [ch.eq(0), x.eq(0), y.eq(y + Mux(op.add, 1, op.stride_h))]
                    with m.If(~op.add):
                        m.d.sync += [ptr.eq(row_base + step_y)
                                     for ptr in (row_base, pix_base, elem, tap_row, tap)]

        # -- Responses: one element each --------------------------------------------------------
        tag = data.View(tag_layout, tags_q.r_data)
        word = data.View(data.ArrayLayout(8, bb), words_q.r_data)
        byte = Array(word)[tag.lane]
        element = Signal(ELEMENT)
        m.d.comb += element.eq(Mux(op.elem_signed, byte.as_signed(), byte))

        reserved = Signal(range(self.out_depth + 1))   # results in the pipeline or out_q
        produced, written = Signal(), Signal()
        m.d.sync += reserved.eq(reserved + produced - written)
        room = reserved < self.out_depth

        m.submodules.qadd = qadd = QLinearAddPipeline()
        a_value = Signal(ELEMENT)
        m.d.comb += [qadd.constants.eq(op.constants), qadd.clamp_min.eq(op.clamp_min),
                     qadd.clamp_max.eq(op.clamp_max), qadd.a.eq(a_value), qadd.b.eq(element),
                     qadd.tag.eq(tag.last)]

        first = Signal(init=1)                          # max-pool: the window's first tap
        best = Signal(ELEMENT)
        candidate = Mux(first | (element > best), element, best)
        pooled = Mux(candidate < op.clamp_min, op.clamp_min,
                     Mux(candidate > op.clamp_max, op.clamp_max, candidate))

        with m.If(words_q.r_rdy & (~tag.end | room)):
            m.d.comb += [words_q.r_en.eq(1), tags_q.r_en.eq(1), consumed.eq(1),
                         produced.eq(tag.end)]
            with m.If(op.add):
                with m.If(tag.end):
                    m.d.comb += qadd.i_valid.eq(1)
                with m.Else():
                    m.d.sync += a_value.eq(element)
            with m.Else():
                m.d.sync += [best.eq(candidate), first.eq(tag.end)]
                with m.If(tag.end):
                    m.d.comb += [out_q.w_en.eq(1), out_q.w_data.eq(Cat(pooled[:8], tag.last))]
        with m.If(op.add):
            m.d.comb += [out_q.w_en.eq(qadd.o_valid),
                         out_q.w_data.eq(Cat(qadd.value[:8], qadd.o_tag))]

        # -- Bus: writes first ------------------------------------------------------------------
        out_ptr = Signal(addr_bits)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += out_ptr.eq(self.cmd.payload.out_addr)
        req = self.req.payload
        writing = out_q.r_rdy
        m.d.comb += [
            self.req.valid.eq(writing | (reading & (pending < self.credits))),
            read_fire.eq(~writing & reading & (pending < self.credits) & self.req.ready),
        ]
        with m.If(writing):
            m.d.comb += [req.addr.eq(out_ptr[shift:]), req.write.eq(1),
                         req.data.eq(out_q.r_data[:8].replicate(bb)),
                         req.mask.eq(1 << out_ptr[:shift])]
            with m.If(self.req.ready):
                m.d.comb += [out_q.r_en.eq(1), written.eq(1)]
                m.d.sync += out_ptr.eq(out_ptr + 1)
                m.d.comb += last_written.eq(out_q.r_data[8])
        with m.Else():
            m.d.comb += req.addr.eq(read_addr[shift:])
        return m

