"""The store unit's reader of a STORE_ADD's skip tensor: its rows, read ahead from main memory.

Why ahead: the store requantises a row a cycle; if it asked for the skip row only when the
requantised row came out, every row would wait a bus round trip. Rows are read in the order
they are added, so a FIFO of whole rows is all the store needs to see.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from rvnpu.hdl.bus import unit_request_signature
from rvnpu.hdl.engine.unit_ops import dram_addr_bits


__all__ = ["SkipReader", "skip_job", "row_words"]


def row_words(config):
    """Bus words a row of the skip tensor touches at most: ``cols`` bytes from any byte of a
    word (so the reader's reads in flight, with :attr:`SkipReader.depth` rows)."""
    bb = config.bus_bytes
    return (config.cols + 2 * bb - 2) // bb


def skip_job(config):
    """What the reader needs of a STORE_ADD: ``rows`` rows of ``nbytes`` bytes, the first at
    byte ``addr``, each ``stride`` bytes after the one before."""
    addr = dram_addr_bits(config)
    return data.StructLayout({
        "addr":   addr,
        "stride": addr,
        "rows":   8,
        "nbytes": range(config.cols + 1),
    })


class SkipReader(wiring.Component):
    """Reads the rows of a job and hands them on whole, a row's first byte in its lowest lane.

    A row's reads are issued only once the row FIFO has room for it (``depth`` rows, counting
    rows still being read), so every answer is taken at once, as the bus requires. One job
    runs at a time: the store starts the next only after taking every row of this one.

    Members
    -------
    start : In(stream)
        A job (:func:`skip_job`), taken at once; the reader must be idle.
    rows : Out(stream)
        Rows of ``8 * cols`` bits; bytes past ``nbytes`` are undefined.
    level : Out
        Rows waiting in ``rows``.
    req : Out(stream), rsp : In(stream)
        This reader's side of the main-memory bus: reads only.
    """

    depth = 8

    def __init__(self, config):
        self._config = c = config
        bb = c.bus_bytes
        super().__init__({
            "start": In(stream.Signature(skip_job(config), always_ready=True)),
            "rows":  Out(stream.Signature(8 * c.cols)),
            "level": Out(range(self.depth + 1)),
            "req":   Out(unit_request_signature(bb, c.bus_width)),
            "rsp":   In(stream.Signature(c.bus_width, always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        c = self._config
        bb = c.bus_bytes
        shift = bb.bit_length() - 1
        words = row_words(c)

        job = Signal(skip_job(c))
        with m.If(self.start.valid):
            m.d.sync += job.eq(self.start.payload)

        def walker(prefix):
            """A row's base address and a word index, stepped over a job's rows word by word;
            returns ``(base, k, last)``, ``last`` meaning word ``k`` is its row's last."""
            base = Signal(len(job.addr), name=f"{prefix}_base")
            k = Signal(range(words), name=f"{prefix}_k")
            last = base[shift:] + k == (base + job.nbytes - 1)[shift:]
            return base, k, last

        def step(base, k, last):
            with m.If(last):
                m.d.sync += [k.eq(0), base.eq(base + job.stride)]
            with m.Else():
                m.d.sync += k.eq(k + 1)

        m.submodules.fifo = rows_q = fifo.SyncFIFOBuffered(width=8 * c.cols, depth=self.depth)
        m.d.comb += [self.rows.valid.eq(rows_q.r_rdy), self.rows.payload.eq(rows_q.r_data),
                     rows_q.r_en.eq(self.rows.ready), self.level.eq(rows_q.r_level)]
        taken = self.rows.valid & self.rows.ready

        # -- Issue: a row's first read reserves its place in the FIFO -------------------------
        i_base, i_k, i_last = walker("issue")
        to_issue = Signal(8)
        reserved = Signal(range(self.depth + 1))
        first = i_k == 0
        m.d.comb += [
            self.req.valid.eq((to_issue != 0) & (~first | (reserved < self.depth))),
            self.req.payload.addr.eq(i_base[shift:] + i_k),
            self.req.payload.write.eq(0),
        ]
        issued = self.req.valid & self.req.ready
        m.d.sync += reserved.eq(reserved + (issued & first) - taken)
        with m.If(self.start.valid):
            m.d.sync += [i_base.eq(self.start.payload.addr), i_k.eq(0),
                         to_issue.eq(Mux(self.start.payload.nbytes == 0, 0,
                                         self.start.payload.rows))]
        with m.Elif(issued):
            step(i_base, i_k, i_last)
            with m.If(i_last):
                m.d.sync += to_issue.eq(to_issue - 1)

        # -- Answers: gathered word by word, the row pushed on its last word --------------------
        r_base, r_k, r_last = walker("answer")
        line = Signal(words * 8 * bb)
        with m.If(self.start.valid):
            m.d.sync += [r_base.eq(self.start.payload.addr), r_k.eq(0)]
        with m.Elif(self.rsp.valid):
            step(r_base, r_k, r_last)
            for w in range(words):
                with m.If(r_k == w):
                    m.d.sync += line.word_select(w, 8 * bb).eq(self.rsp.payload)
        whole = Cat(*(Mux(r_k == w, self.rsp.payload, line.word_select(w, 8 * bb))
                      for w in range(words)))
        m.d.comb += [rows_q.w_en.eq(self.rsp.valid & r_last),
                     rows_q.w_data.eq(whole >> (r_base[:shift] * 8))]
        return m
