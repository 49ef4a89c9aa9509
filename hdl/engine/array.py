"""The systolic array: a grid of processing elements and nothing else.

Skewing the edges, scheduling tiles and collecting results belong to the execute unit, so the
grid stays a plain mesh that is easy to read and to place.
"""

from amaranth.hdl import Module, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rvnpu.hdl.engine.pe import ProcessingElement


__all__ = ["SystolicArray"]


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
    """

    def __init__(self, *, rows, cols, op_width, acc_width, with_os=True, with_ws=True,
                 logic_macs=0, mac_latency=2):
        self._rows, self._cols = rows, cols
        self._logic_macs = logic_macs
        self._pe_args = dict(op_width=op_width, acc_width=acc_width,
                             with_os=with_os, with_ws=with_ws, latency=mac_latency)
        op, acc = signed(op_width), signed(acc_width)
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
        first_logic = self._rows * self._cols - self._logic_macs
        grid = [[ProcessingElement(**self._pe_args,
                                   logic_multiplier=r * self._cols + c >= first_logic)
                 for c in range(self._cols)]
                for r in range(self._rows)]
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
