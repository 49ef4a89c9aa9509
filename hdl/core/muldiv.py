"""Iterative multiplier and divider for the control core's M extension."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


__all__ = ["MulDiv"]


class MulDiv(wiring.Component):
    """All eight M-extension operations with one 33-bit adder, one result bit per cycle.

    Small rather than fast: a combinational 32x32 multiplier would take more logic cells than
    the whole core (the UP5K's DSP blocks are left to the matrix engine). The operation takes
    35 cycles from ``start`` to ``done``: one to load the operands, 32 steps, one to pick and
    (for signed division) negate the result into a register, which ``done`` then presents.

    Multiplication shifts right and adds the multiplicand ``b`` (sign-extended for MULH), and
    subtracts it in the last step when the multiplier ``a`` is signed (its top bit weighs
    ``-2**31``), so no operand or product is ever negated. Division is restoring division of
    ``|a|`` by ``|b|``: ``|b|`` is never formed, because subtracting ``|b|`` is adding ``b``
    when ``b`` is negative. Division by zero and ``INT_MIN / -1`` need no special case: the
    plain algorithm already gives the results RISC-V specifies, once the quotient's negation is
    suppressed for a zero divisor.

    The low word (the multiplier, then the product's low half; the dividend, then the
    quotient) lives outside, in a shift register the core already has for its shifts: the two
    never run at once, and one register with one multiplexer is about 45 logic cells smaller
    than two. This unit says how that register moves each cycle.

    Members
    -------
    start : In(1)
        Begin the operation ``op`` (the instruction's funct3). ``a``, ``b`` and ``op`` must
        then stay stable until ``done``.
    op : In(3)
    a, b : In(32)
        ``rs1`` and ``rs2``.
    lo : In(32)
        The low word's register, as it is.
    lo_load, lo_right, lo_left : Out(1)
        The low word's register is to load ``lo_value``, or to shift one bit right or left
        (``lo_fill`` shifting in), at the next clock edge.
    lo_value : Out(32)
    lo_fill : Out(1)
    done : Out(1)
        The result is in ``lo`` in this cycle.
    """

    start: In(1)
    op: In(3)
    a: In(32)
    b: In(32)
    lo: In(32)
    lo_load: Out(1)
    lo_right: Out(1)
    lo_left: Out(1)
    lo_value: Out(32)
    lo_fill: Out(1)
    done: Out(1)

    def elaborate(self, platform):
        m = Module()

        hi = Signal(32)     # product's high half / partial remainder
        lo = self.lo        # multiplier, then product's low half / dividend, then quotient
        step = Signal(5)

        is_div = self.op[2]
        signed = ~self.op[0]
        # Multiplication: a (rs1) is the multiplier, b (rs2) the multiplicand.
        a_signed = Mux(is_div, signed, self.op[0:2] != 0b11) & (self.op[0:2] != 0b00)
        b_signed = Mux(is_div, signed, self.op[0:2] == 0b01)
        a_neg = is_div & signed & self.a[31]
        b_neg = is_div & signed & self.b[31]
        # Whether the result is negated, decided as the operation starts: in the last cycle
        # the operands' tests (b != 0 is a 32-bit one) would come before the adder.
        negate = Signal()
        # So are the operation's decode and the last step: in the steps the adder's operands
        # follow flip-flops, not the decode of ``op`` (four LUTs before the carry chain).
        mul_a_signed, mul_b_signed = Signal(), Signal()
        divide, divisor_negative, take_hi, last = Signal(), Signal(), Signal(), Signal()

        # One adder: x + (y ^ inv) + inv, 33 bits wide with explicit extension bits.
        x = Signal(32)
        x_ext = Signal()
        y = Signal(32)
        y_ext = Signal()
        inv = Signal()
        total = Signal(33)
        m.d.comb += [total.eq(Cat(x, x_ext) + Cat(y ^ inv.replicate(32), y_ext ^ inv) + inv),
                     self.lo_value.eq(total[:32])]

        with m.FSM(name="muldiv"):
            with m.State("Idle"):
                # Load the (absolute) multiplier or dividend.
                m.d.comb += [y.eq(self.a), inv.eq(a_neg)]
                with m.If(self.start):
                    m.d.comb += self.lo_load.eq(1)
                    m.d.sync += [hi.eq(0), step.eq(0), last.eq(0),
                                 negate.eq(Mux(self.op[1], a_neg,
                                               (a_neg ^ b_neg) & (self.b != 0))),
                                 mul_a_signed.eq(a_signed), mul_b_signed.eq(b_signed),
                                 divide.eq(is_div), divisor_negative.eq(b_neg),
                                 take_hi.eq(Mux(is_div, self.op[1], self.op[0:2] != 0))]
                    m.next = "Step"

            with m.State("Step"):
                m.d.sync += [step.eq(step + 1), last.eq(step == 30)]
                with m.If(~divide):
                    add = lo[0]
                    m.d.comb += [
                        x.eq(hi), x_ext.eq(mul_b_signed & hi[31]),
                        y.eq(Mux(add, self.b, 0)), y_ext.eq(mul_b_signed & add & self.b[31]),
                        inv.eq(mul_a_signed & last),
                    ]
                    m.d.comb += [self.lo_right.eq(1), self.lo_fill.eq(total[0])]
                    m.d.sync += hi.eq(total[1:33])
                with m.Else():
                    # Shift the next dividend bit in and try to subtract |b|.
                    m.d.comb += [x.eq(Cat(lo[31], hi[:31])), y.eq(self.b),
                                 inv.eq(~divisor_negative)]
                    fits = hi[31] | (total[32] ^ inv)
                    m.d.comb += [self.lo_left.eq(1), self.lo_fill.eq(fits)]
                    m.d.sync += hi.eq(Mux(fits, total[:32], x))
                with m.If(last):
                    m.next = "Result"

            with m.State("Result"):
                m.d.comb += [y.eq(Mux(take_hi, hi, lo)), inv.eq(divide & negate)]
                # Into lo, which loads the adder's sum as the operation starts too: no new
                # input for its multiplexer.
                m.d.comb += self.lo_load.eq(1)
                m.next = "Done"

            with m.State("Done"):
                # The result from a register: through the adder and on into the core's write
                # multiplexer, it was the core's longest path.
                m.d.comb += self.done.eq(1)
                m.next = "Idle"

        return m
