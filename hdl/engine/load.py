"""The load unit: a DMA from main memory into the local memories."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from rvnpu.hdl.bus import unit_request_signature
from rvnpu.spec.commands import ROW_BITS, Space
from rvnpu.hdl.engine.unit_ops import dram_addr_bits, load_op, row_bytes


__all__ = ["LoadUnit", "LocalWrite", "load_row_bytes"]


def load_row_bytes(config):
    """Widest local row in bytes, as it sits in main memory."""
    return max(config.rows * config.elem_bytes, config.cols * config.elem_bytes,
               config.cols * 4)


def LocalWrite(config):
    return data.StructLayout({
        "space": 2,
        "row":   ROW_BITS,
        "data":  data.ArrayLayout(8, load_row_bytes(config)),
    })


class LoadUnit(wiring.Component):
    """Copies strided rows from main memory into a local memory, one bus word a cycle.

    Requests run ahead of responses by up to ``credits`` words, across row and command
    boundaries, so a stream of loads keeps the bus busy. Rows may start at any byte: each
    response word is placed into the row buffer by the row's alignment, which only needs a
    per-byte multiplexer chosen by constants and that alignment.

    Members
    -------
    cmd : In(stream)
        LOAD commands (:func:`.unit_ops.load_op`).
    req : Out(stream), rsp : In(stream)
        This unit's side of the main-memory bus (reads only).
    w : Out(stream)
        Finished local rows (:func:`LocalWrite`), zero beyond the loaded columns.
    retire : Out
        One pulse a command, in order, after its last row is written.
    busy : Out
    """

    credits = 8

    def __init__(self, config):
        self._config = c = config
        super().__init__({
            "cmd":    In(stream.Signature(load_op(config))),
            "req":    Out(unit_request_signature(c.bus_bytes, c.bus_width)),
            "rsp":    In(stream.Signature(c.bus_width, always_ready=True)),
            "w":      Out(stream.Signature(LocalWrite(c))),
            "retire": Out(1),
            "busy":   Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        c = self._config
        bb = c.bus_bytes
        shift = bb.bit_length() - 1
        maxb = load_row_bytes(c)

        row_desc = data.StructLayout({
            "space": 2, "row": ROW_BITS, "align": range(bb), "words": 8,
            "nbytes": range(maxb + 1), "last": 1,
        })
        m.submodules.rows = rows_q = fifo.SyncFIFOBuffered(
            width=row_desc.size, depth=self.credits)
        m.submodules.words = words_q = fifo.SyncFIFOBuffered(
            width=c.bus_width, depth=self.credits)
        m.d.comb += [words_q.w_data.eq(self.rsp.payload), words_q.w_en.eq(self.rsp.valid)]

        pending = Signal(range(self.credits + 1))
        issued = Signal()
        popped = Signal()
        m.d.sync += pending.eq(pending + issued - popped)

        # -- Requests -----------------------------------------------------------------------------
        g_active = Signal()
        g = Signal(load_op(c))
        rows_left = Signal(9)
        base = Signal(dram_addr_bits(c))
        # The row's last byte, base + nbytes - 1, kept beside base (both step by the stride),
        # so that no sum lies between base and the test for a row's last word: on the UP5K
        # the two sums and the comparison in series were the iCEBreaker's longest path.
        last_byte = Signal(dram_addr_bits(c) + 1)
        word = Signal(dram_addr_bits(c) - shift)
        first = Signal()
        nbytes = Signal(range(maxb + 1))

        desc = data.View(row_desc, rows_q.w_data)
        m.d.comb += [
            desc.space.eq(g.space), desc.row.eq(g.row + g.rows - rows_left),
            desc.align.eq(base[:shift]),
            # The words a row spans follow from its alignment alone.
            desc.words.eq(((base[:shift] + nbytes - 1) >> shift) + 1),
            desc.nbytes.eq(nbytes), desc.last.eq(rows_left == 1),
            self.req.payload.addr.eq(word), self.req.payload.write.eq(0),
        ]

        to_words = ((self.cmd.payload.space != Space.SPAD_A) &
                    (self.cmd.payload.space != Space.SPAD_B))
        cmd_empty = (self.cmd.payload.rows == 0) | (self.cmd.payload.cols == 0)
        with m.If(~g_active):
            with m.If(cmd_empty):
                # Nothing to move, but the command still retires in its turn.
                m.d.comb += [desc.last.eq(1), desc.words.eq(0),
                             rows_q.w_en.eq(self.cmd.valid),
                             self.cmd.ready.eq(rows_q.w_rdy)]
            with m.Else():
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    cmd_bytes = row_bytes(c, self.cmd.payload.cols, to_words)
                    m.d.sync += [
                        g_active.eq(1), g.eq(self.cmd.payload),
                        rows_left.eq(self.cmd.payload.rows),
                        base.eq(self.cmd.payload.dram_addr),
                        last_byte.eq(self.cmd.payload.dram_addr + cmd_bytes - 1),
                        word.eq(self.cmd.payload.dram_addr[shift:]),
                        nbytes.eq(cmd_bytes), first.eq(1),
                    ]
        with m.Else():
            can = (pending < self.credits) & (~first | rows_q.w_rdy)
            m.d.comb += self.req.valid.eq(can)
            with m.If(self.req.valid & self.req.ready):
                m.d.comb += [issued.eq(1), rows_q.w_en.eq(first)]
                m.d.sync += first.eq(0)
                with m.If(word == last_byte[shift:]):
                    next_base = base + g.stride
                    m.d.sync += [rows_left.eq(rows_left - 1), base.eq(next_base),
                                 last_byte.eq(last_byte + g.stride),
                                 word.eq(next_base[shift:]), first.eq(1)]
                    with m.If(rows_left == 1):
                        m.d.sync += g_active.eq(0)
                with m.Else():
                    m.d.sync += word.eq(word + 1)

        # -- Responses: assemble rows -------------------------------------------------------------
        head = data.View(row_desc, rows_q.r_data)
        j = Signal(8)
        buf = Signal(data.ArrayLayout(8, maxb))
        merged = Signal(data.ArrayLayout(8, maxb))
        word_bytes = data.View(data.ArrayLayout(8, bb), words_q.r_data)
        for p in range(maxb):
            sel = (head.align + p)[:shift] if shift else 0
            hit = ((head.align + p) >> shift) == j
            m.d.comb += merged[p].eq(Mux(p >= head.nbytes, 0,
                                         Mux(hit, word_bytes[sel], buf[p])))
        m.d.comb += [
            self.w.payload.space.eq(head.space),
            self.w.payload.row.eq(head.row),
            self.w.payload.data.eq(merged),
        ]
        with m.If(rows_q.r_rdy):
            with m.If(head.words == 0):
                m.d.comb += [rows_q.r_en.eq(1), self.retire.eq(1)]
            with m.Elif(words_q.r_rdy):
                with m.If(j == head.words - 1):
                    m.d.comb += self.w.valid.eq(1)
                    with m.If(self.w.ready):
                        m.d.comb += [words_q.r_en.eq(1), popped.eq(1), rows_q.r_en.eq(1),
                                     self.retire.eq(head.last)]
                        m.d.sync += [j.eq(0), buf.eq(0)]
                with m.Else():
                    m.d.comb += [words_q.r_en.eq(1), popped.eq(1)]
                    m.d.sync += [j.eq(j + 1), buf.eq(merged)]

        m.d.comb += self.busy.eq(g_active | rows_q.r_rdy | (pending != 0))
        return m
