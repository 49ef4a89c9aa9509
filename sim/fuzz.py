"""Fuzz campaigns: random programs on the RTL against the golden models, until a time budget
runs out.

Each case is one seed, and everything about the case follows from it (the program, the
simulated memory's wait states, the interrupt lines, ...), so a failure is reproduced by its
seed alone (``rvnpu fuzz core --seed S --cases 1``). Cases are numbered from the campaign's
first seed up.

- ``core``: a random instruction stream (:func:`rvnpu.sim.lockstep.random_program`, with
  interrupts in half the cases) on the core's RTL (either shifter) in Amaranth's simulator,
  compared with the ISS retired instruction by retired instruction; a run that does not reach
  its HALT within its cycle budget is a hang.
- ``engine``: random command programs with refused commands among them
  (:func:`rvnpu.sim.engine_programs.random_program`) on the engine's RTL in Verilator, a batch
  per simulator start, compared with :class:`~rvnpu.sim.golden.engine.EngineModel`: the whole
  main memory afterwards and every FENCE/STATUS answer (busy masked); a program that exceeds
  its cycle budget is a hang.
- ``soc``: random firmware on the whole SoC (:func:`rvnpu.sim.soc_programs.random_soc_program`:
  an engine command program, refused commands and command lists among them, issued by the core
  through custom-0 between random instructions, peripheral accesses, traps, WFI, and the
  engine's and the timer's interrupts) in Amaranth's simulator, compared with the ISS driving
  the golden engine, instruction by instruction and then the whole RAM
  (:func:`rvnpu.sim.soc_lockstep.soc_lockstep`); a run that does not reach its HALT within its
  cycle budget is a hang (:class:`~rvnpu.sim.soc_sim.FirmwareHang`).

Nothing here prints: :func:`run_campaign` returns a :class:`CampaignReport` and calls
``on_case`` as results come, and the caller (``rvnpu fuzz``) prints.
"""

import concurrent.futures
import dataclasses
import multiprocessing
import random
import resource
import time

from rvnpu.spec.memory_map import SHIFTERS


__all__ = ["TARGETS", "Failure", "CampaignReport", "run_campaign", "core_case",
           "engine_batch", "soc_case", "FUZZ_ENGINE"]

#: What each target checks, and what it counts.
TARGETS = {"core": "instructions", "engine": "commands", "soc": "instructions"}

#: The engine configuration ``rvnpu fuzz engine`` uses unless told otherwise: small memories,
#: so that a program's prologue, epilogue and whole-memory comparison stay cheap, and both
#: dataflows. (The same as ``tests/test_engine_rtl.py``'s "4x4", which shares its build.)
FUZZ_ENGINE = dict(rows=4, cols=4, dataflow="both", spad_depth=256, acc_depth=64, qp_depth=16,
                   mem_bytes=1 << 14)

#: Engine programs a simulator start runs: a start costs about as much processor time as
#: seven programs, so fewer starts pay (docs/verification.md, Throughput).
ENGINE_BATCH = 64


@dataclasses.dataclass
class Failure:
    """One failing case: its seed, ``"mismatch"`` or ``"hang"``, and what differed."""
    seed: int
    kind: str
    message: str


@dataclasses.dataclass
class CampaignReport:
    """What a campaign did: ``cases`` programs run, ``checked`` instructions (core) or commands
    (engine) compared (soc: instructions, and ``engine_commands`` the core issued), in
    ``elapsed_s`` of wall time and ``cpu_s`` of processor time (this
    process, its workers and their simulators): on a busy machine the wall time says little
    about what the campaign would do on an idle one, the processor time does."""
    target: str
    first_seed: int
    jobs: int = 1
    cases: int = 0
    checked: int = 0
    elapsed_s: float = 0.0
    cpu_s: float = 0.0
    engine_commands: int = 0
    failures: list = dataclasses.field(default_factory=list)

    @property
    def unit(self):
        return TARGETS[self.target]

    @property
    def cases_per_second(self):
        return self.cases / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def checked_per_second(self):
        return self.checked / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def count(self, kind):
        return sum(f.kind == kind for f in self.failures)


# -- One core case ---------------------------------------------------------------------------------

def core_options(seed):
    """The program length and the bench's behaviour (and the core's shifter and memory
    stage) for case ``seed``."""
    rng = random.Random(seed ^ 0xC0DE)
    interrupts = rng.random() < 0.5
    options = dict(with_m=rng.random() < 0.9, mem_wait=rng.choice([0, 0, 1, 2, 3]),
                   cmd_stall=rng.choice([0.0, 0.2, 0.5, 0.7]), rsp_delay=rng.randint(1, 6))
    if interrupts:
        options.update(irq_rate=rng.choice([0.02, 0.05, 0.1, 0.2]),
                       irq_hold=rng.choice([0.3, 0.5, 0.7, 0.9]), wake_delay=rng.randint(1, 8))
    length = rng.randint(800, 1600)
    # Drawn last, so that the options above stay those each seed had before the choice.
    options["shifter"] = rng.choice(SHIFTERS)
    options["memory_stage"] = rng.random() < 0.5
    return length, interrupts, options


