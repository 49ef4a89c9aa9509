/*
 * Convolution as im2col + GEMM, and max-pooling, for rvnpu_conv.h.
 *
 * The core builds the patch matrix and the engine does the arithmetic: copying is all the core
 * can do quickly, and it keeps one tiled GEMM (and its bit-exactness with gemm_reference) as
 * the only place sums are formed.
 */
#include "rvnpu.h"

#define EB RVNPU_ENGINE_ELEM_BYTES

/* Copy each output pixel's receptive field into a row of the patch matrix, taps outside the
 * input as the input zero point, and describe the GEMM over it. Offsets into the input are
 * stepped rather than multiplied out: a MUL takes the core tens of cycles. */
static int im2col(const rvnpu_conv2d_t *cv, rvnpu_gemm_t *g)
{
    const uint32_t out_h = rvnpu_conv2d_out_h(cv), out_w = rvnpu_conv2d_out_w(cv);
    if (!out_h || !out_w || !cv->in_c || !cv->out_c)
        return RVNPU_GEMM_BAD_SHAPE;
    const int32_t pixel_bytes = (int32_t)(cv->in_c * EB);
    const int32_t row_bytes = (int32_t)cv->in_w * pixel_bytes;
    const int32_t stride_h = (int32_t)cv->stride_h, stride_w = (int32_t)cv->stride_w;
    const int32_t y_step = stride_h * row_bytes, x_step = stride_w * pixel_bytes;
    const uint8_t zero[2] = {(uint8_t)cv->in_zero, (uint8_t)((uint32_t)cv->in_zero >> 8)};
    /* Locals, as the byte stores below could alias *cv and would make it be read again. */
    const uint32_t in_h = cv->in_h, in_w = cv->in_w;
    const uint32_t kernel_h = cv->kernel_h, kernel_w = cv->kernel_w;
    const uint8_t *input = (const uint8_t *)cv->input;
    uint8_t *patches = (uint8_t *)cv->workspace + rvnpu_gemm_qp_words(cv->out_c) * 4;
    uint8_t *dst = patches;
    /* A kernel row inside the input is kernel_w pixels in a row of it: one copy. */
    const int32_t span = (int32_t)kernel_w * pixel_bytes;
    int32_t top = -(int32_t)cv->pad_h, top_offset = top * row_bytes;
    for (uint32_t oy = 0; oy < out_h; oy++, top += stride_h, top_offset += y_step) {
        int32_t left = -(int32_t)cv->pad_w, left_offset = left * pixel_bytes;
        for (uint32_t ox = 0; ox < out_w; ox++, left += stride_w, left_offset += x_step) {
            int32_t y = top, row_offset = top_offset + left_offset;
            const int x_inside = left >= 0 && left + (int32_t)kernel_w <= (int32_t)in_w;
            for (uint32_t ky = 0; ky < kernel_h; ky++, y++, row_offset += row_bytes) {
                if (x_inside && (uint32_t)y < in_h) {
                    const uint8_t *src = input + row_offset;
                    uint8_t *end = dst + span;
                    while (dst < end)
                        *dst++ = *src++;
                    continue;
                }
                int32_t x = left, offset = row_offset;
                for (uint32_t kx = 0; kx < kernel_w; kx++, x++, offset += pixel_bytes) {
                    uint8_t *end = dst + pixel_bytes;
                    /* Unsigned compares also catch the negative coordinates of padding. */
                    if ((uint32_t)y < in_h && (uint32_t)x < in_w) {
                        const uint8_t *src = input + offset;
                        while (dst < end)
                            *dst++ = *src++;
                    } else {
                        while (dst < end)
                            for (uint32_t i = 0; i < EB; i++)
                                *dst++ = zero[i];
                    }
                }
            }
        }
    }
    *g = (rvnpu_gemm_t){
        .m = out_h * out_w, .n = cv->out_c, .k = kernel_h * kernel_w * cv->in_c,
        .a = patches, .b = cv->weights, .c = cv->output,
        .a_zero = cv->in_zero, .b_zero = cv->weight_zero,
        .a_unsigned = cv->in_unsigned, .b_unsigned = cv->weight_unsigned,
        .requant = cv->requant, .qp = (uint32_t *)cv->workspace,
    };
    return RVNPU_GEMM_OK;
}

