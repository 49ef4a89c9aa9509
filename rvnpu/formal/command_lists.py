"""The engine front end's command lists: RUN, the commands the fetcher hands on, and the
STATUS taken aside while a list runs.

:func:`list_harness` builds :class:`~rvnpu.hdl.engine.frontend.Frontend` with
``command_fetch`` and stands in for the fetcher: once RUN hands it a list (``start``), the
solver gives the front end any commands, held until taken, as many as the list's count (the
fetcher's own reads are another block's business). The core sends any command, held until
taken, but none while it waits for an answer, as the core does (it waits in the custom-0
instruction for a FENCE's or STATUS's answer). The units take and retire as in
:func:`~rvnpu.formal.frontend.frontend_harness`. No reference recomputes each command's
checks: these rules are about which commands run, when, and what the status word (always on
the answer port) says of them.

Groups (each proved on its own):

``lists``
    While a list runs, the core's commands other than STATUS wait (not taken, so not lost)
    and are taken once it is over; ``list_busy`` rises with the fetcher's start and falls only
    once the fetcher is idle, the front end holds no command and every unit has finished;
    ``list_done`` rises only when a list ends or an empty RUN runs (once every earlier
    command has finished), is set by each, and falls
    only by a STATUS with ``clear_done``, which clears it.
``list_refusal``
    RUN, FENCE and STATUS inside a list are refused (BAD_IN_LIST): never answered, never
    start a list, counted in the sticky error, and the list goes on. A list is started only
    for a RUN from the core with entries, aligned and inside the window, with its address and
    count, once every earlier command has finished; a RUN outside the window is refused
    (BAD_MEMORY), so nothing of its list runs. Every answer is one the core waits for.
"""

from dataclasses import replace

from amaranth.asserts import AnySeq
from amaranth.hdl import Assume, Cat, Module, Mux, ResetSignal, Signal

from rvnpu.formal.frontend import FRONTEND_ENGINE, UNITS, drive_units, status_field
from rvnpu.formal.properties import Properties
from rvnpu.formal.streams import _drive_stream
from rvnpu.hdl.command_port import CommandLayout
from rvnpu.hdl.engine import frontend
from rvnpu.hdl.engine.fetch import ListEntry
from rvnpu.hdl.engine.unit_ops import dram_addr_bits
from rvnpu.spec.commands import LIST_ENTRY_BYTES, ErrorCode, Funct, field_of


__all__ = ["FRONTEND_LIST_ENGINE", "LIST_GROUPS", "list_harness"]

#: :data:`~rvnpu.formal.frontend.FRONTEND_ENGINE` with the command fetcher.
FRONTEND_LIST_ENGINE = replace(FRONTEND_ENGINE, command_fetch=True)

LIST_GROUPS = ("lists", "list_refusal")


def _field(cmd, funct, name):
    f = field_of(funct, name)
    return (cmd.op1 if f.operand == 1 else cmd.op2)[f.lsb:f.lsb + f.width]


def _is(cmd, *functs):
    return Cat(*(cmd.funct == f for f in functs)).any()


