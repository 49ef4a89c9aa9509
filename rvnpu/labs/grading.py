"""Grading a lab copy (``rvnpu lab check DIR``): the lab's own autograder, run on the copy.

The tests come from the installed lab, not from the copy, so a student cannot grade their work
with edited tests; they run with pytest in a subprocess, bounded in time, and report through
:mod:`rvnpu.labs.plugin`. Each test is worth one point; a lab with a performance metric adds its
tier's points.
"""

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rvnpu.labs.catalog import find_lab
from rvnpu.labs.workspace import read_manifest


__all__ = ["TestResult", "Report", "check_lab", "format_report", "gradescope_results"]


@dataclasses.dataclass
class TestResult:
    name: str
    passed: bool
    message: str = ""
    wave: str | None = None


@dataclasses.dataclass
class Report:
    """One grading run: the lab, the seed, each test, the metrics and the performance tier,
    and an ``error`` that kept tests from running (a timeout, a module that does not load)."""
    lab: object
    folder: Path
    seed: int
    tests: list
    metrics: dict
    seconds: float
    error: str = ""

    @property
    def metric(self):
        return self.metrics.get(self.lab.metric) if self.lab.metric else None

    @property
    def tier(self):
        return self.lab.tier_of(self.metric) if self.lab.metric else None

    @property
    def score(self):
        return sum(t.passed for t in self.tests) + (self.tier.points if self.tier else 0)

    @property
    def max_score(self):
        return len(self.tests) + self.lab.performance_points

    @property
    def full(self):
        return not self.error and self.tests and self.score == self.max_score


def _test_names(command, folder, env):
    """The autograder's tests as pytest collects them (for a run that never got to them)."""
    env = {k: v for k, v in env.items() if k != "RVNPU_LAB_RESULTS"}
    done = subprocess.run([*command, "--collect-only"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120)
    return [line.split("::", 1)[1] for line in done.stdout.splitlines() if "::" in line]


def check_lab(folder, *, seed=None, timeout=None, first_failure=False):
    """Grade the lab copy in ``folder``; returns a :class:`Report`. With ``first_failure``
    the run stops at the first failing test (a quick "is it full?" for tests of the labs)."""
    folder = Path(folder).resolve()
    manifest = read_manifest(folder)
    lab = find_lab(manifest["lab"])
    seed = int(manifest["seed"] if seed is None else seed)
    timeout = lab.timeout if timeout is None else timeout
    with tempfile.TemporaryDirectory(prefix="rvnpu-lab-") as tmp:
        results = Path(tmp) / "results.json"
        env = dict(os.environ, RVNPU_LAB_DIR=str(folder), RVNPU_LAB_SEED=str(seed),
                   RVNPU_LAB_RESULTS=str(results), PYTHONDONTWRITEBYTECODE="1")
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   "--rootdir", str(folder), "-c", str(folder / "pytest.ini"),
                   "--import-mode=importlib", *(["-x"] if first_failure else []),
                   str(lab.autograder)]
        start = time.monotonic()
        error = ""
        try:
            done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            done, error = None, f"the autograder ran out of time ({timeout:.0f} s)"
        seconds = time.monotonic() - start
        data = json.loads(results.read_text()) if results.is_file() else {}
    tests = [TestResult(name, **entry) for name, entry in data.get("tests", {}).items()]
    errors = data.get("errors", [])
    if not error and errors:
        error = errors[0]
    if not error and done is not None and not data:
        tail = (done.stdout + done.stderr).strip().splitlines()
        error = f"the autograder did not run: {tail[-1] if tail else 'no output'}"
    seen = {t.name for t in tests}
    if error or not tests:
        # Tests that never ran count as failed, so the maximum score stays the lab's.
        tests += [TestResult(name, False, "did not run")
                  for name in _test_names(command, folder, env) if name not in seen]
    return Report(lab=lab, folder=folder, seed=seed, tests=tests,
                  metrics=data.get("metrics", {}), seconds=seconds, error=error)


def format_report(report):
    """The score table ``rvnpu lab check`` prints."""
    lab = report.lab
    width = max([len(t.name) for t in report.tests] + [4])
    lines = [f"lab {lab.number}: {lab.title}  (seed {report.seed}, {report.seconds:.0f} s)",
             "", f"  {'test':{width}}  result"]
    for t in report.tests:
        lines.append(f"  {t.name:{width}}  {'pass' if t.passed else 'FAIL  ' + t.message}")
    lines.append("")
    passed = sum(t.passed for t in report.tests)
    lines.append(f"tests passed: {passed}/{len(report.tests)}")
    if lab.metric:
        value = report.metric
        shown = "not measured" if value is None else f"{value:.3f}"
        tier = report.tier
        best = lab.tiers[0].name if lab.tiers else "-"
        lines.append(f"performance: {lab.metric_label or lab.metric} = {shown}; tier "
                     f"{tier.name if tier else 'none'} (best {best})")
    lines.append(f"score: {report.score:g}/{report.max_score:g}")
    if report.error:
        lines.append(f"error: {report.error}")
    failed = [t for t in report.tests if not t.passed]
    if failed:
        name = failed[0].name.split("[")[0]
        lines += ["", "To see a failure in full, from the lab folder:",
                  f"  cd {report.folder} && python -m pytest autograder -k {name}"]
    waves = [t for t in failed if t.wave]
    if waves:
        lines += ["", "Waveforms of the failing simulations (open with `surfer FILE` or "
                      "`gtkwave FILE`):"]
        lines += [f"  {t.wave}" for t in waves]
    return "\n".join(lines)


def gradescope_results(report):
    """The results in Gradescope's autograder format (``results.json``)."""
    tests = [{"name": t.name, "score": int(t.passed), "max_score": 1,
              "output": t.message + (f"\nwaveform: {t.wave}" if t.wave else "")}
             for t in report.tests]
    lab = report.lab
    if lab.metric:
        tier = report.tier
        tests.append({"name": f"performance tier ({lab.metric_label or lab.metric})",
                      "score": tier.points if tier else 0,
                      "max_score": lab.performance_points,
                      "output": f"{lab.metric} = {report.metric}; tier "
                                f"{tier.name if tier else 'none'}"})
    return {"score": report.score, "output": report.error or f"seed {report.seed}",
            "tests": tests}
