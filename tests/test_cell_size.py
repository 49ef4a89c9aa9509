"""What a processing element costs around its multiplier, synthesised on its own: a step that
does not count zeroes the left operand's register (a synchronous reset, no multiplexer before
the adder), which also passes ``a`` on; and a weight-stationary cell's weight register is the
multiplier's operand (no multiplexer before the multiplier)."""

import os

import pytest

from rvnpu.hdl.engine.pe import ProcessingElement

from synth_cells import cell_counts, of_kind


@pytest.mark.skipif(os.environ.get("RVNPU_SKIP_SYNTH") == "1", reason="RVNPU_SKIP_SYNTH=1")
@pytest.mark.parametrize("latency", [2, 1])
def test_a_weight_stationary_cell_has_no_logic_around_its_multiplier(tmp_path, latency):
    """On Gowin: the partial sum's adder (ALUs) and the multiplier, and LUTs for nothing else
    (a multiplexer on the 18-bit product or the 9-bit operand would take 9 to 27). Its
    registers: ``a``, the shadow weight, the weight, the partial sum and the flags, 48 bits,
    and with ``latency`` 2 the product as well (a second copy of ``a`` for the cell on the
    right would take 9 more). On Gowin parts every one of these but the sum takes a logic
    cell of its own, as its LUT passes it through."""
    pe = ProcessingElement(op_width=9, acc_width=19, with_os=False, with_ws=True,
                           latency=latency)
    counts = cell_counts(pe, "synth_gowin", tmp_path)
    luts, flip_flops = of_kind(counts, "LUT"), of_kind(counts, "DFF")
    assert counts.get("MULT9X9") == 1 and counts.get("ALU", 0) >= 19, counts
    assert luts <= 3, counts
    assert flip_flops <= {2: 48 + 18, 1: 48}[latency], counts
