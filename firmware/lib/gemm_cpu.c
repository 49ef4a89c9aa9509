/*
 * The GEMM on the core alone: the reference the self-test checks the engine against, written
 * from the gemmlowp definitions as rvnpu/sim/golden/requant.py is (TFLite mode and raw sums).
 */
#include "rvnpu.h"

#define IN_WIDTH RVNPU_ENGINE_IN_WIDTH
#define EB RVNPU_ENGINE_ELEM_BYTES

/* The core shifts one bit a cycle, so a sign extension by shifts costs ~60 cycles: where
 * elements fill their bytes, sign- or zero-extending byte loads do it for free. */
static int32_t element(const uint8_t *p, uint32_t is_unsigned)
{
    if (IN_WIDTH == 8 && EB == 1)
        return is_unsigned ? (int32_t)p[0] : (int32_t)(int8_t)p[0];
    if (IN_WIDTH == 16 && EB == 2) {
        uint32_t high = is_unsigned ? (uint32_t)p[1] : (uint32_t)(int32_t)(int8_t)p[1];
        return (int32_t)(p[0] | high << 8);
    }
    uint32_t raw = EB == 2 ? (uint32_t)(p[0] | p[1] << 8) : p[0];
    raw &= (1u << IN_WIDTH) - 1;
    if (!is_unsigned && (raw >> (IN_WIDTH - 1)))
        return (int32_t)raw - (int32_t)(1u << IN_WIDTH);
    return (int32_t)raw;
}

#if RVNPU_WITH_M
#define mul_wide(a, b) ((int64_t)(a) * (b))
#else
/* a * b to 64 bits on a core that multiplies in software: one shift-and-add pass over b's
 * bits, where compiler-rt's 64-bit multiply makes several 32-bit ones. Shifts by one bit
 * only (the core shifts a bit a cycle): doubling by addition, the carry by a sign test. */
static int64_t mul_wide(int32_t a, int32_t b)
{
    uint32_t ub = b < 0 ? 0u - (uint32_t)b : (uint32_t)b;
    uint32_t add_lo = a < 0 ? 0u - (uint32_t)a : (uint32_t)a, add_hi = 0;
    uint32_t lo = 0, hi = 0;
    while (ub) {
        if (ub & 1) {
            lo += add_lo;
            hi += add_hi + (lo < add_lo);
        }
        add_hi = add_hi + add_hi + ((int32_t)add_lo < 0);
        add_lo += add_lo;
        ub >>= 1;
    }
    uint64_t p = (uint64_t)hi << 32 | lo;
    return (a < 0) != (b < 0) ? -(int64_t)p : (int64_t)p;
}
#endif

/* gemmlowp SaturatingRoundingDoublingHighMul. */
static int32_t srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN)
        return INT32_MAX;
    int64_t ab = mul_wide(a, b);
    int64_t nudge = ab >= 0 ? (1 << 30) : 1 - (1 << 30);
    int64_t x = ab + nudge;
    /* Division by 2**31 truncating toward zero, as in C++; not a floor shift. */
    return (int32_t)(x >= 0 ? x >> 31 : -((-x) >> 31));
}

/* gemmlowp RoundingDivideByPOT, ties away from zero. */
static int32_t rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    int32_t mask = (int32_t)((1u << exponent) - 1);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0);
    return (x >> exponent) + (remainder > threshold);
}

static int32_t clamp_shift(int32_t v)
{
    return v < 0 ? 0 : v > 31 ? 31 : v;
}

int32_t rvnpu_requant_tflite(int32_t acc, uint32_t n, const rvnpu_requant_t *q)
{
    int32_t x = (int32_t)((uint32_t)acc + (uint32_t)(q->bias ? q->bias[n] : 0));
    int32_t shift = q->shift ? q->shift[n] : q->shift_all;
    int32_t multiplier = q->multiplier ? q->multiplier[n] : q->multiplier_all;
    int32_t y = srdhm((int32_t)((uint32_t)x << clamp_shift(shift)), multiplier);
    y = rounding_divide_by_pot(y, clamp_shift(-shift));
    int32_t z = y + q->out_zero;
    z = z < q->clamp_min ? q->clamp_min : z;
    return z > q->clamp_max ? q->clamp_max : z;
}

void rvnpu_put_element(void *out, int32_t value)
{
    uint8_t *p = (uint8_t *)out;
    p[0] = (uint8_t)value;
    if (EB == 2)
        p[1] = (uint8_t)((uint32_t)value >> 8);
}

int rvnpu_gemm_cpu(const rvnpu_gemm_t *g)
{
    const rvnpu_requant_t *q = &g->requant;
    if (!g->m || !g->n || !g->k)
        return RVNPU_GEMM_BAD_SHAPE;
    if (q->mode != RVNPU_GEMM_TFLITE && q->mode != RVNPU_GEMM_RAW)
        return RVNPU_GEMM_BAD_MODE;
    /* Pointers step through the operands so that the one multiply of each step is the
     * product itself: on a core whose MUL takes tens of cycles, index arithmetic would
     * cost more than the sum. */
    const uint32_t b_row_bytes = g->n * EB;
    const uint8_t *a_row = (const uint8_t *)g->a;
    for (uint32_t i = 0; i < g->m; i++, a_row += g->k * EB) {
        for (uint32_t n = 0; n < g->n; n++) {
            uint32_t acc = 0;          /* int32 sums wrap */
            const uint8_t *pa = a_row, *pb = (const uint8_t *)g->b + n * EB;
            for (uint32_t k = 0; k < g->k; k++, pa += EB, pb += b_row_bytes) {
                int32_t a = element(pa, g->a_unsigned) - g->a_zero;
                int32_t b = element(pb, g->b_unsigned) - g->b_zero;
                acc += (uint32_t)a * (uint32_t)b;
            }
            uint32_t index = i * g->n + n;
            if (q->mode == RVNPU_GEMM_RAW) {
                ((int32_t *)g->c)[index] = (int32_t)acc;
                continue;
            }
            rvnpu_put_element((uint8_t *)g->c + index * EB,
                              rvnpu_requant_tflite((int32_t)acc, n, q));
        }
    }
    return RVNPU_GEMM_OK;
}
