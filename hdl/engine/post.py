"""The post-processing unit: max-pooling and QLinearAdd on int8/uint8 NHWC tensors in main memory.

Why in the engine: on the control core a max-pooled element costs about 17 cycles and a
QLinearAdd element about 2,250 (its float32 fused multiply-adds in software); here a
QLinearAdd element costs about a cycle and a max-pool output a fraction of one, because the
unit moves whole bus words.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from rvnpu.hdl.bus import unit_request_signature
from rvnpu.hdl.engine.qadd import ELEMENT, QLinearAddPipeline
from rvnpu.hdl.engine.unit_ops import dram_addr_bits, post_op


__all__ = ["PostUnit"]


class PostUnit(wiring.Component):
    """Runs MAXPOOL and QLINEAR_ADD commands, one at a time, a bus word an access.

    The work is cut into *chunks*: up to a bus word of consecutive output bytes that lie in one
    output word and whose inputs are contiguous (a max-pool output pixel's channels, a
    QLINEAR_ADD row's elements). Each of a chunk's *taps* (a max-pool window position; a
    QLINEAR_ADD's ``a`` then ``b``) reads the one or two words holding its bytes, and the
    bytes are shifted straight into the lanes of the output word. A max-pool takes the lane-wise
    maximum of the taps and writes the chunk at once; a QLINEAR_ADD feeds the chunk's pairs to
    its arithmetic one a cycle and gathers the results back into a word.

    Reads are issued in the order they are consumed and up to ``credits`` ahead of their
    responses. Writes (one masked word a chunk, in output order) take the bus before reads,
    so the unit never waits on itself. A command retires once its last write was accepted,
    and the next command starts only then, so its reads see every earlier write (the bus keeps
    request order). A QLINEAR_ADD writing over an input in place is safe: a chunk's output
    word is written only after its inputs were read, and later chunks read other lanes.

    Throughput: a QLINEAR_ADD element takes a cycle (the arithmetic's rate) while the bus
    does at most five accesses a chunk; a max-pool chunk takes a bus cycle a tap word and one
    for its write, ``kernel_h * kernel_w + 1`` cycles for up to a word of channels when the
    channel runs are aligned.

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
    out_depth = 8

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

        # One tag a word read: `pair` holds the word for the next (a tap spanning two words,
        # of which `second` is the other); `align` places the tap's bytes in the output lanes
        # (lane j takes byte j + align of zeros, first word, second word); `end` marks a
        # chunk's last tap, whose tag also carries the chunk's output lanes `lo`..`hi`.
        tag_layout = data.StructLayout({"pair": 1, "second": 1, "align": range(2 * bb),
                                        "end": 1, "lo": range(bb), "hi": range(bb), "last": 1})
        out_layout = data.StructLayout({"data": 8 * bb, "mask": bb, "last": 1})
        m.submodules.tags = tags_q = fifo.SyncFIFOBuffered(width=tag_layout.size,
                                                           depth=self.credits)
        m.submodules.words = words_q = fifo.SyncFIFOBuffered(width=c.bus_width,
                                                             depth=self.credits)
        m.submodules.out = out_q = fifo.SyncFIFOBuffered(width=out_layout.size,
                                                         depth=self.out_depth)
        m.d.comb += [words_q.w_data.eq(self.rsp.payload), words_q.w_en.eq(self.rsp.valid)]

        pending = Signal(range(self.credits + 1))      # reads issued, word not yet consumed
        issued, consumed = Signal(), Signal()
        m.d.sync += pending.eq(pending + issued - consumed)

        # -- Read addresses ---------------------------------------------------------------------
        # A max-pool walks output row y (the window's top input row), output column x (its
        # left input column), the chunks of the pixel's channels, then the window's taps
        # (ky, kx); `tap` is the tap's first byte, the other pointers where each loop started.
        # A QLINEAR_ADD walks rows y, their chunks, and taps a (`tap`) then b (`b_ptr`).
        # `rem` counts the bytes left in the run (channels or row) the chunk is cut from.
        reading = Signal()
        y, x = Signal(12), Signal(12)
        ky, kx = Signal(4), Signal(4)
        phase = Signal()                                # QLINEAR_ADD: 0 reads a, 1 reads b
        half = Signal()                                 # the second word of a tap
        lane = Signal(shift)                            # output lane of the chunk's first byte
        rem = Signal(addr_bits + 1)
        row_base, pix_base, elem, tap_row, tap, b_ptr = (
            Signal(addr_bits, name=n)
            for n in ("row_base", "pix_base", "elem", "tap_row", "tap", "b_ptr"))
        row_bytes = Signal(addr_bits + 1)
        step_x, step_y = (Signal(addr_bits, name=n) for n in ("step_x", "step_y"))

        word_room = Signal(shift + 1)
        m.d.comb += word_room.eq(bb - lane)
        run_end = rem <= word_room
        length = Signal(shift + 1)
        m.d.comb += length.eq(Mux(run_end, rem, word_room))
        source = Mux(op.add & phase, b_ptr, tap)
        offset = source[:shift]
        spans_two = offset + length > bb
        tap_done = half | ~spans_two

        window_end = Mux(op.add, phase, (kx == op.kernel_w - 1) & (ky == op.kernel_h - 1))
        x_last = op.add | (x + op.stride_w + op.kernel_w > op.width)
        y_last = Mux(op.add, y == op.height - 1, y + op.stride_h + op.kernel_h > op.height)
        last = window_end & run_end & x_last & y_last
        read_addr = Signal(addr_bits - shift + 1)
        m.d.comb += read_addr.eq(source[shift:] + half)

        tag_in = data.View(tag_layout, tags_q.w_data)
        m.d.comb += [tag_in.pair.eq(~tap_done), tag_in.second.eq(half),
                     tag_in.align.eq(offset + bb - lane), tag_in.end.eq(window_end),
                     tag_in.lo.eq(lane), tag_in.hi.eq(lane + length - 1),
                     tag_in.last.eq(last & tap_done)]

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
                        y.eq(0), x.eq(0), ky.eq(0), kx.eq(0), phase.eq(0), half.eq(0),
                        lane.eq(p.out_addr[:shift]),
                        *(ptr.eq(p.in_addr) for ptr in (row_base, pix_base, elem, tap_row,
                                                        tap)),
                        b_ptr.eq(p.b_addr),
                        row_bytes.eq(p.width * p.channels),
                        step_x.eq(p.stride_w * p.channels),
                    ]
                    m.next = "Setup"
            with m.State("Setup"):
                m.d.sync += [step_y.eq(op.stride_h * row_bytes),
                             rem.eq(Mux(op.add, row_bytes, op.channels))]
                with m.If(empty):
                    m.d.comb += self.retire.eq(1)
                    m.next = "Idle"
                with m.Else():
                    m.next = "Read"
            with m.State("Read"):
                m.d.comb += reading.eq(1)
                with m.If(read_fire & tap_done & last):
                    m.next = "Drain"
            with m.State("Drain"):
                with m.If(last_written):
                    m.d.comb += self.retire.eq(1)
                    m.next = "Idle"
        m.d.comb += self.busy.eq(~fsm.ongoing("Idle"))

        with m.If(read_fire):
            m.d.comb += [issued.eq(1), tags_q.w_en.eq(1)]
            with m.If(~tap_done):
                m.d.sync += half.eq(1)
            with m.Elif(~window_end):
                m.d.sync += half.eq(0)
                with m.If(op.add):
                    m.d.sync += phase.eq(1)
                with m.Elif(kx != op.kernel_w - 1):
                    m.d.sync += [kx.eq(kx + 1), tap.eq(tap + op.channels)]
                with m.Else():
                    m.d.sync += [kx.eq(0), ky.eq(ky + 1), tap_row.eq(tap_row + row_bytes),
                                 tap.eq(tap_row + row_bytes)]
            with m.Else():
                # The chunk's last tap: on to the next chunk of the run, or the next run.
                m.d.sync += [half.eq(0), phase.eq(0), kx.eq(0), ky.eq(0),
                             lane.eq(lane + length)]
                with m.If(op.add):
                    m.d.sync += [tap.eq(tap + length), b_ptr.eq(b_ptr + length)]
                with m.If(~run_end):
                    m.d.sync += rem.eq(rem - length)
                    with m.If(~op.add):
                        m.d.sync += [ptr.eq(elem + length) for ptr in (elem, tap_row, tap)]
                with m.Else():
                    m.d.sync += rem.eq(Mux(op.add, row_bytes, op.channels))
                    with m.If(op.add):
                        m.d.sync += y.eq(y + 1)
                    with m.Elif(~x_last):
                        m.d.sync += [x.eq(x + op.stride_w)]
                        m.d.sync += [ptr.eq(pix_base + step_x)
                                     for ptr in (pix_base, elem, tap_row, tap)]
                    with m.Elif(~y_last):
                        m.d.sync += [x.eq(0), y.eq(y + op.stride_h)]
                        m.d.sync += [ptr.eq(row_base + step_y)
                                     for ptr in (row_base, pix_base, elem, tap_row, tap)]

        # -- Responses: a tap's bytes, shifted into the output lanes ----------------------------
        tag = data.View(tag_layout, tags_q.r_data)
        word = words_q.r_data
        held = Signal(c.bus_width)
        window = Cat(Const(0, c.bus_width), Mux(tag.second, held, word), word)
        lanes = Signal(c.bus_width)
        m.d.comb += lanes.eq(window >> (tag.align * 8))
        in_lanes = [lanes[8 * j:8 * j + 8] for j in range(bb)]
        mask = Cat(((j >= tag.lo) & (j <= tag.hi)) for j in range(bb))

        reserved = Signal(range(self.out_depth + 1))   # output words promised, not yet written
        reserve, written = Signal(), Signal()
        m.d.sync += reserved.eq(reserved + reserve - written)
        room = reserved < self.out_depth

        # Max-pool: bytes compared as keys, the byte with its sign bit flipped if signed. A
        # chunk's maximum is clamped and written to the output FIFO the cycle after its last
        # tap, from `best`, which holds it through that cycle (a new chunk's first tap
        # overwrites it only at the cycle's end): the shift and the compares, and the clamp,
        # are then in cycles of their own. `reserved` already counts the word in between.
        flip = Cat(Const(0, 7), op.elem_signed)
        key_min, key_max = op.clamp_min[:8] ^ flip, op.clamp_max[:8] ^ flip
        first = Signal(init=1)                          # the chunk's first tap
        best = [Signal(8, name=f"best{j}") for j in range(bb)]
        candidates = [Mux(first | ((b ^ flip) > best[j]), b ^ flip, best[j])
                      for j, b in enumerate(in_lanes)]
        pooled = Cat((Mux(k < key_min, key_min, Mux(k > key_max, key_max, k)) ^ flip)
                     for k in best)
        pool_push = Signal()
        pooled_valid, pooled_mask, pooled_last = Signal(), Signal(bb), Signal()
        m.d.sync += [pooled_valid.eq(pool_push), pooled_mask.eq(mask),
                     pooled_last.eq(tag.last)]

        # QLINEAR_ADD: `a_lanes` holds a chunk's a until its b arrives, then both go to the
        # serialiser, which feeds the arithmetic a lane a cycle.
        a_lanes = Signal(c.bus_width)
        ser_a, ser_b = Signal(c.bus_width), Signal(c.bus_width)
        ser_busy, ser_last = Signal(), Signal()
        ser_lane, ser_hi = Signal(shift), Signal(shift)
        ser_end = ser_lane == ser_hi
        with m.If(ser_busy):
            m.d.sync += ser_lane.eq(ser_lane + 1)
            with m.If(ser_end):
                m.d.sync += ser_busy.eq(0)

        def element(lanes_value):
            byte, value = Signal(8), Signal(ELEMENT)
            m.d.comb += [byte.eq(Array(lanes_value[8 * j:8 * j + 8] for j in range(bb))[ser_lane]),
                         value.eq(Mux(op.elem_signed, byte.as_signed(), byte))]
            return value

        result_tag = data.StructLayout({"lane": shift, "end": 1, "last": 1})
        m.submodules.qadd = qadd = QLinearAddPipeline(tag_width=result_tag.size)
        m.d.comb += [qadd.constants.eq(op.constants), qadd.clamp_min.eq(op.clamp_min),
                     qadd.clamp_max.eq(op.clamp_max), qadd.i_valid.eq(ser_busy),
                     qadd.a.eq(element(ser_a)), qadd.b.eq(element(ser_b)),
                     qadd.tag.eq(Cat(ser_lane, ser_end, ser_end & ser_last))]

        with m.If(words_q.r_rdy):
            with m.If(tag.pair):
                m.d.comb += consumed.eq(1)
                m.d.sync += held.eq(word)
            with m.Elif(~op.add):
                with m.If(~tag.end | room):
                    m.d.comb += [consumed.eq(1), pool_push.eq(tag.end), reserve.eq(tag.end)]
                    m.d.sync += [first.eq(tag.end),
                                 *(b.eq(k) for b, k in zip(best, candidates))]
            with m.Elif(~tag.end):
                m.d.comb += consumed.eq(1)
                m.d.sync += a_lanes.eq(lanes)
            with m.Elif(room & (~ser_busy | ser_end)):
                m.d.comb += [consumed.eq(1), reserve.eq(1)]
                m.d.sync += [ser_a.eq(a_lanes), ser_b.eq(lanes), ser_busy.eq(1),
                             ser_lane.eq(tag.lo), ser_hi.eq(tag.hi), ser_last.eq(tag.last)]
        m.d.comb += [words_q.r_en.eq(consumed), tags_q.r_en.eq(consumed)]

        # QLINEAR_ADD results gathered into their output word.
        result = data.View(result_tag, qadd.o_tag)
        gathered, gathered_mask = Signal(c.bus_width), Signal(bb)
        merged = Cat(Mux(result.lane == j, qadd.value[:8], gathered[8 * j:8 * j + 8])
                     for j in range(bb))
        merged_mask = gathered_mask | (1 << result.lane)[:bb]
        with m.If(qadd.o_valid):
            m.d.sync += [gathered.eq(merged), gathered_mask.eq(Mux(result.end, 0, merged_mask))]

        entry_in = data.View(out_layout, out_q.w_data)
        with m.If(op.add):
            m.d.comb += [out_q.w_en.eq(qadd.o_valid & result.end), entry_in.data.eq(merged),
                         entry_in.mask.eq(merged_mask), entry_in.last.eq(result.last)]
        with m.Else():
            m.d.comb += [out_q.w_en.eq(pooled_valid), entry_in.data.eq(pooled),
                         entry_in.mask.eq(pooled_mask), entry_in.last.eq(pooled_last)]

        # -- Bus: writes first ------------------------------------------------------------------
        out_word = Signal(addr_bits - shift)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += out_word.eq(self.cmd.payload.out_addr[shift:])
        req = self.req.payload
        entry = data.View(out_layout, out_q.r_data)
        writing = out_q.r_rdy
        m.d.comb += [
            self.req.valid.eq(writing | (reading & (pending < self.credits))),
            read_fire.eq(~writing & reading & (pending < self.credits) & self.req.ready),
        ]
        with m.If(writing):
            m.d.comb += [req.addr.eq(out_word), req.write.eq(1), req.data.eq(entry.data),
                         req.mask.eq(entry.mask)]
            with m.If(self.req.ready):
                m.d.comb += [out_q.r_en.eq(1), written.eq(1), last_written.eq(entry.last)]
                m.d.sync += out_word.eq(out_word + entry.mask[bb - 1])
        with m.Else():
            m.d.comb += req.addr.eq(read_addr)
        return m
