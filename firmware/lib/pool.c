/*
 * Average pooling for rvnpu_conv.h, on the core, step for step as sim/golden/pool.py.
 *
 * The float32 steps are written as plain C float operations, which the compiler turns into
 * correctly rounded soft-float calls (no contraction into fused multiply-adds: the core has
 * none), so each step rounds as onnxruntime's on x86-64 does.
 */
#include "rvnpu.h"

/* nearbyint(v) for |v| < 2^22 (the caller clamps first): adding 1.5 * 2^23 leaves no
 * fraction bits, so the addition rounds half to even. */
static int32_t round_even(float v)
{
    const float magic = 12582912.0f;
    return (int32_t)((v + magic) - magic);
}

/* Clamping before rounding gives the same integers: the bounds are integers and rounding is
 * monotonic. */
static int32_t round_clamp(float v, int32_t lo, int32_t hi)
{
    const float flo = (float)lo, fhi = (float)hi;
    v = v < flo ? flo : v > fhi ? fhi : v;
    return round_even(v);
}

static int32_t element(const uint8_t *p, uint32_t is_unsigned)
{
    return is_unsigned ? (int32_t)*p : (int32_t)(int8_t)*p;
}

/* MLAS's global average: integer sums, one float32 multiply. */
static void global_average(const rvnpu_avgpool2d_t *pool)
{
    const uint32_t count = pool->in_h * pool->in_w, channels = pool->channels;
    const float scale = pool->in_scale / (pool->out_scale * (float)count);
    const uint8_t *input = (const uint8_t *)pool->input;
    uint8_t *output = (uint8_t *)pool->output;
    for (uint32_t c = 0; c < channels; c++) {
        int32_t acc = -pool->in_zero * (int32_t)count;
        const uint8_t *p = input + c;
        for (uint32_t i = 0; i < count; i++, p += channels)
            acc += element(p, pool->is_unsigned);
        /* rint(acc * scale) + out_zero, clamped: the bounds move by the zero point. */
        output[c] = (uint8_t)(round_clamp((float)acc * scale, pool->clamp_min - pool->out_zero,
                                          pool->clamp_max - pool->out_zero) + pool->out_zero);
    }
}

int rvnpu_avgpool2d(const rvnpu_avgpool2d_t *pool)
{
    const uint32_t out_h = rvnpu_pool_out_size(pool->in_h, pool->kernel_h, pool->stride_h,
                                               pool->pad_top, pool->pad_bottom, pool->ceil_mode);
    const uint32_t out_w = rvnpu_pool_out_size(pool->in_w, pool->kernel_w, pool->stride_w,
                                               pool->pad_left, pool->pad_right, pool->ceil_mode);
    if (!out_h || !out_w || !pool->channels)
        return RVNPU_GEMM_BAD_SHAPE;
    if (pool->kernel_h == pool->in_h && pool->kernel_w == pool->in_w && !pool->pad_top &&
        !pool->pad_left && !pool->pad_bottom && !pool->pad_right) {
        global_average(pool);
        return RVNPU_GEMM_OK;
    }
    float *value = pool->workspace;
    for (uint32_t b = 0; b < 256; b++) {
        int32_t x = pool->is_unsigned ? (int32_t)b : (int32_t)(int8_t)b;
        value[b] = pool->in_scale * (float)(x - pool->in_zero);
    }
    const uint32_t channels = pool->channels, in_h = pool->in_h, in_w = pool->in_w;
    const uint32_t row_bytes = in_w * channels;
    const uint8_t *input = (const uint8_t *)pool->input;
    uint8_t *dst = (uint8_t *)pool->output;
    const float out_zero = (float)pool->out_zero;
    const int32_t lo = pool->clamp_min, hi = pool->clamp_max;
    for (uint32_t oy = 0; oy < out_h; oy++) {
        int32_t y0 = (int32_t)(oy * pool->stride_h) - (int32_t)pool->pad_top;
        int32_t y1 = y0 + (int32_t)pool->kernel_h;
        y1 = y1 < (int32_t)in_h ? y1 : (int32_t)in_h;
        y0 = y0 > 0 ? y0 : 0;
        for (uint32_t ox = 0; ox < out_w; ox++) {
            int32_t x0 = (int32_t)(ox * pool->stride_w) - (int32_t)pool->pad_left;
            int32_t x1 = x0 + (int32_t)pool->kernel_w;
            x1 = x1 < (int32_t)in_w ? x1 : (int32_t)in_w;
            x0 = x0 > 0 ? x0 : 0;
            const uint32_t count = pool->count_include_pad
                ? pool->kernel_h * pool->kernel_w : (uint32_t)((y1 - y0) * (x1 - x0));
            const float divisor = (float)count;
            const uint8_t *corner = input + (uint32_t)y0 * row_bytes + (uint32_t)x0 * channels;
            for (uint32_t c = 0; c < channels; c++) {
                float total = 0.0f;
                const uint8_t *row = corner + c;
                for (int32_t y = y0; y < y1; y++, row += row_bytes) {
                    const uint8_t *p = row;
                    for (int32_t x = x0; x < x1; x++, p += channels)
                        total = total + value[*p];
                }
                float mean = total / divisor;
                float q = mean / pool->out_scale + out_zero;
                *dst++ = (uint8_t)round_clamp(q, lo, hi);
            }
        }
    }
    return RVNPU_GEMM_OK;
}