def core_case(seed):
    """Run case ``seed`` of the core campaign; ``(instructions compared, Failure or None)``."""
    from rvnpu.sim.lockstep import LockstepHang, LockstepMismatch, lockstep, random_program

    length, interrupts, options = core_options(seed)
    image = random_program(seed, length, interrupts=interrupts)
    try:
        rtl, _ = lockstep(image, seed=seed, max_instructions=3 * length,
                          max_cycles=200 * length, **options)
    except LockstepHang as error:
        return 0, Failure(seed, "hang", str(error))
    except LockstepMismatch as error:
        return 0, Failure(seed, "mismatch", str(error))
    return len(rtl.records), None


# -- A batch of engine cases -----------------------------------------------------------------------

def engine_batch(config, seeds, *, simulator="verilator", build_root=None):
    """Run the engine cases ``seeds`` in one simulator start; a list of ``(seed, commands
    compared, Failure or None)``."""
    from rvnpu.sim.engine_programs import check_program, random_program
    from rvnpu.sim.rtl import EngineRun, RtlEngine

    programs = [random_program(config, seed) for seed in seeds]
    # A random program's prologue fills every local memory before anything reads it, so the
    # simulator need not zero them between programs (tests/test_fuzz.py checks this).
    runs = [EngineRun(program=p.commands, image=p.image, dump=[(0, config.mem_bytes)],
                      clear_local=False) for p in programs]
    results = RtlEngine(config, simulator=simulator, build_root=build_root).run(runs)
    out = []
    for seed, program, result in zip(seeds, programs, results):
        diff = check_program(program, result, config)
        if diff is None:
            out.append((seed, len(program.commands), None))
        else:
            kind = "hang" if result.hung else "mismatch"
            out.append((seed, 0, Failure(seed, kind, f"{program.label}: {diff}")))
    return out


# -- One SoC case ----------------------------------------------------------------------------------

def soc_case(seed):
    """Run case ``seed`` of the SoC campaign; ``(instructions compared, engine commands issued,
    Failure or None)``."""
    from rvnpu.sim.lockstep import LockstepMismatch
    from rvnpu.sim.soc_lockstep import soc_lockstep
    from rvnpu.sim.soc_programs import random_soc_program
    from rvnpu.sim.soc_sim import FirmwareHang

    try:
        trace, issued = soc_lockstep(random_soc_program(seed))
    except FirmwareHang as error:
        return 0, 0, Failure(seed, "hang", str(error))
    except LockstepMismatch as error:
        return 0, 0, Failure(seed, "mismatch", str(error))
    return len(trace.records), issued, None


# -- Campaigns -------------------------------------------------------------------------------------

def _work(target, seeds, engine_args):
    """One unit of work (one core case, or one engine batch) as ``[(seed, checked, failure)]``;
    a module-level function, so that worker processes can run it."""
    if target == "core":
        (seed,) = seeds
        return [(seed, *core_case(seed))]
    if target == "soc":
        (seed,) = seeds
        instructions, commands, failure = soc_case(seed)
        return [(seed, instructions, failure, commands)]
    return engine_batch(seeds=seeds, **engine_args)


def run_campaign(target, *, seconds, seed, cases=None, jobs=1, config=None,
                 simulator="verilator", build_root=None, on_case=None):
    """Run cases ``seed, seed + 1, ...`` of ``target`` ("core", "engine" or "soc") until ``seconds``
    have passed (no new work starts after that) or ``cases`` cases ran.

    ``jobs`` processes run cases side by side (engine batches share one Verilator build, and
    their simulator runs take turns). ``config`` is the engine's
    :class:`~rvnpu.spec.config.EngineConfig` (default :data:`FUZZ_ENGINE`). ``on_case(seed,
    checked, failure)`` is called in the calling process as each case's result comes.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown fuzz target {target!r}: one of {', '.join(TARGETS)}")
    engine_args = None
    if target == "engine":
        from rvnpu.spec.config import EngineConfig
        config = EngineConfig(**FUZZ_ENGINE) if config is None else config
        engine_args = dict(config=config, simulator=simulator, build_root=build_root)
    report = CampaignReport(target, seed, jobs=jobs)
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    seeds = iter(range(seed, seed + cases) if cases is not None else _count(seed))
    size = ENGINE_BATCH if target == "engine" else 1

    def next_work():
        if time.perf_counter() - start >= seconds:
            return None
        chunk = [s for _, s in zip(range(size), seeds)]
        return chunk or None

    def record(results):
        for case_seed, checked, failure, *commands in results:
            report.cases += 1
            report.checked += checked
            report.engine_commands += sum(commands)
            if failure is not None:
                report.failures.append(failure)
            if on_case is not None:
                on_case(case_seed, checked, failure)

    if jobs <= 1:
        while (chunk := next_work()) is not None:
            record(_work(target, chunk, engine_args))
    else:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
            running = set()
            while True:
                while len(running) < jobs and (chunk := next_work()) is not None:
                    running.add(pool.submit(_work, target, chunk, engine_args))
                if not running:
                    break
                done, running = concurrent.futures.wait(
                    running, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    record(future.result())
    report.elapsed_s = time.perf_counter() - start
    report.cpu_s = _cpu_seconds() - cpu_start
    report.failures.sort(key=lambda f: f.seed)
    return report


def _cpu_seconds():
    """User and system time of this process and of its children that ended (the workers, once
    the pool is shut down, with the simulators they ran)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def _count(start):
    while True:
        yield start
        start += 1
