"""Run engine command programs on the RTL, in Verilator or Icarus Verilog, through cocotb.

This is the RTL twin of :class:`rvnpu.sim.golden.engine.EngineModel`: the same programs and
memory images go in, the same memory bytes come out, so tests compare the two directly. Jobs
are batched so that one simulator start serves many programs, and each configuration is built
once into its own directory (the runner caches the build by a hash of the Verilog).
"""

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from rvnpu.hdl import hardware_sources

from rvnpu.spec.config import EngineConfig
from rvnpu.spec.commands import Funct, Space, encode
from rvnpu.hdl.engine.load import load_row_bytes
from rvnpu.sim.engine_top import EngineTestTop
from rvnpu.sim.cell_models import engine_primitives
from rvnpu.sim.runner import run_cocotb, verilog_of


__all__ = ["EngineRun", "EngineResult", "RtlEngine", "default_build_root"]


#: Everything the test top's Verilog is generated from.
_SOURCES = [*hardware_sources(), Path(__file__).resolve().parent / "engine_top.py"]

#: The test top's ports the testbench (``tb_engine``) writes and those it only reads.
_INPUTS = ("clk", "rst", "cmd__valid", "cmd__payload", "rsp__ready", "host_addr", "host_we",
           "host_wdata")
_OUTPUTS = ("cmd__ready", "rsp__valid", "rsp__payload", "host_rdata", "busy", "cycles",
            "active_cycles")


