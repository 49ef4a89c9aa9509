"""``rvnpu bench soc``'s pure parts: reading the firmware's lines, the logic-cell estimate, the
arguments, and that a failed run writes no results. The benchmark itself is too slow for CI."""

import argparse
import json

import pytest

from rvnpu.bench import soc as bench_soc
from rvnpu.bench.soc import BenchSocError, Timing, estimate_logic_cells, parse_matmul_output


DIRECT_AND_REPLAYED = """\
matmul 64x64x64 int8 on a 8x8 array, weight-stationary, tflite requantisation
direct: cycles 51603, engine active 4096, utilisation 7.9%
recorded program of 228 commands, replayed: cycles 5222, engine active 4096, utilisation 78.4%
C at 0x00004100, checksum 0x77bf2f79
"""

REPLAY_SKIPPED = """\
matmul 128x128x128 int8 on a 8x8 array, weight-stationary, tflite requantisation
direct: cycles 175626, engine active 32768, utilisation 18.6%
recorded: skipped, 836 commands need 10044 bytes, 2816 are free
C at 0x0000a100, checksum 0x1ea35907
"""

REPLAY_FAILED = """\
direct: cycles 900, engine active 64, utilisation 7.1%
recorded program of 12 commands, replayed: cycles 300, engine active 64, utilisation 21.3%
FAILED: replay status 0x00000004, checksum 0x00000000
C at 0x00004100, checksum 0x12345678
"""


def test_parse_direct_and_replayed():
    output = parse_matmul_output(DIRECT_AND_REPLAYED)
    assert output.direct == Timing(cycles=51603, active_cycles=4096)
    assert output.replayed == Timing(cycles=5222, active_cycles=4096)
    assert (output.commands, output.replay_needs_bytes) == (228, None)
    assert output.checksum == 0x77BF2F79 and output.failures == ()


def test_parse_skipped_replay():
    output = parse_matmul_output(REPLAY_SKIPPED)
    assert output.direct == Timing(175626, 32768)
    assert output.replayed is None and output.commands is None
    assert output.replay_needs_bytes == 10044
    assert output.checksum == 0x1EA35907


def test_parse_failure_keeps_the_checksum_of_c():
    output = parse_matmul_output(REPLAY_FAILED)
    assert output.failures == ("FAILED: replay status 0x00000004, checksum 0x00000000",)
    assert output.checksum == 0x12345678


def test_parse_nothing():
    output = parse_matmul_output("trap: mcause=0x00000002 (illegal instruction)\n")
    assert output.direct is None and output.checksum is None


def _netlist(cells, outputs=()):
    """A Yosys JSON netlist of module ``top`` with the given cells."""
    return {"modules": {"top": {
        "ports": {f"out{i}": {"direction": "output", "bits": [bit]}
                  for i, bit in enumerate(outputs)},
        "cells": {f"c{i}": {"type": kind, "connections": connections}
                  for i, (kind, connections) in enumerate(cells)},
    }}}


def _lut(i0, i1, i2, i3, o):
    return ("SB_LUT4", {"I0": [i0], "I1": [i1], "I2": [i2], "I3": [i3], "O": [o]})


def _ff(d, q, kind="SB_DFF"):
    return (kind, {"C": [1], "D": [d], "Q": [q]})


def _carry(i0, i1, ci, co):
    return ("SB_CARRY", {"I0": [i0], "I1": [i1], "CI": [ci], "CO": [co]})


def test_flip_flop_shares_the_cell_of_the_lut_feeding_only_it():
    netlist = _netlist([_lut(2, 3, 4, 5, 10), _ff(10, 11)])
    area = estimate_logic_cells(netlist, "top")
    assert (area["lut4"], area["ff"], area["ffs_with_their_lut"]) == (1, 1, 1)
    assert area["logic_cells_estimate"] == 1


