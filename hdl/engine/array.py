"""The systolic array: a grid of processing elements and nothing else.

Skewing the edges, scheduling tiles and collecting results belong to the execute unit, so the
grid stays a plain mesh that is easy to read and to place.
"""

from amaranth.hdl import Module, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rvnpu.hdl.engine.dsp_pair import SbMac16Pair
from rvnpu.hdl.engine.pe import ProcessingElement


__all__ = ["SystolicArray", "ws_sum_width", "in_logic", "mac_partner", "dsp_blocks"]


def ws_sum_width(rows, in_width, acc_width, raw=False):
    """Bits of a weight-stationary partial sum: no more than its largest value needs.

    A column sums at most ``rows`` products, each of two operands with their zero points off;
    the front end refuses a zero point outside the elements' range, so an operand's magnitude
    is below ``2**in_width`` and the sum's is at most ``rows * (2**in_width - 1)**2``. Kept
    that narrow, and sign-extended to ``acc_width`` below the array, the sum is the same, and
    a column's adders and registers are half as wide (17 bits against 32 for one row of
    8-bit operands). Output-stationary sums run over a whole tile and wrap at ``acc_width``.

    With ``raw`` operands (signed ``in_width``-bit elements whose zero points come off below
    the array) a product is at most ``2**(2 * in_width - 2)``, the square of the most negative.
    """
    largest = rows * (1 << (2 * in_width - 2) if raw else ((1 << in_width) - 1) ** 2)
    return min(acc_width, largest.bit_length() + 1)


def in_logic(r, c, *, rows, cols, logic_macs):
    """Whether cell ``(r, c)`` multiplies in logic: the last ``logic_macs`` in row order, so
    that a part's multipliers serve whole rows from the top."""
    return r * cols + c >= rows * cols - logic_macs


def mac_partner(r, c, *, rows, cols, logic_macs, sb_mac16_pairs):
    """The column of the cell that shares cell ``(r, c)``'s DSP block, or ``None``.

    With ``sb_mac16_pairs`` columns ``2j`` and ``2j + 1`` of a row pair up when both multiply
    in DSP blocks (:func:`in_logic`)."""
    partner = c ^ 1
    if sb_mac16_pairs and partner < cols and not any(
            in_logic(r, col, rows=rows, cols=cols, logic_macs=logic_macs)
            for col in (c, partner)):
        return partner
    return None


def dsp_blocks(*, rows, cols, logic_macs, sb_mac16_pairs):
    """DSP blocks the array's multipliers take: one a cell, or one a pair
    (:func:`mac_partner`)."""
    dsp_cells = rows * cols - logic_macs
    pairs = sum(mac_partner(r, c, rows=rows, cols=cols, logic_macs=logic_macs,
                            sb_mac16_pairs=sb_mac16_pairs) is not None
                for r in range(rows) for c in range(cols)) // 2
    return dsp_cells - pairs


