"""One requantisation lane: an int32 accumulator (plus bias) to a clamped small integer.

The lane reproduces :mod:`rvnpu.sim.golden.requant` bit for bit in every mode it is built with
(:data:`rvnpu.spec.requant.MODES`): today TFLite/gemmlowp fixed point and ONNX Runtime float32.
Each mode is one path, a function below registered in :data:`PATHS` under the mode's name. The
float32 path is built from integer parts (normalise, multiply, round) rather than from a
floating-point core, because only one float operation is needed and exact IEEE rounding is the
whole point.
"""

from types import SimpleNamespace

from amaranth.hdl import Module, Signal, Const, Cat, Mux, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rvnpu.spec.commands import QP_ROWS, Funct, field_of
from rvnpu.spec.requant import MODE_NAMES, mode_named


__all__ = ["RequantLane", "PATHS"]


_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1


class RequantLane(wiring.Component):
    """Requantise one value a cycle, fully pipelined, with a fixed latency and no backpressure.

    ``acc + bias`` wraps to int32 and is scaled by the path of the mode ``mode`` selects (TFLITE:
    gemmlowp's ``MultiplyByQuantizedMultiplier``; ORT: a float32 multiply with round half to
    even); then ``out_zero`` is added and the sum is clamped. All paths built run side by side
    and ``mode`` picks one in stage 5; ``out_zero`` and the clamp act in stage 6.

    Parameters
    ----------
    modes : sequence of str
        Names of the modes to build (:data:`rvnpu.spec.requant.MODE_NAMES`, the default: all).
        A generator that needs one convention can drop the others (the ORT path is the larger
        one). With only one path built ``mode`` is ignored and every value takes that path.

    Members
    -------
    i_valid : In(1)
        ``acc``, ``bias`` and ``params`` hold a value this cycle.
    acc, bias : In(signed(32))
        Accumulator and bias; their sum wraps to 32 bits.
    params : In(data.ArrayLayout(32, QP_ROWS - 1))
        The value's per-channel parameters, the QP rows after the bias; each mode reads the rows
        its spec lists (:attr:`rvnpu.spec.requant.Mode.params`). TFLITE: ``params[0]`` the int32
        Q31 multiplier, ``params[1]`` the shift (left if positive, rounding right if negative;
        magnitudes over 31 act as 31). ORT: ``params[0]`` the float32 scale's bit pattern.
    mode : In(the ``mode`` field of CONFIG_REQUANT)
        :class:`~rvnpu.spec.requant.RequantMode`. Configuration (with ``out_zero``, ``clamp_min``
        and ``clamp_max``): not pipelined, so it must be held from the first ``i_valid`` to the
        last ``o_valid`` of the values it applies to.
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
    params: In(data.ArrayLayout(32, QP_ROWS - 1))
    mode: In(field_of(Funct.CONFIG_REQUANT, "mode").width)
    out_zero: In(signed(16))
    clamp_min: In(signed(16))
    clamp_max: In(signed(16))
    o_valid: Out(1)
    o_value: Out(signed(17))

    # Register stages: 1 the wrapped sum and each path's inputs; 2-4 the scaling (TFLite: shift,
    # 32x32 product, high half; ORT: int -> float, 24x24 product, float32 rounding); 5 the
    # chosen int32 result; 6 zero point and clamp.
    _LATENCY = 6

    def __init__(self, *, modes=MODE_NAMES):
        if isinstance(modes, str) or not all(isinstance(name, str) for name in modes):
            raise TypeError(f"modes must be a sequence of mode names, not {modes!r}")
        unknown = [name for name in modes if name not in PATHS]
        if unknown:
            raise ValueError(f"modes must be among {', '.join(MODE_NAMES)}, not {unknown[0]!r}")
        if not modes:
            raise ValueError("RequantLane needs at least one mode")
        # In code order, as the golden model and the front end see them.
        self._modes = tuple(name for name in MODE_NAMES if name in modes)
        super().__init__()

    @property
    def latency(self):
        """Cycles from a value on the inputs (``i_valid``) to its result (``o_valid``)."""
        return self._LATENCY

    @property
    def modes(self):
        """Names of the modes built, in code order."""
        return self._modes

    def elaborate(self, platform):
        m = Module()

        # Data registers carry no reset: only the valid chain must start empty.
        def reg(shape, name):
            return Signal(shape, name=name, reset_less=True)

        valid = Signal(self._LATENCY)
        m.d.sync += valid.eq(Cat(self.i_valid, valid[:-1]))
        m.d.comb += self.o_valid.eq(valid[-1])

        # -- Stage 1: the wrapped sum and its magnitude (each path registers its own inputs
        # beside them) -------------------------------------------------------------------------
        x1 = reg(signed(32), "x1")
        x = Signal(signed(32))
        m.d.comb += x.eq(self.acc + self.bias)     # truncated to 32 bits: the int32 wrap
        neg1, mag1 = reg(1, "neg1"), reg(32, "mag1")
        m.d.sync += [x1.eq(x), neg1.eq(x < 0),
                     mag1.eq(Mux(x < 0, -x, x))]   # |INT32_MIN| fits 32 bits
        sum1 = SimpleNamespace(value=x1, neg=neg1, mag=mag1)

        results = []
        for name in self._modes:
            mode = mode_named(name)
            params = {p.name: self.params[p.row - 1] for p in mode.params}
            results.append((mode.code, PATHS[name](m, reg, sum1, params)))

        # -- Stage 5: the chosen int32 result; the first path unless ``mode`` names another --
        y = results[0][1]
        for code, y_mode in results[1:]:
            y = Mux(self.mode == code, y_mode, y)
        y5 = reg(signed(32), "y5")
        m.d.sync += y5.eq(y)

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


# -- The paths -----------------------------------------------------------------------------------
#
# A path is ``path(m, reg, sum1, params) -> y``. ``sum1`` holds the stage-1 registers of the
# wrapped sum: ``value``, and its sign ``neg`` and magnitude ``mag``;
# ``params`` maps the names of the mode's parameters (:attr:`rvnpu.spec.requant.Mode.params`) to
# the lane's inputs, which the path registers in stage 1 as it needs them. ``y`` is the int32
# result, combinational from registers of stage 4, so that every path has the lane's latency.

def _tflite(m, reg, sum1, params):
    """The gemmlowp path: ``MultiplyByQuantizedMultiplier``."""
    x1 = sum1.value
    # Stage 1: the multiplier, and the shift split into two 5-bit amounts.
    mult1 = reg(32, "t_mult1")
    left1 = reg(5, "t_left1")
    right1 = reg(5, "t_right1")
    shift = params["shift"].as_signed()
    m.d.sync += [
        mult1.eq(params["multiplier"]),
        left1.eq(Mux(shift > 31, 31, Mux(shift < 0, 0, shift[:5]))),
        right1.eq(Mux(shift < -31, 31, Mux(shift > 0, 0, (-shift)[:5]))),
    ]

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
    # lab 4 hole begin: the lane's rounding right shift (ties away from zero)
    m.d.comb += bias.eq(half - ((s4 < 0) & (right4 != 0)))
    # lab 4 starter:
    # m.d.comb += bias.eq(half)
    # lab 4 hole end
    y = Signal(signed(32))
    m.d.comb += y.eq((s4 + bias) >> right4)
    return y


def _ort(m, reg, sum1, params):
    """The ONNX Runtime (MLAS) path: a float32 multiply, rounded half to even."""
    # Stage 1: the float32 scale's bit pattern.
    scale1 = reg(32, "o_scale1")
    m.d.sync += scale1.eq(params["scale"])

    # Stage 2: int32 -> float32 (round to nearest even) and the scale's fields.
    #
    # |x| (worked out in stage 1, which leaves this stage the leading zeros, the shift and
    # the rounding) is normalised so that its top set bit is bit 31; the top 24 bits are the
    # mantissa, bit 7 the round bit and bits 0-6 the sticky bits. Then x = xm * 2**xq.
    # Values below 2**24 have lz >= 8, so nothing is rounded away and the conversion is exact.
    neg_x, mag = sum1.neg, sum1.mag
    lz = Signal(range(32))
    for i in range(32):      # the highest set bit wins, so the last assignment sets lz
        with m.If(mag[i]):
            m.d.comb += lz.eq(31 - i)
    norm = Signal(32)
    m.d.comb += norm.eq(mag << lz)
    rounded = Signal(25)
    m.d.comb += rounded.eq(norm[8:] + (norm[7] & (norm[:7].any() | norm[8])))

    s_sign, s_exp, s_frac = scale1[31], scale1[23:31], scale1[:23]
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
    # lab 4 hole begin: the lane's float32 to int32 rounding (half to even)
    m.d.comb += mag_y.eq(ip + (fixed[24] & (fixed[:24].any() | ip[0])))
    # lab 4 starter:
    # m.d.comb += mag_y.eq(ip + fixed[24])
    # lab 4 hole end
    y = Signal(signed(32))
    with m.If(zero4 | (k4 < -25)):
        m.d.comb += y.eq(0)
    with m.Elif(sat4 | (k4 >= 8)):
        m.d.comb += y.eq(Mux(sign4, _INT32_MIN, _INT32_MAX))
    with m.Else():
        m.d.comb += y.eq(Mux(sign4, -mag_y, mag_y))
    return y


#: The hardware path of each mode, by the mode's name.
PATHS = {"tflite": _tflite, "ort": _ort}
