"""Golden model of requantisation: int32 accumulators to small integers.

Two conventions are modelled bit for bit, because a deployed network is only reproduced exactly
if the engine rounds the way the framework that quantised it does:

* **TFLite / gemmlowp**: a Q31 fixed-point multiplier and a power-of-two shift
  (``MultiplyByQuantizedMultiplier``: ``SaturatingRoundingDoublingHighMul`` then
  ``RoundingDivideByPOT``).
* **ONNX Runtime** (CPU, MLAS ``MlasRequantizeOutput``): a float32 scale, a float32 multiply and
  round half to even.

The modes themselves (names, codes, parameters) are listed once in :mod:`rvnpu.spec.requant`;
:func:`requantize` runs any of them, and :func:`qp_words` / :func:`qp_values` convert their
per-channel parameters to and from the 32-bit words of the QP memory.

The vectorised functions take numpy arrays (or anything :func:`numpy.asarray` takes) and
broadcast their arguments; all integer arithmetic is done in int64 so that nothing overflows
silently. :func:`requantize_tflite_scalar` is a second, independently written scalar model of
the TFLite path, kept only so that tests can cross-check the vectorised one.
"""

import math
import sys

import numpy as np


__all__ = [
    "INT32_MIN", "INT32_MAX",
    "wrap_to_int32", "srdhm", "rounding_divide_by_pot",
    "requantize_tflite", "requantize_ort", "quantize_multiplier",
    "float32_bits", "bits_float32", "requantize_tflite_scalar",
    "golden_function", "requantize", "qp_words", "qp_values",
]


INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def _i64(x):
    return np.asarray(x, dtype=np.int64)


def wrap_to_int32(x):
    """Keep the low 32 bits of ``x`` as a signed value, as two's-complement hardware does."""
    return ((_i64(x) + (1 << 31)) & 0xFFFF_FFFF) - (1 << 31)


def _trunc_shift(v, n):
    """``v / 2**n`` rounded toward zero (C integer division), not toward minus infinity."""
    return np.where(v >= 0, v >> n, -((-v) >> n))