class SystolicArray(wiring.Component):
    """``rows`` x ``cols`` processing elements.

    Members
    -------
    a, valid, mark : In
        Left edge, one entry a row (already skewed: row ``r`` one cycle per row later).
    b, shift : In
        Top edge, one entry a column (already skewed likewise).
    out : Out
        Bottom edge, the partial results leaving each column.
    os : In
        1 for output-stationary.

    ``logic_macs`` cells multiply in logic rather than in DSP blocks: the last ones in row
    order, so a part's multipliers serve whole rows from the top. Every cell's product comes
    ``mac_latency`` cycles after its operands (:class:`.pe.ProcessingElement`).

    The operands are ``in_width``-bit elements with their zero points off (one bit wider), or
    with ``raw`` the elements themselves as signed ``in_width``-bit values (the execute unit
    takes the zero points off below the array: ``EngineConfig.zero_point_sums``).
    Partial sums, and ``out``, are ``acc_width`` bits wide where the array can run
    output-stationary, and :func:`ws_sum_width` wide where it runs weight-stationary only.

    With ``sb_mac16_pairs`` (raw 8-bit operands only) the cells of columns ``2j`` and
    ``2j + 1`` of a row share one iCE40 SB_MAC16's two 8x8 multipliers
    (:class:`.dsp_pair.SbMac16Pair`); a cell left without a partner (an odd column count, or
    a partner multiplying in logic) keeps its own.
    """

    def __init__(self, *, rows, cols, in_width, acc_width, with_os=True, with_ws=True,
                 logic_macs=0, mac_latency=2, raw=False, sb_mac16_pairs=False):
        self._rows, self._cols = rows, cols
        self._logic_macs = logic_macs
        op_width = in_width if raw else in_width + 1
        if sb_mac16_pairs and op_width != 8:
            raise ValueError(f"SB_MAC16 pairs multiply 8-bit operands, not {op_width}-bit ones")
        self._pairs = sb_mac16_pairs
        self._mac_latency = mac_latency
        #: Width of the partial sums and of ``out``.
        self.sum_width = (acc_width if with_os
                          else ws_sum_width(rows, in_width, acc_width, raw=raw))
        self._pe_args = dict(op_width=op_width, acc_width=self.sum_width,
                             with_os=with_os, with_ws=with_ws, latency=mac_latency)
        op, acc = signed(op_width), signed(self.sum_width)
        super().__init__({
            "a":     In(data.ArrayLayout(op, rows)),
            "valid": In(rows),
            "mark":  In(rows),
            "b":     In(data.ArrayLayout(op, cols)),
            "shift": In(cols),
            "out":   Out(data.ArrayLayout(acc, cols)),
            "os":    In(1),
        })

    def elaborate(self, platform):
        m = Module()
        sizes = dict(rows=self._rows, cols=self._cols, logic_macs=self._logic_macs)

        def paired(r, c):
            return mac_partner(r, c, **sizes, sb_mac16_pairs=self._pairs) is not None

        grid = [[ProcessingElement(**self._pe_args, logic_multiplier=in_logic(r, c, **sizes),
                                   external_multiplier=paired(r, c))
                 for c in range(self._cols)]
                for r in range(self._rows)]
        for r, row in enumerate(grid):
            for c in range(0, self._cols, 2):
                if paired(r, c):
                    m.submodules[f"mac_{r}_{c}"] = pair = SbMac16Pair(
                        registered=self._mac_latency == 2)
                    left, right = row[c], row[c + 1]
                    m.d.comb += [pair.a0.eq(left.mul_a), pair.b0.eq(left.mul_b),
                                 left.mul_p.eq(pair.p0),
                                 pair.a1.eq(right.mul_a), pair.b1.eq(right.mul_b),
                                 right.mul_p.eq(pair.p1)]
        for r, row in enumerate(grid):
            for c, pe in enumerate(row):
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [pe.os.eq(self.os), pe.shift.eq(self.shift[c])]
                # lab 2 hole begin: connect each cell to its neighbours
                if c == 0:
                    m.d.comb += [pe.a_in.eq(self.a[r]), pe.valid_in.eq(self.valid[r]),
                                 pe.mark_in.eq(self.mark[r])]
                else:
                    left = row[c - 1]
                    m.d.comb += [pe.a_in.eq(left.a_out), pe.valid_in.eq(left.valid_out),
                                 pe.mark_in.eq(left.mark_out)]
                if r == 0:
                    m.d.comb += [pe.b_in.eq(self.b[c]), pe.p_in.eq(0)]
                else:
                    above = grid[r - 1][c]
                    m.d.comb += [pe.b_in.eq(above.b_out), pe.p_in.eq(above.p_out)]
                # lab 2 starter:
                # m.d.comb += [pe.a_in.eq(self.a[r]), pe.valid_in.eq(self.valid[r]),
                #              pe.mark_in.eq(self.mark[r]), pe.b_in.eq(self.b[c]), pe.p_in.eq(0)]
                # lab 2 hole end
        for c in range(self._cols):
            m.d.comb += self.out[c].eq(grid[-1][c].p_out)
        return m
