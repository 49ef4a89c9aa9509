"""QLinearAdd's float32 arithmetic, exactly, in integers: ``fma(a, ratio_a, fma(b, ratio_b,
fixed))`` rounded half to even to an integer and clamped.

Why integers: a float32 is a 24-bit significand times a power of two, so each fused
multiply-add is an integer product, an alignment and one rounding to 24 significant bits, as
``firmware/lib/eltwise.c`` explains. Here an addend shifted past the sum's rounding point is
kept as a sticky bit (jammed into the lowest bit of a window three bits wider than the
normalised operands), which is exact for every exponent, not only those that align in 63 bits.
Float32 subnormal results need no special rounding: every operand is a multiple of 2**-149, so
a sum below 2**-126 is one too and exactly a subnormal. Only overflow past float32's range is
not modelled; it saturates the clamp the same way an infinity would.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rvnpu.hdl.engine.delay import delayed


__all__ = ["QLinearAddPipeline", "Float", "ELEMENT", "FMA_STAGES", "decode_float",
           "fused_multiply_add"]

#: An element of either type: -128..255.
ELEMENT = signed(10)

#: A float as sign, magnitude and the exponent of the magnitude's lowest bit; the magnitude
#: holds up to 2**24 (a significand rounded up to the next power of two).
Float = data.StructLayout({"neg": 1, "mag": unsigned(25), "exp": signed(12)})

_NORM = 33          # normalised operand width: |a| * significand < 2**32, significands < 2**25
_GUARD = 3          # window bits below an operand; the lowest also holds the sticky bit
_WINDOW = _NORM + _GUARD


def _bit_length(m, value, name):
    """Bits of the unsigned ``value`` up to its highest one (0 for zero)."""
    length = Signal(range(len(value) + 1), name=name)
    for i in range(len(value)):
        with m.If(value[i]):
            m.d.comb += length.eq(i + 1)
    return length


def _round_shift(m, value, drop, max_drop, name):
    """``value >> drop`` rounded half to even, for ``drop <= max_drop``."""
    full = Signal(len(value) + max_drop, name=f"{name}_full")
    m.d.comb += full.eq((value << max_drop) >> drop)
    return _rounded(full, max_drop)


def _rounded(full, max_drop):
    """``full``'s bits above the lowest ``max_drop``, rounded half to even by those bits. The
    test for "above half" and "exactly half" is the dropped bits' top bit and an OR of the
    others, not a comparison's carry chain, so that the increment is the stage's one chain."""
    kept, rest = full[max_drop:], full[:max_drop]
    up = rest[-1] & ((rest[:-1] != 0) | kept[0])
    return kept + up


def decode_float(m, bits, name):
    """The :data:`Float` value of a float32 bit pattern (infinities and NaNs not handled)."""
    value = Signal(Float, name=name)
    biased, fraction = bits[23:31], bits[:23]
    normal = biased != 0
    m.d.comb += [value.neg.eq(bits[31]),
                 value.mag.eq(Mux(normal, fraction | (1 << 23), fraction)),
                 value.exp.eq(Mux(normal, biased - 150, -149))]
    return value


def _amount(m, value, limit, name):
    """The non-negative shift amount ``min(value, limit)`` as an unsigned signal."""
    amount = Signal(range(limit + 1), name=name)
    m.d.comb += amount.eq(Mux(value > limit, limit, Mux(value < 0, 0, value)))
    return amount


def _reg(m, value, name, shape=None):
    """``value`` one cycle later."""
    reg = Signal(shape if shape is not None else value.shape(), name=name)
    m.d.sync += reg.eq(value)
    return reg


#: Register stages of :func:`fused_multiply_add`. Each stage holds one carry chain or one
#: shifter, not both: at 90 MHz and more on an ECP5 a priority encoder feeding a barrel
#: shifter, or a shifter feeding a 38-bit adder, does not fit in a cycle.
FMA_STAGES = 8


def fused_multiply_add(m, name, n_mag, n_neg, r, c):
    """``fma(n, r, c)`` rounded to 24 significant bits, half to even, :data:`FMA_STAGES`
    cycles after ``n`` (an ``ELEMENT``, given as its magnitude ``n_mag`` and its sign
    ``n_neg``) and ``c`` (a :data:`Float`); ``r`` (a :data:`Float`) is held. Returns the
    :data:`Float` result."""
    # 1: the exact product, |n| * significand < 2**32.
    p_mag = _reg(m, n_mag * r.mag, f"{name}_p_mag", unsigned(32))
    p_neg = _reg(m, n_neg ^ r.neg, f"{name}_p_neg")
    p_exp = _reg(m, r.exp, f"{name}_p_exp", signed(12))
    c1 = _reg(m, c, f"{name}_c1", Float)

    # 2, 3: both addends normalised to _NORM bits, the leading one found in a stage before
    # the shift; `top` is the exponent just above the highest one (the value is below
    # 2**top), and a zero gets the lowest top of all.
    def normalise(mag, exp, neg, tag):
        length = _bit_length(m, mag, f"{name}_{tag}_len")
        up = _reg(m, _amount(m, _NORM - length, _NORM, f"{name}_{tag}_up_now"),
                  f"{name}_{tag}_up")
        mag1 = _reg(m, mag, f"{name}_{tag}_mag1")
        top = _reg(m, Mux(mag == 0, -(1 << 10), exp + length), f"{name}_{tag}_top1",
                   signed(12))
        zero, neg1 = _reg(m, mag == 0, f"{name}_{tag}_zero1"), _reg(m, neg, f"{name}_{tag}_neg1")
        return (_reg(m, mag1 << up, f"{name}_{tag}_norm", unsigned(_NORM)),
                _reg(m, top, f"{name}_{tag}_top"), _reg(m, zero, f"{name}_{tag}_zero"),
                _reg(m, neg1, f"{name}_{tag}_neg2"))

    p_norm, p_top, p_zero, p_neg2 = normalise(p_mag, p_exp, p_neg, "p")
    c_norm, c_top, c_zero, c_neg2 = normalise(c1.mag, c1.exp, c1.neg, "c")

    # 4: order the addends: A has the higher top, B is shifted under it by `gap` bits, at most
    # `far`. The comparison and the gap's subtraction get a stage of their own, off the
    # alignment's path: four subtractions side by side, whose signs say which top is higher
    # and whether the gap is past `far`, so that one carry chain is the stage's.
    far = _WINDOW + 1
    p_over, c_over = p_top - c_top, c_top - p_top
    p_far, c_far = p_top - c_top - (far + 1), c_top - p_top - (far + 1)
    swap = p_over < 0
    a_norm = _reg(m, Mux(swap, c_norm, p_norm), f"{name}_a_norm", unsigned(_NORM))
    b_norm = _reg(m, Mux(swap, p_norm, c_norm), f"{name}_b_norm", unsigned(_NORM))
    a_neg = _reg(m, Mux(swap, c_neg2, p_neg2), f"{name}_a_neg")
    b_neg = _reg(m, Mux(swap, p_neg2, c_neg2), f"{name}_b_neg")
    a_top = _reg(m, Mux(swap, c_top, p_top), f"{name}_a_top", signed(12))
    b_zero = _reg(m, Mux(swap, p_zero, c_zero), f"{name}_b_zero")
    align = _reg(m, Mux(swap, Mux(c_far < 0, c_over, far), Mux(p_far < 0, p_over, far)),
                 f"{name}_align", range(far + 1))

    # 5: align B. Bits of B shifted below the window are jammed into its lowest bit.
    shifted = Signal(_WINDOW + far, name=f"{name}_b_shifted")
    m.d.comb += shifted.eq((b_norm << (_GUARD + far)) >> align)
    b_window = _reg(m, Mux(b_zero, 0, shifted[far:] | (shifted[:far] != 0)),
                    f"{name}_b_window", unsigned(_WINDOW))
    a_window = _reg(m, a_norm << _GUARD, f"{name}_a_window", unsigned(_WINDOW))
    same = _reg(m, a_neg == b_neg, f"{name}_same")
    a_neg5 = _reg(m, a_neg, f"{name}_a_neg5")
    a_top5 = _reg(m, a_top, f"{name}_a_top5")

    # 6: add.
    total = Signal(signed(_WINDOW + 2), name=f"{name}_total")
    m.d.comb += total.eq(Mux(same, a_window + b_window, a_window - b_window))
    s_mag = _reg(m, abs(total), f"{name}_s_mag", unsigned(_WINDOW + 1))
    s_neg = _reg(m, a_neg5 ^ (total < 0), f"{name}_s_neg")
    s_exp = _reg(m, a_top5 - _WINDOW, f"{name}_s_exp", signed(12))

    # 7, 8: round the sum to 24 significant bits, half to even, the bits to drop found in a
    # stage before the shift.
    length = _bit_length(m, s_mag, f"{name}_s_len")
    max_drop = _WINDOW + 1 - 24
    drop = _reg(m, _amount(m, length - 24, max_drop, f"{name}_drop_now"), f"{name}_drop")
    s_mag7 = _reg(m, s_mag, f"{name}_s_mag7")
    s_neg7, s_exp7 = _reg(m, s_neg, f"{name}_s_neg7"), _reg(m, s_exp, f"{name}_s_exp7")
    out = Signal(Float, name=f"{name}_out")
    m.d.sync += [out.mag.eq(_round_shift(m, s_mag7, drop, max_drop, f"{name}_round")),
                 out.exp.eq(s_exp7 + drop), out.neg.eq(s_neg7)]
    return out


class QLinearAddPipeline(wiring.Component):
    """A pipeline taking one ``(a, b)`` pair a cycle, its result ``latency`` cycles later.

    It never stalls: whoever feeds it reserves room for what comes out. ``tag`` travels along
    with each pair.

    Members
    -------
    i_valid, a, b, tag : In
        A pair of elements (``ELEMENT``) and ``tag_width`` bits that come out with its result.
    constants : In
        The float32 bit patterns ratio_a, ratio_b, fixed (``PostConstant`` order); held from
        the cycle a pair comes in until its result is out.
    clamp_min, clamp_max : In
    o_valid, value, o_tag : Out
        The result, clamped (so it fits ``ELEMENT`` when the clamp does).
    """

    #: The elements' magnitudes, two fused multiply-adds, then the rounding to an integer
    #: (its shift amount, the shift, the increment), the sign and the clamp.
    latency = 1 + 2 * FMA_STAGES + 5

    def __init__(self, tag_width=1):
        super().__init__({
            "i_valid":   In(1),
            "a":         In(ELEMENT),
            "b":         In(ELEMENT),
            "tag":       In(tag_width),
            "constants": In(data.ArrayLayout(32, 3)),
            "clamp_min": In(signed(16)),
            "clamp_max": In(signed(16)),
            "o_valid":   Out(1),
            "value":     Out(signed(16)),
            "o_tag":     Out(tag_width),
        })

    def elaborate(self, platform):
        m = Module()
        # The constants change only between commands: registering their decoding keeps it
        # off the arithmetic's path.
        ratio_a, ratio_b, fixed = (_reg(m, decode_float(m, bits, f"{name}_bits"), name, Float)
                                   for bits, name in
                                   zip(self.constants, ("ratio_a", "ratio_b", "fixed")))

        # 0: each element's magnitude and sign, registered, so that the multipliers' operands
        # come from flip-flops, not from whatever chose the element (a lane, a skip column).
        a_mag, b_mag = (_reg(m, abs(e), f"{n}_mag", unsigned(8))
                        for e, n in ((self.a, "a"), (self.b, "b")))
        a_neg, b_neg = (_reg(m, e < 0, f"{n}_neg") for e, n in ((self.a, "a"), (self.b, "b")))

        a_mag_late = delayed(m, a_mag, FMA_STAGES, name="a_mag_late")
        a_neg_late = delayed(m, a_neg, FMA_STAGES, name="a_neg_late")
        t = fused_multiply_add(m, "fma_b", b_mag, b_neg, ratio_b, fixed)
        v = fused_multiply_add(m, "fma_a", a_mag_late, a_neg_late, ratio_a, t)

        # Round to an integer, half to even; 2**20 stands for whatever no clamp can reach.
        # The bits to drop, the shift and the increment a stage each, then the sign, then the
        # clamp.
        max_drop = 26
        drop = _reg(m, _amount(m, -v.exp, max_drop, "to_int_drop_now"), "to_int_drop")
        mag1 = _reg(m, v.mag, "to_int_mag1")
        left = _reg(m, v.mag << v.exp[:4], "to_int_left", unsigned(36))
        # What the exponent says: 0, a left shift, past any clamp, or a right shift.
        kind = _reg(m, Mux(v.mag == 0, 0, Mux(v.exp >= 0, Mux(v.exp >= 10, 2, 1), 3)),
                    "to_int_kind", unsigned(2))
        neg1 = _reg(m, v.neg, "to_int_neg1")
        full = _reg(m, (mag1 << max_drop) >> drop, "to_int_full", unsigned(25 + max_drop))
        left2, kind2, neg2 = (_reg(m, x, f"to_int_{n}2") for x, n in
                              ((left, "left"), (kind, "kind"), (neg1, "neg")))
        magnitude = _reg(m, Mux(kind2 == 0, 0, Mux(kind2 == 1, left2,
                                                     Mux(kind2 == 2, 1 << 20,
                                                         _rounded(full, max_drop)))),
                         "magnitude", unsigned(37))
        negative = _reg(m, neg2, "negative")
        rounded = _reg(m, Mux(negative, -magnitude, magnitude), "rounded", signed(38))
        clamped = Mux(rounded < self.clamp_min, self.clamp_min,
                      Mux(rounded > self.clamp_max, self.clamp_max, rounded))
        m.d.sync += self.value.eq(clamped)
        m.d.comb += [self.o_valid.eq(delayed(m, self.i_valid, self.latency, name="valid")),
                     self.o_tag.eq(delayed(m, self.tag, self.latency, name="tag"))]
        return m