def list_harness(groups=LIST_GROUPS, *, frontend_class=None, config=FRONTEND_LIST_ENGINE):
    """A :class:`~rvnpu.hdl.engine.frontend.Frontend` for ``config`` (with ``command_fetch``)
    with the properties of ``groups``; ``frontend_class`` replaces it (a mutated copy)."""
    if not config.command_fetch or config.post_unit:
        raise ValueError("list_harness checks engines with command_fetch and without post_unit")
    c = config
    mb = dram_addr_bits(c)
    m = Module()
    m.d.comb += Assume(~ResetSignal())
    dut = (frontend_class or frontend.Frontend)(c)
    m.submodules.dut = dut
    fire, dispatched, retired = drive_units(m, dut, UNITS)
    units_idle = Cat(dispatched[u] == retired[u] for u in UNITS).all()
    word = dut.rsp.payload                      # the status word, always on the answer port
    list_busy = status_field(word, "list_busy")
    err_code, err_funct = status_field(word, "error_code"), status_field(word, "error_funct")
    err_count = status_field(word, "error_count")

    # The core: any command, held until taken, none while it waits for an answer.
    _drive_stream(m, dut.cmd, CommandLayout.size)
    m.d.comb += dut.rsp.ready.eq(AnySeq(1))
    core = dut.cmd.payload
    core_taken = dut.cmd.valid & dut.cmd.ready
    answered = dut.rsp.valid & dut.rsp.ready
    owed, owed_cmd = Signal(), Signal(CommandLayout)    # a FENCE or STATUS not yet answered
    m.d.comb += Assume(~dut.cmd.valid | ~owed)
    with m.If(answered):
        m.d.sync += owed.eq(0)
    with m.If(core_taken & _is(core, Funct.FENCE, Funct.STATUS)):
        m.d.sync += [owed.eq(1), owed_cmd.eq(core)]

    # The fetcher: takes a list when idle, hands on its count of entries, any commands.
    active, remaining = Signal(), Signal(mb + 1)
    m.d.comb += [dut.start.ready.eq(~active & AnySeq(1)), dut.fetch_busy.eq(active)]
    started = dut.start.valid & dut.start.ready
    with m.If(started):
        m.d.sync += [active.eq(1), remaining.eq(dut.start.payload.count)]
    _drive_stream(m, dut.list, ListEntry.size)
    entry = dut.list.payload
    m.d.comb += Assume(~dut.list.valid | (active & (remaining != 0) &
                                          (entry.last == (remaining == 1))))
    entry_taken = dut.list.valid & dut.list.ready
    with m.If(entry_taken):
        m.d.sync += remaining.eq(remaining - 1)
        with m.If(remaining == 1):
            m.d.sync += active.eq(0)

    # The command the front end holds (a STATUS taken aside during a list is not held): the
    # sticky error when it was taken, and whether an answer came since.
    held_take = (core_taken & ~list_busy) | entry_taken
    cur, from_list, has_cur = Signal(CommandLayout), Signal(), Signal()
    seen_count, seen_code = Signal(16), Signal(4)
    answered_since, started_cur = Signal(), Signal()
    with m.If(held_take):
        m.d.sync += [cur.eq(Mux(entry_taken, entry.cmd, core)), from_list.eq(entry_taken),
                     has_cur.eq(1), seen_count.eq(err_count), seen_code.eq(err_code),
                     answered_since.eq(answered), started_cur.eq(0)]
    with m.Else():
        with m.If(answered):
            m.d.sync += answered_since.eq(1)
        with m.If(started):
            m.d.sync += started_cur.eq(1)

    addr, count = _field(cur, Funct.RUN, "list_addr"), _field(cur, Funct.RUN, "count")
    list_end = Signal(38)
    m.d.comb += list_end.eq(addr + (count << (LIST_ENTRY_BYTES.bit_length() - 1)))
    misaligned = addr[:LIST_ENTRY_BYTES.bit_length() - 1] != 0
    core_run = has_cur & ~from_list & (cur.funct == Funct.RUN)
    run_outside = core_run & (count != 0) & (misaligned | (list_end > c.mem_bytes))
    bad_in_list = has_cur & from_list & _is(cur, Funct.RUN, Funct.FENCE, Funct.STATUS)
    empty_run = core_run & (count == 0)

    # The previous cycle.
    was_busy, was_started, was_done, was_idle = Signal(), Signal(), Signal(), Signal()
    was_fetching, was_ready, was_clearing_done = Signal(), Signal(), Signal()
    m.d.sync += [was_busy.eq(list_busy), was_started.eq(started), was_done.eq(dut.list_done),
                 was_idle.eq(units_idle), was_fetching.eq(active), was_ready.eq(dut.list.ready),
                 was_clearing_done.eq(answered & (owed_cmd.funct == Funct.STATUS) &
                                      _field(owed_cmd, Funct.STATUS, "clear_done"))]
    list_ended = was_busy & ~list_busy
    done_rose = dut.list_done & ~was_done
    done_rose_since = Signal()
    with m.If(held_take):
        m.d.sync += done_rose_since.eq(0)
    with m.Elif(done_rose):
        m.d.sync += done_rose_since.eq(1)

    p = Properties(m)
    groups = set(groups)
    if "lists" in groups:
        p.check("core_waits_while_a_list_runs", core_taken & list_busy,
                core.funct == Funct.STATUS)
        waited = Signal()
        with m.If(core_taken):
            m.d.sync += waited.eq(0)
        with m.Elif(dut.cmd.valid & list_busy & (core.funct != Funct.STATUS)):
            m.d.sync += waited.eq(1)
        p.reach("core_command_taken_after_the_list", core_taken & waited)
        p.check("list_busy_from_the_start", was_started | (list_busy & ~was_busy),
                list_busy & was_started)
        p.check("list_ends_once_all_it_ran_finished", list_ended,
                ~was_fetching & was_ready & was_idle)
        p.check("list_done_rises_only_at_the_end_of_a_run", done_rose,
                list_ended | (empty_run & ~done_rose_since & was_idle))
        p.check("list_end_sets_list_done", list_ended, dut.list_done)
        p.check("empty_run_sets_list_done", held_take & empty_run, dut.list_done)
        p.check("list_done_falls_only_by_clear_done", was_done & ~dut.list_done,
                was_clearing_done)
        # Unless a list ended in the cycle the STATUS was answered: it read list_done before.
        p.check("clear_done_clears_list_done", was_clearing_done & was_done,
                ~dut.list_done | list_ended)
    if "list_refusal" in groups:
        p.check("answers_only_what_the_core_waits_for", answered, owed)
        p.reach("status_answered_aside", answered & list_busy)
        p.check("list_started_for_a_legal_run", started, Cat(
            core_run, ~run_outside, count != 0, ~started_cur, units_idle,
            dut.start.payload.addr == addr[:mb],
            dut.start.payload.count == count[:mb + 1]).all())
        p.reach("list_up_to_the_end_of_the_window", started & (list_end == c.mem_bytes))
        counted = Cat(err_count == Mux(seen_count == 0xffff, seen_count, seen_count + 1),
                      err_code != 0)
        first = Cat(err_code == Mux(bad_in_list, ErrorCode.BAD_IN_LIST,
                                    ErrorCode.BAD_MEMORY), err_funct == cur.funct).all()
        for name, bad in (("in_list", bad_in_list), ("run_outside_the_window", run_outside)):
            p.check(f"{name}_refused_and_counted", held_take & bad & ~answered_since,
                    counted.all() & ((seen_code != 0) | first))
        p.reach("list_goes_on_after_a_refused_entry", entry_taken & bad_in_list)
    return m
