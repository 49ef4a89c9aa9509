"""``rvnpu fuzz``: short campaigns, their summary, and the failure path (a planted mismatch in
the golden model must be reported with the command line that reruns the case)."""

import dataclasses
import re

import numpy as np
import pytest

from rvnpu.cli import main
from rvnpu.sim import engine_programs, fuzz, soc_programs, toolchain
from rvnpu.sim.golden.iss import Iss, reads_cycle_counter
from rvnpu.sim.lockstep import LockstepHang, lockstep, random_program
from rvnpu.sim.rtl import EngineRun, RtlEngine
from rvnpu.sim.soc_lockstep import soc_lockstep
from rvnpu.sim.soc_sim import FirmwareHang
from rvnpu.spec.commands import Funct
from rvnpu.spec.config import EngineConfig


needs_verilator = pytest.mark.skipif("verilator" not in toolchain.available_simulators(),
                                     reason="Verilator not available")

SUMMARY = re.compile(r"^(core|engine): (\d+) programs, (\d+) (instructions|commands) checked "
                     r"in [\d.]+ s on 1 job \(\d+ \w+/s, [\d.]+ programs/s, \d+ s of CPU; "
                     r"seeds? [\d.]+\): "
                     r"(\d+) mismatches, (\d+) hangs$", re.M)


def fuzz_cli(capsys, *args):
    status = main(["fuzz", *args])
    out = capsys.readouterr().out
    match = SUMMARY.search(out)
    assert match, out
    return status, out, match


# -- The core --------------------------------------------------------------------------------------

def test_core_campaign_checks_instructions(capsys):
    status, out, match = fuzz_cli(capsys, "core", "--seed", "11", "--cases", "2",
                                  "--seconds", "600")
    assert status == 0 and "FAIL" not in out
    assert match.group(2) == "2" and int(match.group(3)) > 1000
    assert match.group(5, 6) == ("0", "0")
    assert out.startswith("rvnpu fuzz core: the core against the ISS, cases from seed 11")


def test_core_mismatch_prints_the_reproducing_command(capsys, monkeypatch):
    """A wrong ISS (one result changed) is a mismatch of that seed, with its command line."""
    step, planted = Iss.step, []

    def wrong_step(self):
        record = step(self)
        if record is not None and not planted and self.x[0] == 0 and record.rd_addr \
                and not record.trap and not reads_cycle_counter(record.insn) \
                and record.pc >= 0x100:
            planted.append(record.pc)
            record = dataclasses.replace(record, rd_wdata=record.rd_wdata ^ 1)
        return record

    monkeypatch.setattr(Iss, "step", wrong_step)
    status, out, match = fuzz_cli(capsys, "core", "--seed", "23", "--cases", "1",
                                  "--seconds", "600")
    assert status == 1 and match.group(5, 6) == ("1", "0")
    assert "FAIL seed 23 (mismatch): seed 23: instruction" in out
    assert out.count("reproduce: rvnpu fuzz core --seed 23 --cases 1") == 2   # as it came, and
                                                                             # in the summary


def test_core_hang_is_reported_as_one():
    image = random_program(5, 200)
    with pytest.raises(LockstepHang, match="seed 5: no HALT within 300 cycles"):
        lockstep(image, seed=5, max_cycles=300)


def test_case_settings_follow_from_the_seed():
    assert fuzz.core_options(99) == fuzz.core_options(99)
    kinds = {fuzz.core_options(seed)[1] for seed in range(20)}
    assert kinds == {True, False}, "every case with (or without) interrupts"
    shifters = {fuzz.core_options(seed)[2]["shifter"] for seed in range(20)}
    assert shifters == {"serial", "barrel"}, "cases of either shifter"
    stages = {fuzz.core_options(seed)[2]["memory_stage"] for seed in range(20)}
    assert stages == {True, False}, "cases with and without the memory stage"


