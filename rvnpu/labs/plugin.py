"""The pytest plugin every lab autograder runs under (``pytest_plugins`` in its conftest).

* It makes the student's files the modules the tests import: a finder placed first on
  ``sys.meta_path`` maps each module the copy's manifest names (``rvnpu.hdl.engine.pe``) to the
  copy's file, ahead of the installed (or editable) rvnpu; every other module still comes from
  the installed package.
* Fixtures: ``lab_dir`` (the copy), ``lab_seed`` (``RVNPU_LAB_SEED``, else the copy's seed), ``rng`` (a generator
  seeded from it and the test's name), ``wave`` (a VCD path under ``waves/``, kept only when
  the test fails) and ``record_metric`` (a number for the performance tier).
* It writes each test's outcome, first failure line and waveform, and the metrics, as JSON to
  ``RVNPU_LAB_RESULTS`` for ``rvnpu lab check``.
"""

import importlib.abc
import importlib.util
import json
import os
import re
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from rvnpu.labs.workspace import MANIFEST, read_manifest


_STATE = {"copy": None, "manifest": None, "tests": {}, "metrics": {}, "errors": []}


class _StudentModules(importlib.abc.MetaPathFinder):
    """Finds the student's modules in the lab copy, before any other finder."""

    def __init__(self, modules):
        self.modules = modules

    def find_spec(self, name, path=None, target=None):
        file = self.modules.get(name)
        return importlib.util.spec_from_file_location(name, file) if file else None


def _copy_dir(config):
    if os.environ.get("RVNPU_LAB_DIR"):
        return Path(os.environ["RVNPU_LAB_DIR"]).resolve()
    for start in (Path.cwd(), Path(config.rootpath)):
        for folder in (start, *start.parents):
            if (folder / MANIFEST).is_file():
                return folder
    raise pytest.UsageError(f"not in a lab copy (no {MANIFEST}); make one with "
                            "`rvnpu lab start N DIR`")


def pytest_configure(config):
    copy = _copy_dir(config)
    manifest = read_manifest(copy)
    modules = {name: str(copy / path) for name, path in manifest["modules"].items()}
    early = sorted(name for name in modules if name in sys.modules)
    if early:
        raise pytest.UsageError(f"{', '.join(early)} was imported before the lab plugin")
    sys.meta_path.insert(0, _StudentModules(modules))
    _STATE.update(copy=copy, manifest=manifest)


def _seed():
    return int(os.environ.get("RVNPU_LAB_SEED", _STATE["manifest"]["seed"]))


@pytest.fixture
def lab_dir():
    """The lab copy being graded (for labs that build from its files, like firmware)."""
    return _STATE["copy"]


@pytest.fixture
def lab_seed():
    """The seed of this grading run's random cases."""
    return _seed()


@pytest.fixture
def rng(request):
    """Random numbers from the run's seed and the test's name, so tests draw independently."""
    return np.random.default_rng([_seed(), zlib.crc32(request.node.name.encode())])


@pytest.fixture
def wave(request):
    """Where this test's simulation writes its waveform (VCD)."""
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    path = _STATE["copy"] / "waves" / f"{name}.vcd"
    path.parent.mkdir(exist_ok=True)
    path.unlink(missing_ok=True)
    request.node.lab_wave = path
    return path


@pytest.fixture
def record_metric():
    """``record_metric(name, value)``: a number the lab's performance tier is graded on."""
    def record(name, value):
        _STATE["metrics"][name] = float(value)
    return record


def _first_line(report):
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash else str(report.longrepr)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "failed"
    if len(lines) > 1 and re.match(r"\w+(Error|Exception)\b", lines[-1]):
        return f"{lines[-1]} ({lines[0]})"[:300]     # a student's module that does not load
    return lines[0][:300]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" or report.failed:
        entry = _STATE["tests"].setdefault(item.name, {"passed": True, "message": "",
                                                       "wave": None})
        if report.failed and entry["passed"]:
            entry.update(passed=False, message=_first_line(report))
        elif report.skipped:
            entry.update(passed=False, message="skipped")
    if report.when == "teardown":
        wave = getattr(item, "lab_wave", None)
        entry = _STATE["tests"].get(item.name)
        if wave and wave.exists():
            if entry and not entry["passed"]:
                entry["wave"] = str(wave)
            else:
                wave.unlink()


def pytest_collectreport(report):
    if report.failed:
        _STATE["errors"].append(f"{report.nodeid or 'the autograder'} did not load: "
                                f"{_first_line(report)}")


def pytest_sessionfinish(session, exitstatus):
    target = os.environ.get("RVNPU_LAB_RESULTS")
    if target:
        Path(target).write_text(json.dumps({
            "seed": _seed(), "tests": _STATE["tests"], "metrics": _STATE["metrics"],
            "errors": _STATE["errors"]}, indent=1))
