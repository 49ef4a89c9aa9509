"""One processing element of the systolic array."""

from amaranth.hdl import Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rvnpu.hdl.engine.delay import delayed
from rvnpu.hdl.engine.logic_multiplier import ShiftAddMultiplier


__all__ = ["ProcessingElement"]


class ProcessingElement(wiring.Component):
    """A multiply-accumulate cell serving both dataflows.

    Operands flow right (``a``) and down (``b``) one cell a cycle; partial results flow down.
    Control flags ride with ``a`` so that every cell sees them together with its data, which lets
    consecutive tiles follow each other through the array without draining it.

    * Output-stationary: the cell accumulates ``a * b`` in ``acc``. On the tile's last step
      (``mark``) the finished sum enters a two-register chain that moves it down one cell every
      two cycles: half the speed of the flag wavefront, so the rows of a tile never collide.
    * Weight-stationary: ``b`` shifts weights down the column into ``b_reg`` while the previous
      tile computes; ``mark`` (the tile's first row) swaps them into ``weight``. The partial sum
      ``p_in + a * weight`` moves down one cell a cycle.

    By default the multiplier's operands and its product are registered (:attr:`latency`
    cycles from an operand to its product), so that the multiplier, a DSP block where the part
    has them, is a path of its own: the arithmetic of every cell runs that many cycles behind
    its operands, which shifts the whole array's results by as many cycles and changes nothing
    else. The left operand's register is also the one that passes ``a`` to the right.

    A step that does not count (padding, bubbles: ``valid`` low) enters the multiplier with a
    left operand of zero, so its product is zero and the adders need no multiplexer; in the
    operand register that is a synchronous reset, which costs no logic.

    Parameters
    ----------
    op_width : int
        Width of the zero-point-corrected operands (signed).
    acc_width : int
        Width of the accumulator and the partial sums (wrapping).
    with_os, with_ws : bool
        Which dataflows to build; with both, the ``os`` input selects.
    logic_multiplier : bool
        Multiply with adders (:class:`ShiftAddMultiplier`) rather than leave the product to a
        DSP block: for the cells of an array larger than the part's supply of multipliers.
    latency : int
        2 (the default): the multiplier's operands and product are registered; 1: the
        operands only, the product goes straight into the adder (fewer flip-flops, where the
        part pays a logic cell for each register); 0: neither.
    external_multiplier : bool
        The product comes from outside (``mul_p``, of the operands on ``mul_a`` and
        ``mul_b``), from a multiplier the cell shares with another, its product register
        included for latency 2 (:class:`.dsp_pair.SbMac16Pair`).

    Members
    -------
    a_in, valid_in, mark_in : In
        Left operand and its flags. ``valid`` lets the product count (padding steps and bubbles
        have it low); ``mark`` is the tile's last step (OS) or first row (WS).
    a_out, valid_out, mark_out : Out
        The same, registered, to the cell on the right.
    b_in, shift : In
        Top operand (OS) or weight being preloaded (WS, when ``shift``).
    b_out : Out
        ``b_reg``, to the cell below.
    p_in : In
        Partial result from the cell above.
    p_out : Out
        Partial result to the cell below.
    os : In
        1 for output-stationary.
    """

    def __init__(self, *, op_width, acc_width, with_os=True, with_ws=True,
                 logic_multiplier=False, latency=2, external_multiplier=False):
        if latency not in (0, 1, 2):
            raise ValueError(f"latency must be 0, 1 or 2, not {latency!r}")
        #: Cycles from the operands on ``a_in`` and ``b_in`` to their product: a register
        #: before the multiplier (1), one after it too (2), or neither (0).
        self.latency = latency
        self._op_width = op_width
        self._logic_multiplier = logic_multiplier
        self._acc_width = acc_width
        self._with_os = with_os
        self._with_ws = with_ws
        self._external = external_multiplier
        op, acc = signed(op_width), signed(acc_width)
        members = {
            "a_in": In(op), "valid_in": In(1), "mark_in": In(1),
            "a_out": Out(op), "valid_out": Out(1), "mark_out": Out(1),
            "b_in": In(op), "shift": In(1), "b_out": Out(op),
            "p_in": In(acc), "p_out": Out(acc),
            "os": In(1),
        }
        if external_multiplier:
            members.update(mul_a=Out(op), mul_b=Out(op), mul_p=In(signed(2 * op_width)))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        op, acc_shape = signed(self._op_width), signed(self._acc_width)

        m.d.sync += [
            self.valid_out.eq(self.valid_in),
            self.mark_out.eq(self.mark_in),
        ]

        b_reg = Signal(op)
        with m.If(self.shift):
            m.d.sync += b_reg.eq(self.b_in)
        m.d.comb += self.b_out.eq(b_reg)

        o1 = Signal(acc_shape)
        os = self.os if (self._with_os and self._with_ws) else Const(int(self._with_os), 1)

        # The multiplier's right operand. With registered operands the weight register is
        # that register: in WS it loads the new weight on the swap cycle (so the swap's step
        # uses it at once) and holds it otherwise, in OS it takes ``b_in`` every cycle (a WS
        # tile swaps its weights in on its first step, so nothing is lost). A one-dataflow WS
        # cell then needs no multiplexer before its multiplier, only the register's enable.
        weight = Signal(op, reset_less=True)
        if self.latency:
            with m.If(os):
                m.d.sync += weight.eq(self.b_in)
            with m.Elif(self.mark_in):
                m.d.sync += weight.eq(b_reg)
            operand = weight
        else:
            if self._with_ws:
                with m.If(self.mark_in & ~os):
                    m.d.sync += weight.eq(b_reg)
            operand = Signal(op)
            m.d.comb += operand.eq(Mux(os, self.b_in, Mux(self.mark_in, b_reg, weight)))
        # The left operand, zero on a step that does not count (padding, bubbles), so that
        # its product is zero. Data registers carry no reset: only the flags must start clear.
        a_reg = Signal(op, reset_less=True)
        # lab 1 hole begin: the left operand of a step that counts (zero when it does not)
        counted = Mux(self.valid_in, self.a_in, 0)
        # lab 1 starter:
        # counted = self.a_in
        # lab 1 hole end
        if self.latency:
            # The operand register is also the one to the right: where a step does not count,
            # the cell there gets a zero beside a low ``valid``, which changes nothing.
            m.d.sync += a_reg.eq(counted)
            m.d.comb += self.a_out.eq(a_reg)
        else:
            m.d.comb += a_reg.eq(counted)
            m.d.sync += self.a_out.eq(self.a_in)
        product_now = Signal(signed(2 * self._op_width))
        if self._external:
            m.d.comb += [self.mul_a.eq(a_reg), self.mul_b.eq(operand)]
        elif self._logic_multiplier:
            m.submodules.multiplier = multiplier = ShiftAddMultiplier(self._op_width)
            m.d.comb += [multiplier.a.eq(a_reg), multiplier.b.eq(operand),
                         product_now.eq(multiplier.p)]
        else:
            m.d.comb += product_now.eq(a_reg * operand)
        product = Signal(signed(2 * self._op_width), reset_less=True)
        if self._external:
            m.d.comb += product.eq(self.mul_p)      # registered there, for latency 2
        elif self.latency == 2:
            m.d.sync += product.eq(product_now)
        else:
            m.d.comb += product.eq(product_now)
        # ``mark`` as it was when the product's operands came in.
        mark = delayed(m, self.mark_in, self.latency, name="mark")

        if self._with_os:
            acc = Signal(acc_shape)
            o2 = Signal(acc_shape)
            total = Signal(acc_shape)
            # lab 1 hole begin: the multiply-accumulate (output-stationary)
            m.d.comb += total.eq(acc + product)
            # lab 1 starter:
            # m.d.comb += total.eq(acc)
            # lab 1 hole end
            with m.If(os):
                # lab 3 hole begin: start a new sum after the tile's last step
                m.d.sync += acc.eq(Mux(mark, 0, total))
                # lab 3 starter:
                # m.d.sync += acc.eq(total)
                # lab 3 hole end
            m.d.sync += o2.eq(o1)

        with m.If(os):
            if self._with_os:
                # lab 3 hole begin: the finished sum enters the result chain
                m.d.sync += o1.eq(Mux(mark, total, self.p_in))
                # lab 3 starter:
                # m.d.sync += o1.eq(self.p_in)
                # lab 3 hole end
                m.d.comb += self.p_out.eq(o2)
        with m.Else():
            if self._with_ws:
                # lab 1 hole begin: the multiply-accumulate (weight-stationary)
                m.d.sync += o1.eq(self.p_in + product)
                # lab 1 starter:
                # m.d.sync += o1.eq(self.p_in)
                # lab 1 hole end
                m.d.comb += self.p_out.eq(o1)
        return m