def test_bad_options_are_one_line_errors(capsys):
    for args, message in ((["--seconds", "0"], "--seconds must be positive"),
                          (["--cases", "0"], "--cases must be at least 1"),
                          (["--jobs", "0"], "--jobs must be at least 1")):
        with pytest.raises(SystemExit) as exit_:
            main(["fuzz", "core", *args])
        assert exit_.value.code == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["fuzz", "soc", "--seconds", "-1"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "rvnpu: error: --seconds must be positive, not -1\n"


def test_two_jobs_run_every_case():
    report = fuzz.run_campaign("core", seconds=600, seed=40, cases=2, jobs=2)
    assert report.cases == 2 and not report.failures and report.checked > 1000
    assert report.cpu_s > 1, "the workers' processor time is counted"


# -- The engine ------------------------------------------------------------------------------------

CONFIG = EngineConfig(**fuzz.FUZZ_ENGINE)


@needs_verilator
def test_engine_campaign_and_a_planted_mismatch(capsys, monkeypatch):
    status, out, match = fuzz_cli(capsys, "engine", "--seed", "5", "--cases", "2",
                                  "--seconds", "600")
    assert status == 0 and match.group(2) == "2" and int(match.group(3)) > 100, out
    assert match.group(5, 6) == ("0", "0")

    # The model answers its FENCEs with an error count of one more: every case differs.
    execute = engine_programs.EngineModel.execute

    def wrong_execute(self, funct, *args, **kwargs):
        answer = execute(self, funct, *args, **kwargs)
        return answer + (1 << 16) if funct == Funct.FENCE and answer is not None else answer

    monkeypatch.setattr(engine_programs.EngineModel, "execute", wrong_execute)
    status, out, match = fuzz_cli(capsys, "engine", "--seed", "5", "--cases", "2",
                                  "--seconds", "600", "--rows", "4")
    assert status == 1 and match.group(5, 6) == ("2", "0"), out
    assert "FAIL seed 6 (mismatch): program seed 6" in out and "differs" in out
    assert "reproduce: rvnpu fuzz engine --seed 5 --cases 1 --rows 4" in out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_engine_programs_do_not_depend_on_the_local_memories_they_start_with(seed):
    """``rvnpu fuzz engine`` does not zero the local memories between the programs of a
    batch (``EngineRun.clear_local=False``): the prologue of a random program must write every
    local row before anything reads one, so garbage left there changes nothing."""
    program = engine_programs.random_program(CONFIG, seed)
    memory = np.zeros(CONFIG.mem_bytes, np.uint8)
    for addr, data in program.image:
        memory[addr:addr + len(data)] = np.frombuffer(bytes(data), np.uint8)
    model = engine_programs.EngineModel(CONFIG, memory)
    rng = np.random.default_rng(seed)
    for local in (model.spad_a, model.spad_b, model.acc):
        local[:] = rng.integers(-100, 100, local.shape)
    model.qp[:] = rng.integers(0, 1 << 32, model.qp.shape, dtype=np.uint64).astype(np.uint32)
    assert model.run(program.commands) == program.responses
    assert np.array_equal(model.memory, program.memory)


@needs_verilator
def test_engine_hang_is_reported_and_the_batch_goes_on():
    """A program past its cycle budget comes back as hung, and the next one in the same
    simulator run still runs and matches the model."""
    first, second = (engine_programs.random_program(CONFIG, seed) for seed in (1, 2))
    runs = [EngineRun(program=p.commands, image=p.image, dump=[(0, CONFIG.mem_bytes)],
                      max_cycles=budget) for p, budget in ((first, 50), (second, None))]
    hung, fine = RtlEngine(CONFIG).run(runs)
    assert hung.hung and not fine.hung
    assert engine_programs.check_program(first, hung, CONFIG).startswith("hang: not finished")
    assert engine_programs.check_program(second, fine, CONFIG) is None
    assert np.array_equal(fine.memory, second.memory)


# -- The SoC ---------------------------------------------------------------------------------------

SOC_SUMMARY = re.compile(r"^soc: (\d+) programs, (\d+) instructions, (\d+) engine commands "
                         r"checked in [\d.]+ s on 1 job \(\d+ instructions/s, [\d.]+ programs/s, "
                         r"\d+ s of CPU; seeds? [\d.]+\): (\d+) mismatches, (\d+) hangs$", re.M)


def soc_cli(capsys, *args):
    status = main(["fuzz", "soc", *args])
    out = capsys.readouterr().out
    match = SOC_SUMMARY.search(out)
    assert match, out
    return status, out, match


def test_soc_programs_stay_in_their_window():
    """Moved up into the window, an engine program does on the golden engine what it did on
    an engine whose memory is the window: the same answers (so the same refusals, error codes
    and counts), and nothing written below the window."""
    for seed in range(40):
        virtual = soc_programs.window_program(seed)
        program = soc_programs.random_soc_program(seed)
        ram = np.frombuffer(program.image, np.uint8).copy()
        model = engine_programs.EngineModel(soc_programs.SOC_FUZZ.engine, ram)
        assert model.run(program.commands) == virtual.responses
        assert np.array_equal(ram[:soc_programs.WINDOW],
                              np.frombuffer(program.image, np.uint8)[:soc_programs.WINDOW])
    refused = soc_programs.relocate((int(Funct.LOAD), soc_programs.WINDOW_ENGINE.mem_bytes, 0))
    assert refused[1] == soc_programs.SOC_FUZZ.ram_bytes, "past the window is past the RAM"


def test_soc_campaign_and_a_planted_engine_fault(capsys, monkeypatch):
    """One case on the whole SoC matches the reference; then a golden engine whose STORE_ACC
    writes one value wrong makes the same case fail, with the command that reruns it."""
    status, out, match = soc_cli(capsys, "--seed", "3", "--cases", "1", "--seconds", "600")
    assert status == 0 and "FAIL" not in out, out
    assert match.group(1) == "1" and int(match.group(2)) > 200 and int(match.group(3)) > 20
    assert match.group(4, 5) == ("0", "0")
    assert out.startswith("rvnpu fuzz soc: the SoC against the ISS and the golden engine")

    store_acc = engine_programs.EngineModel._store_acc

    def wrong_store_acc(self, dram_addr, acc_row, rows, cols):
        store_acc(self, dram_addr, acc_row, rows, cols)
        self.memory[dram_addr] ^= 1

    monkeypatch.setattr(engine_programs.EngineModel, "_store_acc", wrong_store_acc)
    status, out, match = soc_cli(capsys, "--seed", "3", "--cases", "1", "--seconds", "600")
    assert status == 1 and match.group(4, 5) == ("1", "0"), out
    assert "FAIL seed 3 (mismatch): seed 3: RAM after the run" in out
    assert "of the engine's window" in out
    assert out.count("reproduce: rvnpu fuzz soc --seed 3 --cases 1") == 2


def test_soc_write_outside_the_window_is_named(monkeypatch):
    """An engine writing below its window (planted in the golden model, so the RTL is the one
    that differs there) is reported as a write outside the window."""
    fence = engine_programs.EngineModel._fence

    def stray_fence(self):
        fence(self)
        if not getattr(self, "strayed", False):   # once: an even number of flips undoes it
            self.memory[soc_programs.HANDLER - 0x40] ^= 0x80      # code region, never fetched
            self.strayed = True

    monkeypatch.setattr(engine_programs.EngineModel, "_fence", stray_fence)
    _, _, failure = fuzz.soc_case(3)
    assert failure.kind == "mismatch"
    assert "below the engine's window (0x4000): written outside it" in failure.message


def test_soc_hang_is_a_firmware_hang():
    program = soc_programs.random_soc_program(3)
    with pytest.raises(FirmwareHang, match=r"seed 3: the firmware did not finish in 300 "
                                           r"cycles: pc 0x[0-9a-f]{8}, engine (idle|busy)"):
        soc_lockstep(program, max_cycles=300)