int rvnpu_conv2d_im2col(const rvnpu_conv2d_t *conv, rvnpu_gemm_t *gemm)
{
    return im2col(conv, gemm);
}

int rvnpu_conv2d(const rvnpu_conv2d_t *conv, uint32_t *status)
{
    rvnpu_gemm_t g;
    int result = im2col(conv, &g);
    return result != RVNPU_GEMM_OK ? result : rvnpu_gemm(&g, status);
}

int rvnpu_conv2d_cpu(const rvnpu_conv2d_t *conv)
{
    rvnpu_gemm_t g;
    int result = im2col(conv, &g);
    return result != RVNPU_GEMM_OK ? result : rvnpu_gemm_cpu(&g);
}

/* One element; signed outputs are stored sign-extended to EB bytes. */
static int32_t element(const uint8_t *p, uint32_t is_unsigned)
{
    if (is_unsigned)
        return EB == 2 ? (int32_t)(p[0] | p[1] << 8) : (int32_t)p[0];
    return EB == 2 ? (int16_t)(p[0] | p[1] << 8) : (int8_t)p[0];
}

int rvnpu_maxpool2d(const rvnpu_maxpool2d_t *pool)
{
    const uint32_t out_h = rvnpu_window_count(pool->in_h, pool->kernel_h, pool->stride_h, 0);
    const uint32_t out_w = rvnpu_window_count(pool->in_w, pool->kernel_w, pool->stride_w, 0);
    if (!out_h || !out_w || !pool->channels)
        return RVNPU_GEMM_BAD_SHAPE;
    const uint32_t pixel_bytes = pool->channels * EB, row_bytes = pool->in_w * pixel_bytes;
    const uint32_t y_step = pool->stride_h * row_bytes, x_step = pool->stride_w * pixel_bytes;
    const uint32_t kernel_h = pool->kernel_h, kernel_w = pool->kernel_w;
    const uint32_t is_unsigned = pool->is_unsigned;
    /* One-byte elements compare as unsigned bytes once signed ones have their top bit
     * flipped (-128..127 maps to 0..255 in order): a load, an XOR and a compare a tap. */
    const uint32_t flip = is_unsigned ? 0 : 0x80;
    const uint8_t *top = (const uint8_t *)pool->input;
    uint8_t *dst = (uint8_t *)pool->output;
    for (uint32_t oy = 0; oy < out_h; oy++, top += y_step) {
        const uint8_t *corner = top;
        for (uint32_t ox = 0; ox < out_w; ox++, corner += x_step) {
            for (uint32_t c = 0; c < pixel_bytes; c += EB) {
                if (EB == 1) {
                    uint32_t best = 0;
                    const uint8_t *row = corner + c;
                    for (uint32_t ky = 0; ky < kernel_h; ky++, row += row_bytes) {
                        const uint8_t *p = row;
                        for (uint32_t kx = 0; kx < kernel_w; kx++, p += pixel_bytes) {
                            uint32_t v = *p ^ flip;
                            best = v > best ? v : best;
                        }
                    }
                    *dst++ = (uint8_t)(best ^ flip);
                    continue;
                }
                const uint8_t *best = corner + c, *row = corner + c;
                for (uint32_t ky = 0; ky < kernel_h; ky++, row += row_bytes) {
                    const uint8_t *p = row;
                    for (uint32_t kx = 0; kx < kernel_w; kx++, p += pixel_bytes)
                        if (element(p, is_unsigned) > element(best, is_unsigned))
                            best = p;
                }
                for (uint32_t i = 0; i < EB; i++)
                    *dst++ = best[i];
            }
        }
    }
    return RVNPU_GEMM_OK;
}

void rvnpu_nhwc_to_nchw(const void *input, void *output, uint32_t h, uint32_t w, uint32_t c)
{
    const uint8_t *src = (const uint8_t *)input;
    uint8_t *dst = (uint8_t *)output;
    const uint32_t pixels = h * w, step = c * EB;
    for (uint32_t channel = 0; channel < c; channel++) {
        const uint8_t *p = src + channel * EB;
        for (uint32_t i = 0; i < pixels; i++, p += step)
            for (uint32_t j = 0; j < EB; j++)
                *dst++ = p[j];
    }
}
