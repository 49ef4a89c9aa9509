/*
 * Element-wise operations for rvnpu_eltwise.h.
 *
 * QLinearAdd's two fused multiply-adds are evaluated exactly in integers: a float32 is a
 * 24-bit significand times a power of two, the product of a small integer and a significand
 * fits 40 bits, and aligned to the other addend the sum fits 63 bits; rounding that sum to 24
 * significant bits, to nearest even, is the float32 result fmaf returns. That costs the core
 * a few hundred cycles where the soft-float fmaf costs thousands. Addends too far apart in
 * magnitude to align in 63 bits (no quantised model has them) take the soft-float path.
 */
#include "rvnpu.h"

/* A float32 as significand * 2^exponent (|significand| < 2^24); 0 for infinities and NaNs. */
static int decode(float value, int32_t *significand, int32_t *exponent)
{
    union { float f; uint32_t u; } bits = {value};
    uint32_t biased = bits.u >> 23 & 0xFF, fraction = bits.u & 0x7FFFFF;
    if (biased == 0xFF)
        return 0;
    *significand = (int32_t)(biased ? fraction | 0x800000 : fraction);
    *exponent = biased ? (int32_t)biased - 150 : -149;
    if (bits.u >> 31)
        *significand = -*significand;
    return 1;
}

/* |value| rounded to `bits` significant bits, to nearest even; *exponent grows by the bits
 * dropped. */
static uint64_t round_bits(uint64_t magnitude, uint32_t bits, int32_t *exponent)
{
    if (!magnitude)
        return 0;
    uint32_t length = 64 - (uint32_t)__builtin_clzll(magnitude);
    if (length <= bits)
        return magnitude;
    uint32_t drop = length - bits;
    uint64_t kept = magnitude >> drop, rest = magnitude & ((1ull << drop) - 1);
    uint64_t half = 1ull << (drop - 1);
    if (rest > half || (rest == half && (kept & 1)))
        kept++;
    *exponent += (int32_t)drop;
    return kept;
}

/* fmaf(n, r, c) for a small integer n, with r = r_sig * 2^r_exp and c = *c_sig * 2^*c_exp;
 * the float32 result replaces c. Returns 0 (c untouched) if the addends are too far apart. */
static int fma_exact(int32_t n, int32_t r_sig, int32_t r_exp, int64_t *c_sig, int32_t *c_exp)
{
    int64_t product = (int64_t)n * r_sig, sum;
    int32_t exponent;
    if (!product) {
        return 1;                          /* c is already a float32 */
    } else if (!*c_sig) {
        sum = product;
        exponent = r_exp;
    } else if (r_exp >= *c_exp) {
        if (r_exp - *c_exp > 29)           /* |product| < 2^32: the shift keeps 62 bits */
            return 0;
        /* Shifted as unsigned: a left shift of a negative signed value is undefined. */
        sum = (int64_t)((uint64_t)product << (r_exp - *c_exp)) + *c_sig;
        exponent = *c_exp;
    } else {
        if (*c_exp - r_exp > 37)           /* |c| <= 2^24 */
            return 0;
        sum = product + (int64_t)((uint64_t)*c_sig << (*c_exp - r_exp));
        exponent = r_exp;
    }
    uint64_t magnitude = round_bits(sum < 0 ? -(uint64_t)sum : (uint64_t)sum, 24, &exponent);
    *c_sig = sum < 0 ? -(int64_t)magnitude : (int64_t)magnitude;
    *c_exp = exponent;
    return 1;
}

/* significand * 2^exponent rounded half to even and clamped to [lo, hi]. */
static int32_t round_clamp(int64_t significand, int32_t exponent, int32_t lo, int32_t hi)
{
    uint64_t magnitude = significand < 0 ? -(uint64_t)significand : (uint64_t)significand;
    int64_t value;
    if (exponent >= 0) {
        value = exponent > 31 || magnitude >> (31 - exponent) ? (int64_t)1 << 32
                                                              : (int64_t)(magnitude << exponent);
    } else {
        uint32_t drop = (uint32_t)-exponent;
        if (drop > 40) {
            value = 0;                     /* |v| < 2^-15 */
        } else {
            uint64_t kept = magnitude >> drop, rest = magnitude & ((1ull << drop) - 1);
            uint64_t half = 1ull << (drop - 1);
            value = (int64_t)(kept + (rest > half || (rest == half && (kept & 1))));
        }
    }
    if (significand < 0)
        value = -value;
    return value < lo ? lo : value > hi ? hi : (int32_t)value;
}

/* The soft-float evaluation, for what fma_exact declines. */
static int32_t add_float(const rvnpu_qadd_t *add, int32_t x, int32_t y)
{
    const float lo = (float)add->clamp_min, hi = (float)add->clamp_max;
    float v = __builtin_fmaf((float)x, add->ratio_a,
                             __builtin_fmaf((float)y, add->ratio_b, add->fixed));
    /* Clamping before rounding gives the same integers (the bounds are integers and
     * rounding is monotonic) and keeps v where adding 1.5 * 2^23 rounds it to an integer. */
    v = v < lo ? lo : v > hi ? hi : v;
    const float magic = 12582912.0f;
    return (int32_t)((v + magic) - magic);
}

int rvnpu_qlinear_add(const rvnpu_qadd_t *add)
{
    const uint8_t *a = (const uint8_t *)add->a, *b = (const uint8_t *)add->b;
    uint8_t *c = (uint8_t *)add->c;
    int32_t ra_sig, ra_exp, rb_sig, rb_exp, f_sig, f_exp;
    int exact = decode(add->ratio_a, &ra_sig, &ra_exp) &&
                decode(add->ratio_b, &rb_sig, &rb_exp) && decode(add->fixed, &f_sig, &f_exp);
    for (uint32_t i = 0; i < add->count; i++) {
        int32_t x = add->is_unsigned ? a[i] : (int8_t)a[i];
        int32_t y = add->is_unsigned ? b[i] : (int8_t)b[i];
        int64_t v_sig = f_sig;
        int32_t v_exp = f_exp;
        if (exact && fma_exact(y, rb_sig, rb_exp, &v_sig, &v_exp) &&
            fma_exact(x, ra_sig, ra_exp, &v_sig, &v_exp))
            c[i] = (uint8_t)round_clamp(v_sig, v_exp, add->clamp_min, add->clamp_max);
        else
            c[i] = (uint8_t)add_float(add, x, y);
    }
    return RVNPU_GEMM_OK;
}

void rvnpu_lookup8(const uint8_t *table, const void *input, void *output, uint32_t count)
{
    const uint8_t *in = (const uint8_t *)input;
    uint8_t *out = (uint8_t *)output;
    for (uint32_t i = 0; i < count; i++)
        out[i] = table[in[i]];
}
