/*
 * Element-wise operations for rvnpu_eltwise.h.
 */
#include "rvnpu.h"

/* Round half to even: for |v| < 2^22, adding and taking away 1.5 * 2^23 leaves v rounded to
 * an integer the way float32 addition rounds, to nearest even (rintf without a libm; IEEE
 * semantics keep the compiler from folding the two steps). */
static int32_t round_even(float v)
{
    const float magic = 12582912.0f;
    return (int32_t)((v + magic) - magic);
}

int rvnpu_qlinear_add(const rvnpu_qadd_t *add)
{
    const uint8_t *a = (const uint8_t *)add->a, *b = (const uint8_t *)add->b;
    uint8_t *c = (uint8_t *)add->c;
    const float lo = (float)add->clamp_min, hi = (float)add->clamp_max;
    for (uint32_t i = 0; i < add->count; i++) {
        int32_t x = add->is_unsigned ? a[i] : (int8_t)a[i];
        int32_t y = add->is_unsigned ? b[i] : (int8_t)b[i];
        float v = __builtin_fmaf((float)x, add->ratio_a,
                                 __builtin_fmaf((float)y, add->ratio_b, add->fixed));
        /* Clamping before rounding gives the same integers (the bounds are integers and
         * rounding is monotonic) and keeps v in round_even's range. */
        v = v < lo ? lo : v > hi ? hi : v;
        c[i] = (uint8_t)round_even(v);
    }
    return RVNPU_GEMM_OK;
}
