"""Every formal property set: what it builds, the mutant it must fail on, and its depths.

``depth`` is what ``rvnpu formal`` proves by default; ``test_depth`` is the shallower bound
tests/test_formal.py uses to stay within the test suite's time.
"""

from dataclasses import dataclass
from typing import Callable

from rvnpu.formal import command_lists, core, frontend, post_barrier, streams
from rvnpu.formal.mutants import mutant


__all__ = ["Check", "CHECKS", "check_named"]


@dataclass(frozen=True)
class Check:
    name: str
    summary: str
    build: Callable        # build(broken=False) -> the harness to prove
    depth: int
    test_depth: int


_CPU = "rvnpu.hdl.core.cpu"

#: Per core property group: the line of hdl/core/cpu.py its mutant changes.
_CORE_MUTATIONS = {
    "alu": ("m.d.comb += logic.eq(a_op ^ b_x)", "m.d.comb += logic.eq(a_op | b_x)"),
    "branch": ("taken = ((funct3[2] & branch_less) | (~funct3[2] & equal)) ^ funct3[0]",
               "taken = ((funct3[2] & branch_less) | (~funct3[2] & equal))"),
    "mem": ("m.d.comb += load_data.eq(load_byte.as_signed())",
            "m.d.comb += load_data.eq(load_byte)"),
    "csr": ("m.d.comb += w_mask.eq(mask)", "m.d.comb += w_mask.eq(0)"),
    "trap": ("trap(Cause.ECALL_M)", "trap(Cause.BREAKPOINT)"),
    "x0": ("w_en.eq(rd != 0), w_addr.eq(rd)", "w_en.eq(1), w_addr.eq(rd)"),
}

_CORE_SUMMARIES = {
    "alu": "register and immediate ALU results, LUI, AUIPC",
    "branch": "branch decisions, jump targets and links, the next pc",
    "mem": "load/store address = rs1 + imm, byte lanes, load extension, store data",
    "csr": "CSR reads and writes of mscratch, mtvec, mepc, mcause",
    "trap": "which instructions trap, mcause, mepc, pc = mtvec",
    "x0": "x0 is never written and reads as zero",
}

_CORE_DEPTHS = {"alu": (8, 5), "branch": (9, 6), "mem": (8, 5), "csr": (9, 6),
                "trap": (10, 8), "x0": (8, 6)}


def _core_check(group):
    def build(broken=False):
        core_class = mutant(_CPU, "RiscvCore", *_CORE_MUTATIONS[group]) if broken else None
        return core.core_harness([group], core_class=core_class)
    depth, test_depth = _CORE_DEPTHS[group]
    return Check(f"core_{group}", _CORE_SUMMARIES[group], build, depth, test_depth)


def _stream_check(name, summary, harness, module_name, attribute, old, new, depth, test_depth,
                  **options):
    def build(broken=False):
        block = mutant(module_name, attribute, old, new) if broken else None
        return harness(block, **options)
    return Check(name, summary, build, depth, test_depth)


_FRONTEND = "rvnpu.hdl.engine.frontend"
_OUTSIDE = "outside = (addr[mb:] != 0) | far_rows | (end > c.mem_bytes)"


def _frontend_check(name, group, summary, old, new, test_depth=6, depth=7,
                    config=frontend.FRONTEND_ENGINE):
    """A property group of the engine's front end; its mutant changes one line of
    hdl/engine/frontend.py. The front end takes a command in three cycles, so depth 6 holds
    two or three commands, what the covers of two commands need; one command needs 4."""
    def build(broken=False):
        frontend_class = mutant(_FRONTEND, "Frontend", old, new) if broken else None
        return frontend.frontend_harness([group], frontend_class=frontend_class, config=config)
    return Check(name, summary, build, depth, test_depth)


#: The front end's groups: a load ignoring a store's unfinished write to memory it reads; a
#: refused CONFIG_EXEC taken as legal; a dispatched command left held (run again); a transfer
#: ending one byte past the window let through; the serial front end ignoring one unfinished
#: command.
_FRONTEND_CHECKS = (
    ("frontend_hazards", "hazards",
     "no dispatched command conflicts with an unfinished command of another unit",
     "(now.to_load, [(_W, _R1), (_W, _R2), (_D, _D)]),",
     "(now.to_load, [(_W, _R1), (_W, _R2)]),"),
    ("frontend_refusal", "refusal",
     "an illegal command runs nothing, changes no configuration, sets the sticky error",
     "with m.Elif(dec.code != 0):",
     "with m.Elif((dec.code != 0) & (funct != Funct.CONFIG_EXEC)):"),
    ("frontend_order", "order",
     "every command run once, on its unit, with its fields; none lost; FENCE waits",
     "m.d.comb += [queue.push.eq(1), accept.eq(1)]", "m.d.comb += queue.push.eq(1)", 5),
    ("frontend_window", "window",
     "no LOAD or STORE reaching outside the main-memory window is dispatched",
     _OUTSIDE, _OUTSIDE.replace("(end > c.mem_bytes)", "(end > c.mem_bytes + 1)"), 4, 6),
)


