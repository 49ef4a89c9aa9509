"""The shift-and-add multiplier: bit-exact against numpy, and built without DSP blocks."""

import gc
import itertools
import os

import numpy as np
import pytest
from amaranth.sim import Simulator

from rvnpu.hdl.engine.logic_multiplier import ShiftAddMultiplier
from rvnpu.hdl.engine.pe import ProcessingElement

from synth_cells import cell_counts


SEED = 0x40C1C


def _edges(width):
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    return sorted({v for v in (lo, lo + 1, -1, 0, 1, 2, hi - 1, hi) if lo <= v <= hi})


@pytest.mark.parametrize("width", [2, 5, 9, 17])
def test_products_match_numpy(width):
    rng = np.random.default_rng(SEED + width)
    lo, hi = -(1 << (width - 1)), 1 << (width - 1)
    pairs = list(itertools.product(_edges(width), repeat=2))
    pairs += [tuple(int(v) for v in p) for p in rng.integers(lo, hi, (400, 2))]
    dut = ShiftAddMultiplier(width)
    got = []

    async def bench(ctx):
        for a, b in pairs:
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            got.append(ctx.get(dut.p))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    a, b = np.array(pairs, dtype=np.int64).T
    expected = a * b
    mismatches = [(x, y, g, e) for x, y, g, e in zip(a, b, got, expected) if g != e]
    assert not mismatches, f"seed {SEED + width}: a, b, got, expected: {mismatches[:5]}"


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_width_is_checked():
    with pytest.raises(ValueError, match="width must be an integer of at least 2, not 1"):
        ShiftAddMultiplier(1)
    gc.collect()    # the refused component, while its warning is filtered


@pytest.mark.skipif(os.environ.get("RVNPU_SKIP_SYNTH") == "1", reason="RVNPU_SKIP_SYNTH=1")
@pytest.mark.parametrize("logic, mults", [(False, 1), (True, 0)])
def test_ecp5_synthesis_uses_no_dsp_for_a_logic_multiplier(logic, mults, tmp_path):
    """The reason the multiplier exists: Yosys gives a cell's ``*`` a MULT18X18D, and the
    shift-and-add one none."""
    pe = ProcessingElement(op_width=9, acc_width=32, with_os=False, logic_multiplier=logic)
    counts = cell_counts(pe, "synth_ecp5", tmp_path)
    assert counts.get("MULT18X18D", 0) == mults, counts
