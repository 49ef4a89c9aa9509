"""The engine front end's post unit: MAXPOOL and QLINEAR_ADD work on main memory anywhere, so
the front end runs them as a barrier both ways.

:func:`post_harness` builds :class:`~rvnpu.hdl.engine.frontend.Frontend` with ``post_unit``
and feeds it any command stream (held until taken) with any unit back-pressure and retires
(:func:`~rvnpu.formal.frontend.drive_units`, the post unit among the units). Which post
commands are legal (their shape and window checks) is left to the golden model's tests: the
rules here are about when and where they run.

- A post command is dispatched only while the load, execute and store units have nothing
  unfinished, and nothing is dispatched to them while a post command is unfinished.
- Only MAXPOOL and QLINEAR_ADD go to the post unit, each once; nothing else goes there and
  they go nowhere else.
"""

from dataclasses import replace

from amaranth.hdl import Cat, Module, Signal

from rvnpu.formal.frontend import FRONTEND_ENGINE, UNITS, drive_units, free_frontend
from rvnpu.formal.properties import Properties
from rvnpu.hdl.command_port import CommandLayout
from rvnpu.hdl.engine.post_config import POST_OPS
from rvnpu.spec.commands import Funct


__all__ = ["FRONTEND_POST_ENGINE", "post_harness"]

#: :data:`~rvnpu.formal.frontend.FRONTEND_ENGINE` with the post unit.
FRONTEND_POST_ENGINE = replace(FRONTEND_ENGINE, post_unit=True)

#: What each unit runs, for the covers that show one held back.
_UNIT_FUNCTS = {"load": (Funct.LOAD,), "exec": (Funct.COMPUTE,),
                "store": (Funct.STORE, Funct.STORE_ACC, Funct.STORE_POOL, Funct.STORE_ADD)}


def post_harness(frontend_class=None, *, config=FRONTEND_POST_ENGINE):
    """A :class:`~rvnpu.hdl.engine.frontend.Frontend` for ``config`` (with ``post_unit``)
    with the barrier properties; ``frontend_class`` replaces it (a mutated copy)."""
    if not config.post_unit:
        raise ValueError("post_harness checks engines with post_unit")
    m = Module()
    dut = free_frontend(m, config, frontend_class)
    if config.command_fetch:
        m.d.comb += [dut.start.ready.eq(0), dut.list.valid.eq(0), dut.fetch_busy.eq(0)]
    units = (*UNITS, "post")
    fire, dispatched, retired = drive_units(m, dut, units)
    unfinished = {u: dispatched[u] != retired[u] for u in units}
    others_unfinished = Cat(unfinished[u] for u in UNITS).any()

    # The command taken last, whether it was run yet, and for how many cycles it was held.
    cur, open_, age = Signal(CommandLayout), Signal(), Signal(3)
    with m.If(dut.cmd.valid & dut.cmd.ready):
        m.d.sync += [cur.eq(dut.cmd.payload), open_.eq(1), age.eq(0)]
    with m.Else():
        with m.If(Cat(*fire.values()).any()):
            m.d.sync += open_.eq(0)
        with m.If(age != 7):
            m.d.sync += age.eq(age + 1)
    post_op = Cat(cur.funct == f for f in POST_OPS).any()
    decoded = open_ & (age != 0)            # decoded and waiting (taken two cycles ago)

    p = Properties(m)
    p.check("post_waits_for_the_other_units", fire["post"], ~others_unfinished)
    for u in UNITS:
        p.check(f"{u}_waits_for_the_post_unit", fire[u], ~unfinished["post"])
        p.reach(f"{u}_held_back_by_the_post_unit",
                decoded & unfinished["post"] & (dispatched[u] == retired[u]) & ~post_op &
                Cat(cur.funct == f for f in _UNIT_FUNCTS[u]).any())
    p.check("post_runs_only_post_commands", fire["post"], open_ & post_op)
    p.check("post_commands_only_to_the_post_unit", Cat(fire[u] for u in UNITS).any(),
            open_ & ~post_op)
    p.reach("post_held_back_by_the_other_units", decoded & post_op & others_unfinished &
            ~unfinished["post"])
    return m
