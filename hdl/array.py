"""The systolic array: a grid of processing elements and nothing else.

Skewing the edges, scheduling tiles and collecting results belong to the execute unit, so the
grid stays a plain mesh that is easy to read and to place.
"""

from amaranth.hdl import Module, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .pe import ProcessingElement


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
    """

    def __init__(self, *, rows, cols, op_width, acc_width, with_os=True, with_ws=True):
        self._rows, self._cols = rows, cols
        self._pe_args = dict(op_width=op_width, acc_width=acc_width,
                             with_os=with_os, with_ws=with_ws)
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
        grid = [[ProcessingElement(**self._pe_args) for _ in range(self._cols)]
                for _ in range(self._rows)]
        for r, row in enumerate(grid):
            for c, pe in enumerate(row):
                m.submodules[f"pe_{r}_{c}"] = pe
                m.d.comb += [pe.os.eq(self.os), pe.shift.eq(self.shift[c])]
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
        for c in range(self._cols):
            m.d.comb += self.out[c].eq(grid[-1][c].p_out)
        return m
