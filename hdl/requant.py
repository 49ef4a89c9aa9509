"""One requantisation lane: an int32 accumulator (plus bias) to a clamped small integer.

The lane reproduces :mod:`rvnpu.sim.golden.requant` bit for bit in both conventions the engine
supports (:class:`~rvnpu.hdl.isa.RequantMode`): TFLite/gemmlowp fixed point and ONNX Runtime
float32. The float32 path is built from integer parts (normalise, multiply, round) rather than
from a floating-point core, because only one float operation is needed and exact IEEE rounding
is the whole point.
"""

from amaranth.hdl import Module, Signal, Const, Cat, Mux, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rvnpu.hdl.isa import RequantMode


__all__ = ["RequantLane"]


_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1


class RequantLane(wiring.Component):
    """Requantise one value a cycle, fully pipelined, with a fixed latency and no backpressure.

    ``acc + bias`` wraps to int32 and is scaled either by gemmlowp's
    ``MultiplyByQuantizedMultiplier`` (``mode`` = TFLITE) or by a float32 multiply with round half
    to even (``mode`` = ORT); then ``out_zero`` is added and the sum is clamped. Both paths run
    side by side and ``mode`` picks one in stage 5; ``out_zero`` and the clamp act in stage 6.

    Parameters
    ----------
    with_tflite, with_ort : bool
        Build the TFLite or the ONNX Runtime path. A generator that needs one convention can
        drop the other (the ORT path is the larger one). With only one path built ``mode`` is
        ignored and every value takes that path.

    Members
    -------
    i_valid : In(1)
        ``acc``, ``bias``, ``multiplier`` and ``shift`` hold a value this cycle.
    acc, bias : In(signed(32))
        Accumulator and bias; their sum wraps to 32 bits.
    multiplier : In(32)
        TFLITE: the int32 Q31 multiplier. ORT: the float32 scale's bit pattern.
    shift : In(signed(32))
        TFLITE: left shift if positive, rounding right shift if negative; magnitudes over 31 act
        as 31. Ignored in ORT mode.
    mode : In(1)
        :class:`~rvnpu.hdl.isa.RequantMode`. Configuration (with ``out_zero``, ``clamp_min`` and
        ``clamp_max``): not pipelined, so it must be held from the first ``i_valid`` to the last
        ``o_valid`` of the values it applies to.
    out_zero, clamp_min, clamp_max : In(signed(16))
        Output zero point and clamp bounds. With ``clamp_min > clamp_max`` every result is
        ``clamp_max`` (max is applied before min, as :func:`numpy.clip` does).
    o_valid : Out(1)
        ``o_value`` holds the result of the value given :attr:`latency` cycles earlier.
    o_value : Out(signed(17))
        The clamped result, within ``[clamp_min, clamp_max]``.
    """

    i_valid: In(1)
    acc: In(signed(32))
    bias: In(signed(32))
    multiplier: In(32)
    shift: In(signed(32))
    mode: In(1)
    out_zero: In(signed(16))
    clamp_min: In(signed(16))
    clamp_max: In(signed(16))
    o_valid: Out(1)
    o_value: Out(signed(17))

    # Register stages: 1 the wrapped sum; 2-4 the scaling (TFLite: shift, 32x32 product, high
    # half; ORT: int -> float, 24x24 product, float32 rounding); 5 the chosen int32 result;
    # 6 zero point and clamp.
    _LATENCY = 6

    def __init__(self, *, with_tflite=True, with_ort=True):
        if not isinstance(with_tflite, bool):
            raise TypeError(f"with_tflite must be a bool, not {with_tflite!r}")
        if not isinstance(with_ort, bool):
            raise TypeError(f"with_ort must be a bool, not {with_ort!r}")
        if not (with_tflite or with_ort):
            raise ValueError("RequantLane needs with_tflite or with_ort (or both)")
        self._with_tflite = with_tflite
        self._with_ort = with_ort
        super().__init__()

    @property
    def latency(self):
        """Cycles from a value on the inputs (``i_valid``) to its result (``o_valid``)."""
        return self._LATENCY

    @property
    def with_tflite(self):
        return self._with_tflite

    @property
    def with_ort(self):
        return self._with_ort

    def elaborate(self, platform):
        m = Module()

        # Data registers carry no reset: only the valid chain must start empty.
        def reg(shape, name):
            return Signal(shape, name=name, reset_less=True)

        valid = Signal(self._LATENCY)
        m.d.sync += valid.eq(Cat(self.i_valid, valid[:-1]))
        m.d.comb += self.o_valid.eq(valid[-1])

        # -- Stage 1: wrapped sum, and the TFLite shift split into two 5-bit amounts ------------
        x1 = reg(signed(32), "x1")
        mult1 = reg(32, "mult1")
        left1 = reg(5, "left1")
        right1 = reg(5, "right1")
        shift = self.shift
        m.d.sync += [
            x1.eq(self.acc + self.bias),          # truncated to 32 bits: the int32 wrap
            mult1.eq(self.multiplier),
            left1.eq(Mux(shift > 31, 31, Mux(shift < 0, 0, shift[:5]))),
            right1.eq(Mux(shift < -31, 31, Mux(shift > 0, 0, (-shift)[:5]))),
        ]

        y_tflite = self._tflite(m, reg, x1, mult1, left1, right1) if self._with_tflite else None
        y_ort = self._ort(m, reg, x1, mult1) if self._with_ort else None

        # -- Stage 5: the chosen int32 result ----------------------------------------------------
        y5 = reg(signed(32), "y5")
        if y_tflite is not None and y_ort is not None:
            m.d.sync += y5.eq(Mux(self.mode == RequantMode.ORT, y_ort, y_tflite))
        else:
            m.d.sync += y5.eq(y_tflite if y_ort is None else y_ort)

        # -- Stage 6: zero point and clamp -------------------------------------------------------
        z = Signal(signed(34))
        lo = Signal(signed(34))
        m.d.comb += [
            z.eq(y5 + self.out_zero),
            lo.eq(Mux(z < self.clamp_min, self.clamp_min, z)),
        ]
        out = reg(signed(17), "out")
        m.d.sync += out.eq(Mux(lo > self.clamp_max, self.clamp_max, lo))
        m.d.comb += self.o_value.eq(out)
        return m

    def _tflite(self, m, reg, x1, mult1, left1, right1):
        """Stages 2-4 of the gemmlowp path; returns the int32 result (combinational)."""
        # Stage 2: the left shift (x * 2**left wraps in int32, as in TFLite's C++).
        xs2 = reg(signed(32), "t_xs2")
        mult2 = reg(signed(32), "t_mult2")
        right2 = reg(5, "t_right2")
        m.d.sync += [
            xs2.eq(x1 << left1),
            mult2.eq(mult1.as_signed()),
            right2.eq(right1),
        ]

        # Stage 3: the 32x32 product alone, registered on both sides so that it maps onto DSP
        # blocks.
        ab3 = reg(signed(64), "t_ab3")
        right3 = reg(5, "t_right3")
        m.d.sync += [ab3.eq(xs2 * mult2), right3.eq(right2)]

        # Stage 4: SaturatingRoundingDoublingHighMul. gemmlowp adds a nudge of 2**30 (ab >= 0)
        # or 1 - 2**30 (ab < 0) and divides by 2**31 truncating toward zero. For ab < 0 the sum
        # is negative, and truncation of a negative n is floor((n + 2**31 - 1) / 2**31); so both
        # cases are floor((ab + 2**30) / 2**31): one adder and an arithmetic shift. The only
        # result above INT32_MAX is 2**31, from INT32_MIN * INT32_MIN, which saturates.
        high = Signal(signed(34))
        m.d.comb += high.eq((ab3 + (1 << 30)) >> 31)
        s4 = reg(signed(32), "t_s4")
        right4 = reg(5, "t_right4")
        m.d.sync += [
            s4.eq(Mux(high > _INT32_MAX, _INT32_MAX, high)),
            right4.eq(right3),
        ]

        # RoundingDivideByPOT, combinational into stage 5. gemmlowp adds 1 when the remainder
        # exceeds half the divisor (minus one for negative x, so that ties go away from zero):
        # that is floor((x + 2**(r-1) - [x < 0]) / 2**r) for r > 0, and x itself for r = 0.
        half = Signal(32)
        m.d.comb += half.eq((Const(1, 32) << right4) >> 1)
        bias = Signal(signed(34))
        m.d.comb += bias.eq(half - ((s4 < 0) & (right4 != 0)))
        y = Signal(signed(32))
        m.d.comb += y.eq((s4 + bias) >> right4)
        return y

    def _ort(self, m, reg, x1, mult1):
        """Stages 2-4 of the float32 path; returns the int32 result (combinational)."""
        # Stage 2: int32 -> float32 (round to nearest even) and the scale's fields.
        #
        # |x| is normalised so that its top set bit is bit 31; the top 24 bits are the
        # mantissa, bit 7 the round bit and bits 0-6 the sticky bits. Then x = xm * 2**xq.
        # Values below 2**24 have lz >= 8, so nothing is rounded away and the conversion is exact.
        neg_x = Signal()
        mag = Signal(32)
        m.d.comb += [neg_x.eq(x1 < 0), mag.eq(Mux(neg_x, -x1, x1))]   # |INT32_MIN| fits 32 bits
        lz = Signal(range(32))
        for i in range(32):      # the highest set bit wins, so the last assignment sets lz
            with m.If(mag[i]):
                m.d.comb += lz.eq(31 - i)
        norm = Signal(32)
        m.d.comb += norm.eq(mag << lz)
        rounded = Signal(25)
        m.d.comb += rounded.eq(norm[8:] + (norm[7] & (norm[:7].any() | norm[8])))

        s_sign, s_exp, s_frac = mult1[31], mult1[23:31], mult1[:23]
        s_nan = (s_exp == 0xFF) & s_frac.any()
        s_inf = (s_exp == 0xFF) & ~s_frac.any()
        # Zero and denormal scales give 0. A denormal s is below 2**-126 and |float32(x)| is at
        # most 2**31, so |x * s| < 2**-95 and its float32 rounding is at most 2**-95, which
        # rounds half-even to 0. (With a normal scale and x != 0 the product is at least 2**-126,
        # so the float32 product is never denormal and the multiply below needs no underflow
        # handling either.)
        s_small = s_exp == 0
        x_zero = mag == 0

        sign2 = reg(1, "o_sign2")
        xm2 = reg(24, "o_xm2")
        xq2 = reg(signed(6), "o_xq2")        # -23 .. 9
        sm2 = reg(24, "o_sm2")
        sq2 = reg(signed(9), "o_sq2")        # -150 .. 104 (exp 255 never gets used)
        zero2 = reg(1, "o_zero2")
        sat2 = reg(1, "o_sat2")
        m.d.sync += [
            sign2.eq(neg_x ^ s_sign),
            xm2.eq(Mux(rounded[24], 1 << 23, rounded[:24])),
            xq2.eq(Mux(rounded[24], 9 - lz, 8 - lz)),
            sm2.eq(Cat(s_frac, Const(1, 1))),
            sq2.eq(s_exp - 150),
            # NaN scale, 0 * inf, zero or denormal scale, or x = 0: the result is 0.
            zero2.eq(s_nan | s_small | x_zero),
            # inf * nonzero: saturate with the product's sign.
            sat2.eq(s_inf & ~x_zero),
        ]

        # Stage 3: the 24x24 mantissa product, exact. |x * s| = p3 * 2**e3.
        p3 = reg(48, "o_p3")
        e3 = reg(signed(10), "o_e3")
        sign3 = reg(1, "o_sign3")
        zero3 = reg(1, "o_zero3")
        sat3 = reg(1, "o_sat3")
        m.d.sync += [
            p3.eq(xm2 * sm2),
            e3.eq(xq2 + sq2),
            sign3.eq(sign2), zero3.eq(zero2), sat3.eq(sat2),
        ]

        # Stage 4: round the product to a 24-bit mantissa, RNE: the float32 product pm * 2**k.
        # Both mantissas have bit 23 set, so p3 lies in [2**46, 2**48): its top bit is 47 or 46.
        top = p3[47]
        mant = Signal(24)
        rnd = Signal()
        sticky = Signal()
        m.d.comb += [
            mant.eq(Mux(top, p3[24:48], p3[23:47])),
            rnd.eq(Mux(top, p3[23], p3[22])),
            sticky.eq(Mux(top, p3[:23].any(), p3[:22].any())),
        ]
        pr = Signal(25)
        m.d.comb += pr.eq(mant + (rnd & (sticky | mant[0])))
        pm4 = reg(24, "o_pm4")
        k4 = reg(signed(10), "o_k4")
        sign4 = reg(1, "o_sign4")
        zero4 = reg(1, "o_zero4")
        sat4 = reg(1, "o_sat4")
        m.d.sync += [
            pm4.eq(Mux(pr[24], 1 << 23, pr[:24])),
            k4.eq(e3 + 23 + top + pr[24]),
            sign4.eq(sign3), zero4.eq(zero3), sat4.eq(sat3),
        ]

        # float32 -> int32, round half to even, combinational into stage 5.
        # pm has bit 23 set, so k >= 8 means |f| >= 2**31: saturate (this also covers products
        # that overflowed float32 to inf). For k <= 7, |f| < 2**31 - 2**7 is exact or rounds
        # below 2**31. For k < -25, |f| < 2**24 * 2**-26 < 0.5 rounds to 0. In between, pm is
        # placed with 25 fraction bits: fixed = pm * 2**(k + 25), shift 0..32.
        fixed = Signal(24 + 33)
        m.d.comb += fixed.eq(pm4 << (k4 + 25)[:6])
        ip = fixed[25:]
        mag_y = Signal(32)
        m.d.comb += mag_y.eq(ip + (fixed[24] & (fixed[:24].any() | ip[0])))
        y = Signal(signed(32))
        with m.If(zero4 | (k4 < -25)):
            m.d.comb += y.eq(0)
        with m.Elif(sat4 | (k4 >= 8)):
            m.d.comb += y.eq(Mux(sign4, _INT32_MIN, _INT32_MAX))
        with m.Else():
            m.d.comb += y.eq(Mux(sign4, -mag_y, mag_y))
        return y