def test_flip_flop_needs_its_own_cell_when_its_lut_drives_more():
    # The LUT's output also leaves the module; another flip-flop is fed by a port, not a LUT.
    netlist = _netlist([_lut(2, 3, 4, 5, 10), _ff(10, 11), _ff(3, 12, "SB_DFFESR")],
                       outputs=[10])
    area = estimate_logic_cells(netlist, "top")
    assert area["ffs_with_their_lut"] == 0
    assert area["logic_cells_estimate"] == 3


def test_carry_shares_the_cell_of_a_lut_on_its_inputs():
    # An adder bit: the sum LUT sees the operands on I1 and I2, as the carry sees them on I0
    # and I1. The second carry has no such LUT.
    netlist = _netlist([_lut("0", 2, 3, 20, 30), _carry(2, 3, 20, 21), _carry(4, 5, 21, 22)])
    area = estimate_logic_cells(netlist, "top")
    assert (area["carry"], area["carries_with_a_lut"]) == (2, 1)
    assert area["logic_cells_estimate"] == 2
    assert area["cells"] == {"SB_CARRY": 2, "SB_LUT4": 1}


def _parser():
    parser = argparse.ArgumentParser(prog="rvnpu bench soc")
    bench_soc.add_arguments(parser)
    return parser


def test_default_arguments():
    args = _parser().parse_args([])
    assert args.sizes == [64, 128] and not args.skip_area
    assert str(args.output).endswith("soc.json")


@pytest.mark.parametrize("sizes, message", [
    ("0", "sizes must be from 1 to"),
    ("64,abc", "sizes must be comma-separated integers, not 'abc'"),
    ("100000", "not 100000"),
    (",", "expected at least one size"),
])
def test_bad_sizes_are_refused_with_a_clear_message(sizes, message, capsys):
    with pytest.raises(SystemExit) as exit:
        _parser().parse_args(["--sizes", sizes])
    assert exit.value.code == 2
    assert message in capsys.readouterr().err


def test_failed_run_writes_no_results(tmp_path, monkeypatch, capsys):
    def mismatch(size, **kwargs):
        raise BenchSocError(f"matmul {size}^3: checksum 0x00000000 differs from the golden "
                            f"model's 0x12345678")

    monkeypatch.setattr(bench_soc, "bench_gemm", mismatch)
    output = tmp_path / "bench" / "soc.json"
    args = _parser().parse_args(["--sizes", "8", "-o", str(output)])
    assert bench_soc.run(args) == 1
    assert "differs from the golden model's" in capsys.readouterr().err
    assert not output.exists()


def test_results_are_written_whole_or_not_at_all(tmp_path):
    path = tmp_path / "soc.json"
    bench_soc.write_results({"old": 1}, path)
    with pytest.raises(TypeError):
        bench_soc.write_results({"unserialisable": object()}, path)
    assert json.loads(path.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["soc.json"]


def test_report_marks_a_larger_ram_and_shows_each_figure():
    speed = {"sim_cycles": 6_000_000, "sim_wall_s": 5.0, "sim_cycles_per_second": 1.2e6,
             "sim_cpu_s": None, "sim_cycles_per_cpu_second": None}
    gemm = [{"m": 128, "n": 128, "k": 128, "rows": 8, "cols": 8, "ram_bytes": 131072,
             "default_ram": False, "recorded_commands": 836,
             "direct": {"cycles": 175626, "active_cycles": 32768, "utilisation": 0.1866},
             "replayed": None, **speed}]
    area = [{"core": "RV32I", "lut4": 1062, "carry": 86, "ff": 140, "ram": 4,
             "logic_cells_estimate": 1102, "logic_cells_packed": 1110}]
    machine = {"cpu_count": 2, "cpu": "AMD EPYC", "load_average": (0.5, 0.5, 0.5)}
    text = bench_soc.format_report(gemm, {"program": "busy loop", **speed}, area, machine)
    assert "128x128x128" in text and "128 KiB *" in text and "18.7%" in text
    assert "* more RAM than the default SoC's" in text
    assert "1.20" in text and "load average 0.5" in text
    assert "RV32I" in text and "1110" in text