def _ceil(a, b):
    return -(-a // b)


def default_build_root():
    """Where simulator builds live: ``$RVNPU_SIM_BUILD``, else ``build/sim`` here."""
    return Path(os.environ.get("RVNPU_SIM_BUILD", "build/sim"))


@dataclasses.dataclass
class EngineRun:
    """One program for the engine.

    Members
    -------
    program : list of (funct, op1, op2)
    image : list of (byte address, bytes)
        Main-memory contents before the program; everything else is zero.
    dump : list of (byte address, byte count)
        Regions to read back afterwards.
    max_cycles : int, optional
        The cycle budget, past which the run counts as hung.
    clear_local : bool
        Zero the local memories first, as the golden model's start (a batch's later jobs
        would see what earlier ones left). A program that writes every local row before it
        reads any, as random programs' prologue does, can skip it: it costs a few hundred
        cycles a job.
    """
    program: list
    image: list = dataclasses.field(default_factory=list)
    dump: list = dataclasses.field(default_factory=list)
    max_cycles: int | None = None
    clear_local: bool = True


@dataclasses.dataclass
class EngineResult:
    """What a program did: ``memory`` holds the dumped regions (zero elsewhere), ``responses``
    the FENCE/STATUS answers in order, ``cycles`` the cycles from the first command to the last
    answer and ``active_cycles`` those in which a step entered the array. ``hung``: the
    program did not finish within its cycle budget (``responses`` then holds the answers that
    came, ``memory`` is not read back)."""
    memory: np.ndarray
    responses: list
    cycles: int
    active_cycles: int
    hung: bool = False


class RtlEngine:
    """The engine's RTL for one configuration, on one simulator.

    Parameters
    ----------
    config : EngineConfig
    simulator : {"verilator", "icarus"}
    build_root : path-like, optional
        Parent of the per-configuration build directory (see :func:`default_build_root`).
    """

    def __init__(self, config=EngineConfig(), *, simulator="verilator", build_root=None):
        self.config = config
        self.simulator = simulator
        digest = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode())
        root = default_build_root() if build_root is None else Path(build_root)
        self.build_dir = root.resolve() / f"engine-{digest.hexdigest()[:12]}-{simulator}"
        self._verilog = None

    @property
    def verilog(self):
        """The test top's Verilog, cached beside the build: converting a large configuration
        takes longer than simulating it, and it only changes with the configuration or the
        HDL's source."""
        if self._verilog is None:
            key = hashlib.sha256(json.dumps(self.config.to_dict(), sort_keys=True).encode())
            for path in sorted(_SOURCES):
                key.update(path.read_bytes())
            cache = self.build_dir / f"engine_top-{key.hexdigest()[:16]}.v"
            if cache.is_file():
                self._verilog = cache.read_text()
            else:
                self._verilog = verilog_of(EngineTestTop(self.config), "engine_top")
                self.build_dir.mkdir(parents=True, exist_ok=True)
                for old in self.build_dir.glob("engine_top-*.v"):
                    old.unlink(missing_ok=True)
                tmp = cache.with_suffix(f".tmp{os.getpid()}")
                tmp.write_text(self._verilog)
                tmp.replace(cache)
        return self._verilog

    def _build_args(self):
        """Verilator arguments that keep the model fast (as :mod:`rvnpu.sim.soc_sim`'s do).

        cocotb's runner marks every signal public (``--public-flat-rw``), which keeps
        Verilator from optimising any away; the testbench needs only the top's ports and the
        RAM array (written and read in place), so a control file makes just those visible to
        VPI. The C++ compiler gets -O2 after Verilator's -Os. Together they made the
        simulator's share of a random engine program 2.5 times cheaper (docs/verification.md).
        """
        if self.simulator != "verilator":
            return []
        vlt = "\n".join([
            "`verilator_config",
            *(f'public_flat_rw -module "engine_top" -var "{name}"' for name in _INPUTS),
            *(f'public_flat_rd -module "engine_top" -var "{name}"' for name in _OUTPUTS),
            'public_flat_rw -module "engine_top.ram" -var "mem"',
            "",
        ])
        self.build_dir.mkdir(parents=True, exist_ok=True)
        path = self.build_dir / f"engine_top-{hashlib.sha256(vlt.encode()).hexdigest()[:12]}.vlt"
        if not path.is_file():
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(vlt)
            tmp.replace(path)
        return ["--no-public-flat-rw", "-CFLAGS", "-O2", str(path)]

    def _clear_program(self):
        """Commands zeroing every local memory: LOADs with stride 0 repeating a zero row at
        address 0 (which the testbench zeroes first and the job's image then overwrites).
        Block RAM keeps its contents through reset, and the golden model starts from zeros."""
        c = self.config
        program = [encode(Funct.CONFIG_LOAD, stride=0)]
        for space, depth, width in ((Space.SPAD_A, c.spad_depth, c.rows),
                                    (Space.SPAD_B, c.spad_depth, c.cols),
                                    (Space.ACC, c.acc_depth, c.cols),
                                    (Space.QP, c.qp_depth, c.cols)):
            for row in range(0, depth, 255):
                program.append(encode(Funct.LOAD, dram_addr=0, local_row=row, space=space,
                                      rows=min(255, depth - row), cols=width))
        program.append(encode(Funct.FENCE))
        return program

    def _job(self, run, clear):
        c = self.config
        bb = c.bus_bytes
        memory = np.zeros(c.mem_bytes, np.uint8)
        words = set()
        for addr, data in run.image:
            memory[addr:addr + len(data)] = np.frombuffer(bytes(data), np.uint8)
            words.update(range(addr // bb, (addr + len(data) + bb - 1) // bb))
        dump = []
        for addr, nbytes in run.dump:
            first, last = addr // bb, (addr + nbytes + bb - 1) // bb
            words.update(range(first, last))      # zeroed first, as the golden model's are
            dump.append([first, last - first])
        program = [tuple(int(x) for x in command) for command in run.program]
        if not program or program[-1][0] != Funct.FENCE:
            program.append(encode(Funct.FENCE))
        return {
            "preamble": self._clear_program() if clear else [],
            "zero_words": _ceil(load_row_bytes(c), bb),
            "words": [[w, memory[w * bb:(w + 1) * bb].tobytes()[::-1].hex()]
                      for w in sorted(words)],
            "program": program,
            "responses": sum(1 for f, _, _ in program if f in (Funct.FENCE, Funct.STATUS)),
            "dump": dump,
            "max_cycles": run.max_cycles or 200_000 + 4096 * len(program),
        }

    def run(self, runs, *, waves=False):
        """Run each :class:`EngineRun` from reset, with zeroed local memories; return an
        :class:`EngineResult` for each (``hung`` for one that exceeded its cycle budget:
        ``max_cycles``, else 200000 cycles and 4096 a command).

        A FENCE is appended to a program that does not end with one (and its answer kept), so
        the dump always sees finished work.
        """
        runs = list(runs)
        jobs = [self._job(run, clear=i > 0 and run.clear_local) for i, run in enumerate(runs)]
        self.build_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.build_dir) as tmp:
            jobs_file, results_file = Path(tmp) / "jobs.json", Path(tmp) / "results.json"
            jobs_file.write_text(json.dumps(jobs))
            run_cocotb(sources={"engine_top.v": self.verilog,
                                **engine_primitives(self.config)}, toplevel="engine_top",
                       test_module="rvnpu.sim.cocotb.tb_engine", simulator=self.simulator,
                       build_dir=self.build_dir, waves=waves, build_args=self._build_args(),
                       test_args={"jobs_file": str(jobs_file),
                                  "results_file": str(results_file),
                                  "direct_memory": self.simulator == "verilator"})
            results = json.loads(results_file.read_text())
        bb = self.config.bus_bytes
        out = []
        for job, result in zip(jobs, results):
            memory = np.zeros(self.config.mem_bytes, np.uint8)
            if result.get("hang"):
                out.append(EngineResult(memory=memory, responses=result["responses"],
                                        cycles=job["max_cycles"], active_cycles=0, hung=True))
                continue
            for (first, _), values in zip(job["dump"], result["dump"]):
                for i, value in enumerate(values):
                    w = first + i
                    memory[w * bb:(w + 1) * bb] = np.frombuffer(
                        int(value, 16).to_bytes(bb, "little"), np.uint8)
            out.append(EngineResult(memory=memory, responses=result["responses"],
                                    cycles=result["cycles"],
                                    active_cycles=result["active_cycles"]))
        return out

    def run_gemms(self, jobs, *, waves=False):
        """Run :class:`rvnpu.compiler.gemm.GemmJob` s; return ``(output array, EngineResult)`` each."""
        results = self.run([EngineRun(program=job.program, image=job.image,
                                      dump=[(job.out_addr, job.out_shape[0] * job.out_shape[1] * job.out_bytes)]) for job in jobs],
                           waves=waves)
        return [(job.read_output(result.memory), result) for job, result in zip(jobs, results)]
