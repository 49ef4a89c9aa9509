"""``SocSimulator.run(on_build=...)``: told once before the SoC's simulator is made (Verilog and
Verilator build) and once after, never when both are cached, so ``rvnpu run`` can say why it
waits. The simulator itself is replaced here: the runner's own ``on_build`` is tested on a real
build in tests/test_sim_runner.py."""

import json
import types

import pytest

from rvnpu.sim import soc_sim
from rvnpu.spec.memory_map import SocConfig


@pytest.fixture
def fake_simulator(monkeypatch):
    """A SocSimulator whose Verilog and Verilator build are stand-ins; ``builds`` says whether
    the stand-in runner builds (calling its ``on_build``) or reuses a cached build."""
    state = types.SimpleNamespace(builds=True, verilog_made=0)

    def verilog_of(component, name):
        state.verilog_made += 1
        return "module soc; endmodule\n"

    def run_cocotb(*, test_args, on_build, **_):
        if state.builds:
            on_build(None)
            on_build(3.0)
        with open(test_args["results_file"], "w") as f:
            json.dump({"uart": "", "exit_code": 0, "timed_out": False, "cycles": 10,
                       "wall_time_s": 0.1, "leds": 0}, f)
        return types.SimpleNamespace(build_time_s=3.0 if state.builds else 0.0,
                                     waves_path=None)

    monkeypatch.setattr(soc_sim, "verilog_of", verilog_of)
    monkeypatch.setattr(soc_sim, "run_cocotb", run_cocotb)
    monkeypatch.setattr("rvnpu.hdl.soc.soc.Soc", lambda config: None)
    return state


def test_a_first_run_is_announced_once_before_the_verilog_and_once_when_built(
        fake_simulator, tmp_path):
    told = []
    sim = soc_sim.SocSimulator(SocConfig(), build_root=tmp_path)
    sim.run(b"\0" * 16, on_build=told.append)
    assert fake_simulator.verilog_made == 1
    assert len(told) == 2 and told[0] is None and told[1] >= 0
    # The same simulator again, and a new one finding the Verilog and the build cached.
    fake_simulator.builds = False
    sim.run(b"\0" * 16, on_build=told.append)
    soc_sim.SocSimulator(SocConfig(), build_root=tmp_path).run(b"\0" * 16,
                                                                on_build=told.append)
    assert len(told) == 2 and fake_simulator.verilog_made == 1


def test_a_new_verilator_build_of_cached_verilog_is_announced(fake_simulator, tmp_path):
    soc_sim.SocSimulator(SocConfig(), build_root=tmp_path).run(b"\0" * 16)
    told = []
    soc_sim.SocSimulator(SocConfig(), build_root=tmp_path).run(b"\0" * 16,
                                                                on_build=told.append)
    assert told[0] is None and len(told) == 2 and fake_simulator.verilog_made == 1


def test_verilog_made_for_a_cached_build_is_announced_and_finished(fake_simulator, tmp_path):
    fake_simulator.builds = False
    told = []
    soc_sim.SocSimulator(SocConfig(), build_root=tmp_path).run(b"\0" * 16,
                                                                on_build=told.append)
    assert told[0] is None and len(told) == 2 and fake_simulator.verilog_made == 1