def _list_check(name, group, summary, old, new, depth, test_depth):
    """A command-list property group of the front end (:mod:`.command_lists`); its mutant
    changes one line of hdl/engine/frontend.py."""
    def build(broken=False):
        frontend_class = mutant(_FRONTEND, "Frontend", old, new) if broken else None
        return command_lists.list_harness([group], frontend_class=frontend_class)
    return Check(name, summary, build, depth, test_depth)


#: The command-list groups: the core's command taken while a list runs (lost: the list's
#: command overwrites it); a STATUS inside a list answered instead of refused.
_LIST_CHECKS = (
    ("frontend_lists", "lists",
     "core commands wait for a list; list_busy and list_done follow each RUN",
     "take_core = ~held & ~lists.busy", "take_core = ~held", 9, 8),
    ("frontend_list_refusal", "list_refusal",
     "RUN/FENCE/STATUS in a list and lists outside the window refused, counted, not run",
     "now.code.eq(Mux(lists.from_list, ErrorCode.BAD_IN_LIST, 0))]",
     "now.code.eq(Mux(lists.from_list & (funct != Funct.STATUS), ErrorCode.BAD_IN_LIST, 0))]",
     8, 7),
)


def _post_check():
    """The post unit's barrier; its mutant lets a post command through while another unit
    has unfinished work."""
    def build(broken=False):
        frontend_class = mutant(
            _FRONTEND, "Frontend",
            'hazard.eq(ranged | (queues["post"].count != 0) | (dec.to_post & others))',
            'hazard.eq(ranged | (queues["post"].count != 0))') if broken else None
        return post_barrier.post_harness(frontend_class)
    return Check("frontend_post", "post commands a barrier both ways; only they go to the "
                 "post unit, each once", build, 7, 6)


CHECKS = (
    *(_core_check(group) for group in core.GROUPS),
    _stream_check(
        "command_slice", "valid held, payload stable; no command lost, duplicated, reordered",
        streams.slice_harness, "rvnpu.hdl.engine.command_slice", "CommandSlice",
        "m.d.comb += self.i.ready.eq(~self.o.valid)", "m.d.comb += self.i.ready.eq(1)",
        24, 12),
    _stream_check(
        "load_requests", "load unit bus requests: valid held and payload stable until ready",
        streams.load_request_harness, "rvnpu.hdl.engine.load", "LoadUnit",
        "m.d.comb += self.req.valid.eq(can)",
        "m.d.comb += self.req.valid.eq(can & ~self.rsp.valid)", 16, 8),
    _stream_check(
        "store_requests", "store unit bus requests: valid held and payload stable until ready",
        streams.store_request_harness, "rvnpu.hdl.engine.store", "StoreUnit",
        "with m.If(self.req.valid & self.req.ready):", "with m.If(self.req.valid):",
        16, 10),
    *(_stream_check(
        name, "SRAM: one response per read, the next cycle, with the word as read",
        streams.sram_harness, "rvnpu.hdl.soc.sram", "BusSram",
        "m.d.sync += self.bus.rsp.valid.eq(self.bus.req.valid & ~req.write)",
        "m.d.sync += self.bus.rsp.valid.eq(self.bus.req.valid)", 8, 5, with_host=host)
      for name, host in (("sram", False),)),
    *(_frontend_check(*args) for args in _FRONTEND_CHECKS),
    _frontend_check(
        "frontend_serial", "serial",
        "hazards=\"serial\": a command dispatched only while the other units are idle",
        "(dec.to_load & ((execs.count != 0) | (stores.count != 0))) |",
        "(dec.to_load & ((execs.count > 1) | (stores.count != 0))) |",
        config=frontend.FRONTEND_SERIAL_ENGINE),
    *(_list_check(*args) for args in _LIST_CHECKS),
    _post_check(),
    _stream_check(
        "range_ring", "front end's unit ring: an unfinished command's ranges kept until retired",
        frontend.range_ring_harness, _FRONTEND, "UnitQueue",
        "tail.eq(Mux(self.head + self.count >= D,", "tail.eq(Mux(self.head + self.count > D,",
        12, 8),
)


def check_named(name):
    for check in CHECKS:
        if check.name == name:
            return check
    raise ValueError(f"no formal property set {name!r}; choose from "
                     f"{', '.join(c.name for c in CHECKS)}")
