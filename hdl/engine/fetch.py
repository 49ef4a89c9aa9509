"""The command fetcher: reads a command list from main memory for RUN, ahead of the front end."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from rvnpu.hdl.bus import unit_request_signature
from rvnpu.hdl.command_port import CommandLayout
from rvnpu.hdl.engine.unit_ops import dram_addr_bits
from rvnpu.spec.commands import LIST_ENTRY, LIST_ENTRY_BYTES


__all__ = ["CommandFetcher", "ListStart", "ListEntry"]


def ListStart(config):
    """What RUN hands the fetcher, already checked: the list lies inside the window."""
    mb = dram_addr_bits(config)
    return data.StructLayout({"addr": mb, "count": mb + 1})


#: One command of a list, with a flag on the list's last one.
ListEntry = data.StructLayout({"cmd": CommandLayout, "last": 1})


def _word_bits(name):
    """Bit range ``(lo, hi)`` of list-entry word ``name`` in an entry read as one integer."""
    i = LIST_ENTRY.index(name)
    return 32 * i, 32 * i + 32


class CommandFetcher(wiring.Component):
    """Reads the entries of a command list, in order, and hands them on as commands.

    Reads run ahead of the front end by up to ``depth`` entries (a small FIFO), so that it
    finds the next command waiting, and are issued as FIFO room frees, one bus word a cycle.
    An entry takes ``LIST_ENTRY_BYTES / bus_bytes`` words (one on a 128-bit bus).

    Members
    -------
    start : In(stream)
        A checked list (:func:`ListStart`) with at least one entry; taken when idle.
    req : Out(stream), rsp : In(stream)
        This unit's side of the main-memory bus (reads only).
    entries : Out(stream)
        The list's commands (:data:`ListEntry`).
    busy : Out
        A list is being read or handed on.
    """

    depth = 4

    def __init__(self, config):
        self._config = c = config
        super().__init__({
            "start":   In(stream.Signature(ListStart(c))),
            "req":     Out(unit_request_signature(c.bus_bytes, c.bus_width)),
            "rsp":     In(stream.Signature(c.bus_width, always_ready=True)),
            "entries": Out(stream.Signature(ListEntry)),
            "busy":    Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        c = self._config
        bw, bb = c.bus_width, c.bus_bytes
        shift = bb.bit_length() - 1
        per_entry = LIST_ENTRY_BYTES // bb          # bus words an entry takes
        capacity = self.depth * per_entry            # words in flight or held, at most
        mb = dram_addr_bits(c)

        m.submodules.queue = queue = fifo.SyncFIFOBuffered(width=CommandLayout.size,
                                                           depth=self.depth)

        active = Signal()
        word = Signal(max(1, mb - shift))            # next word to request
        to_request = Signal(mb + 2)                  # words not yet requested
        to_hand = Signal(mb + 1)                     # entries not yet handed on
        held = Signal(range(capacity + 1))           # words requested, entry not handed on
        issued, handed = Signal(), Signal()
        m.d.sync += held.eq(held + issued - Mux(handed, per_entry, 0))

        m.d.comb += self.start.ready.eq(~active)
        with m.If(self.start.valid & self.start.ready):
            m.d.sync += [
                active.eq(1),
                word.eq(self.start.payload.addr[shift:]),
                to_request.eq(self.start.payload.count * per_entry),
                to_hand.eq(self.start.payload.count),
            ]

        # -- Requests: while words remain and their entries have room ----------------------------
        m.d.comb += [
            self.req.valid.eq(active & (to_request != 0) & (held < capacity)),
            self.req.payload.addr.eq(word),
            self.req.payload.write.eq(0),
            issued.eq(self.req.valid & self.req.ready),
        ]
        with m.If(issued):
            m.d.sync += [word.eq(word + 1), to_request.eq(to_request - 1)]

        # -- Responses: gather an entry's words, keep its command ---------------------------------
        entry = Signal(LIST_ENTRY_BYTES * 8)
        if per_entry == 1:
            m.d.comb += entry.eq(self.rsp.payload)
            complete = self.rsp.valid
        else:
            part = Signal(range(per_entry))
            gathered = Signal((per_entry - 1) * bw)
            m.d.comb += entry.eq(Cat(gathered, self.rsp.payload))
            with m.If(self.rsp.valid):
                m.d.sync += part.eq(part + 1)
                for i in range(per_entry - 1):
                    with m.If(part == i):
                        m.d.sync += gathered[i * bw:(i + 1) * bw].eq(self.rsp.payload)
                with m.If(part == per_entry - 1):
                    m.d.sync += part.eq(0)
            complete = self.rsp.valid & (part == per_entry - 1)
        cmd = data.View(CommandLayout, queue.w_data)
        (f_lo, _), (o1_lo, o1_hi), (o2_lo, o2_hi) = (
            _word_bits(n) for n in ("funct", "op1", "op2"))
        m.d.comb += [
            cmd.funct.eq(entry[f_lo:f_lo + 7]),
            cmd.op1.eq(entry[o1_lo:o1_hi]),
            cmd.op2.eq(entry[o2_lo:o2_hi]),
            queue.w_en.eq(complete),    # never full: ``held`` counts its room
        ]

        # -- Hand on ------------------------------------------------------------------------------
        m.d.comb += [
            self.entries.valid.eq(queue.r_rdy),
            self.entries.payload.cmd.eq(queue.r_data),
            self.entries.payload.last.eq(to_hand == 1),
            queue.r_en.eq(self.entries.ready),
            handed.eq(self.entries.valid & self.entries.ready),
        ]
        with m.If(handed):
            m.d.sync += to_hand.eq(to_hand - 1)
            with m.If(to_hand == 1):
                m.d.sync += active.eq(0)

        m.d.comb += self.busy.eq(active)
        return m
