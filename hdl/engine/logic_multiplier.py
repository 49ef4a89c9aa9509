"""A signed multiplier made of adders, for processing elements beyond a part's DSP blocks."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


__all__ = ["ShiftAddMultiplier"]


class ShiftAddMultiplier(wiring.Component):
    """``p = a * b`` for two's-complement ``a`` and ``b``, combinationally, as a sum of shifted
    copies of ``a``.

    Yosys maps a ``*`` of any useful width to a DSP block, and a part has only so many (156
    MULT18X18D on an LFE5U-85F, against 256 products in a 16x16 array). This multiplier has
    no ``*`` in it, so it is built from LUTs and carry chains wherever it is used, which lets
    an array hold more MACs than the part has multipliers.

    ``b``'s bits select copies of ``a`` shifted by their weight; its top bit weighs
    ``-2**(width-1)``, so that copy is subtracted. The partial products are added as a
    balanced tree, which keeps the logic depth at ``log2(width)`` adders. Each partial sum is
    kept as a signal of its own: left to merge them into one multi-operand sum, Yosys builds it
    from LUTs rather than carry chains, at nearly twice the area.

    Parameters
    ----------
    width : int
        Width of both operands (signed); the product has ``2 * width`` bits.
    """

    def __init__(self, width):
        if not isinstance(width, int) or width < 2:
            raise ValueError(f"width must be an integer of at least 2, not {width!r}")
        self._width = width
        super().__init__({
            "a": In(signed(width)),
            "b": In(signed(width)),
            "p": Out(signed(2 * width)),
        })

    def elaborate(self, platform):
        m = Module()
        w = self._width
        product = signed(2 * w)
        terms = []
        for i in range(w):
            term = Signal(product, name=f"term_{i}")
            shifted = self.a.as_signed() << i
            m.d.comb += term.eq(Mux(self.b[i], -shifted if i == w - 1 else shifted, 0))
            terms.append(term)
        level = 0
        while len(terms) > 1:
            pairs = []
            for j in range(0, len(terms) - 1, 2):
                total = Signal(product, name=f"sum_{level}_{j // 2}", attrs={"keep": 1})
                m.d.comb += total.eq(terms[j] + terms[j + 1])
                pairs.append(total)
            if len(terms) % 2:
                pairs.append(terms[-1])
            terms, level = pairs, level + 1
        m.d.comb += self.p.eq(terms[0])
        return m