def srdhm(a, b):
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` of int32 values.

    The high 32 bits of ``2 * a * b``, rounded to nearest with ties away from zero. The one
    product that does not fit, ``INT32_MIN * INT32_MIN``, saturates to ``INT32_MAX``.

    The nudge is applied before a *truncating* division, as in the C++ source; a floor division
    would round negative products differently.
    """
    a, b = _i64(a), _i64(b)
    # lab 4 hole begin: SaturatingRoundingDoublingHighMul (nudge, truncating divide, saturate)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = _trunc_shift(ab + nudge, 31)
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    return np.where(overflow, INT32_MAX, high)
    # lab 4 starter:
    # return (a * b) >> 31
    # lab 4 hole end


def rounding_divide_by_pot(x, exponent):
    """gemmlowp ``RoundingDivideByPOT``: ``x / 2**exponent``, ties away from zero.

    ``exponent`` must be in 0..31.
    """
    x, e = _i64(x), _i64(exponent)
    # lab 4 hole begin: RoundingDivideByPOT (round to nearest, ties away from zero)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)
    # lab 4 starter:
    # return x >> e
    # lab 4 hole end


def _clamp(y, out_zero, clamp_min, clamp_max):
    # max then min, like np.clip: if clamp_min > clamp_max every result is clamp_max (the
    # hardware lane does the same).
    z = _i64(y) + _i64(out_zero)
    return np.minimum(np.maximum(z, _i64(clamp_min)), _i64(clamp_max))


def requantize_tflite(acc, bias, multiplier, shift, out_zero, clamp_min, clamp_max):
    """TFLite requantisation of ``acc + bias``; returns an int64 array.

    Parameters
    ----------
    acc, bias : int32 values
        Their sum wraps to 32 bits, as the int32 addition in the TFLite kernels does.
    multiplier : int32 values
        Q31 fixed-point multiplier (see :func:`quantize_multiplier`).
    shift : int values
        Positive: left shift before the multiply; negative: rounding right shift after it.
        Magnitudes above 31 act as 31 (the hardware shifter is 5 bits wide).
    out_zero, clamp_min, clamp_max : int values
        Output zero point, then the clamp (ReLU, ReLU6 and the output type's range).
    """
    x = wrap_to_int32(_i64(acc) + _i64(bias))
    shift = _i64(shift)
    left = np.clip(shift, 0, 31)
    right = np.clip(-shift, 0, 31)
    # TFLite computes x * (1 << left) in int32; the overflow wraps on every target we match.
    y = rounding_divide_by_pot(srdhm(wrap_to_int32(x << left), multiplier), right)
    return _clamp(y, out_zero, clamp_min, clamp_max)


def float32_bits(x):
    """The uint32 bit patterns of ``x`` rounded to float32 (too large values become inf)."""
    with np.errstate(over="ignore"):
        return np.asarray(x, dtype=np.float32).view(np.uint32)


def bits_float32(u):
    """The float32 values whose bit patterns are the low 32 bits of ``u``."""
    return (_i64(u) & 0xFFFF_FFFF).astype(np.uint32).view(np.float32)


def requantize_ort(acc, bias, scale_bits, out_zero, clamp_min, clamp_max):
    """ONNX Runtime (MLAS) requantisation of ``acc + bias``; returns an int64 array.

    ``scale_bits`` are the bit patterns of float32 scales, so that the model and the hardware
    see exactly the same scale. The int32 sum is converted to float32 (round to nearest even),
    multiplied in float32 and rounded half to even. A NaN product (NaN scale, or ``0 * inf``) is
    taken as 0; infinities and other values beyond int32 saturate.

    MLAS clamps in float32 to ``[clamp_min - out_zero, clamp_max - out_zero]`` and then rounds;
    because those bounds are integers and rounding is monotonic, rounding first and clamping
    the integer afterwards gives the same result.
    """
    x = wrap_to_int32(_i64(acc) + _i64(bias))
    scale = bits_float32(scale_bits)
    # lab 4 hole begin: the float32 product, rounded half to even and saturated
    with np.errstate(over="ignore", invalid="ignore"):
        f = x.astype(np.float32) * scale
    f = np.where(np.isnan(f), np.float32(0), f).astype(np.float64)
    y = np.clip(np.rint(f), INT32_MIN, INT32_MAX).astype(np.int64)
    # lab 4 starter:
    # f = x.astype(np.float64) * scale.astype(np.float64)
    # y = np.clip(np.floor(np.nan_to_num(f) + 0.5), INT32_MIN, INT32_MAX).astype(np.int64)
    # lab 4 hole end
    return _clamp(y, out_zero, clamp_min, clamp_max)


def quantize_multiplier(real_multiplier):
    """TFLite ``QuantizeMultiplier``: a float scale as ``(multiplier, shift)``.

    ``real_multiplier ~= multiplier * 2**(shift - 31)`` with ``multiplier`` a Q31 value in
    ``[2**30, 2**31)`` (negated for negative scales). Scales below about ``2**-32`` become
    ``(0, 0)``, as in TFLite, which flushes them to zero rather than shift by more than 31.
    """
    real_multiplier = float(real_multiplier)
    if real_multiplier == 0.0:
        return 0, 0
    frac, shift = math.frexp(real_multiplier)
    # std::round: half away from zero. frac * 2**31 is exact in a double.
    scaled = abs(frac) * (1 << 31)
    q = int(math.floor(scaled + 0.5))
    if frac < 0:
        q = -q
    if abs(q) == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q, shift


def requantize_tflite_scalar(acc, bias, multiplier, shift, out_zero, clamp_min, clamp_max):
    """The TFLite path for one value, in plain Python integers (test cross-check only).

    Written from the gemmlowp definitions rather than from the vectorised code above: explicit
    truncating division, explicit modular wrap, explicit comparisons.
    """
    def wrap(v):
        v %= 1 << 32
        return v - (1 << 32) if v >= 1 << 31 else v

    def c_div(n, d):
        q = abs(n) // abs(d)
        return q if (n < 0) == (d < 0) else -q

    x = wrap(acc + bias)
    left = min(max(shift, 0), 31)
    right = min(max(-shift, 0), 31)
    a = wrap(x * 2 ** left)
    if a == INT32_MIN and multiplier == INT32_MIN:
        high = INT32_MAX
    else:
        ab = a * multiplier
        high = c_div(ab + (2 ** 30 if ab >= 0 else 1 - 2 ** 30), 2 ** 31)
    mask = 2 ** right - 1
    rem = high & mask
    threshold = (mask >> 1) + (1 if high < 0 else 0)
    y = (high >> right) + (1 if rem > threshold else 0)
    return min(max(y + out_zero, clamp_min), clamp_max)


# -- Any mode, by its spec ----------------------------------------------------------------------

def golden_function(mode):
    """The function defining :class:`~rvnpu.spec.requant.Mode` ``mode``, named by its spec."""
    return getattr(sys.modules[__name__], mode.golden)


def requantize(mode, acc, bias, params, out_zero, clamp_min, clamp_max):
    """Requantise with ``mode``; ``params`` as :func:`qp_values` gives them, in the order of
    ``mode.params``."""
    return golden_function(mode)(acc, bias, *params, out_zero, clamp_min, clamp_max)


def qp_words(values, kind):
    """Parameter values as the uint32 words of their QP row; ``kind`` as
    :attr:`rvnpu.spec.requant.QpParam.kind`."""
    if kind == "int32":
        return (np.asarray(values, np.int64) & 0xFFFF_FFFF).astype(np.uint32)
    if kind == "float32":
        return float32_bits(values)
    raise ValueError(f"QP parameter kind must be int32 or float32, not {kind!r}")


def qp_values(words, kind):
    """QP words as the values a golden function takes: int32 values, or float32 bit patterns
    (which the float32 functions take, so that model and hardware see the same scale)."""
    words = np.asarray(words, np.uint32)
    if kind == "int32":
        return words.view(np.int32).astype(np.int64)
    if kind == "float32":
        return words
    raise ValueError(f"QP parameter kind must be int32 or float32, not {kind!r}")


def tflite_params_for_scale(scale):
    """Per-channel real ``scale`` as gemmlowp's Q31 ``multiplier`` and power-of-two ``shift``."""
    mantissa, exponent = np.frexp(np.asarray(scale, np.float64))
    multiplier = np.minimum(np.round(mantissa * (1 << 31)), (1 << 31) - 1).astype(np.int64)
    return {"multiplier": multiplier, "shift": exponent.astype(np.int64)}


def ort_params_for_scale(scale):
    """Per-channel real ``scale`` as ONNX Runtime holds it: float32."""
    return {"scale": np.asarray(scale, np.float32)}


def params_for_scale(mode, scale):
    """The :class:`~rvnpu.sim.golden.gemm.Requant` parameters with which ``mode`` (a
    :class:`~rvnpu.spec.requant.Mode`) multiplies by the real ``scale``: what random workloads
    and examples use to pick parameters in any mode. Each mode has a
    ``<name>_params_for_scale`` function here."""
    return getattr(sys.modules[__name__], f"{mode.name}_params_for_scale")(scale)
