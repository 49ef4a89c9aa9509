/*
 * rvnpu_conv.h: quantised 2-D convolution, max- and average pooling of NHWC activations
 * (batch 1).
 *
 * A convolution is lowered to one GEMM (im2col): each output pixel's receptive field is copied
 * into a row of a patch matrix, which is multiplied by the weights. The weights need no
 * rearranging for that if they are stored HWIO, kernel_h x kernel_w x in_c x out_c row-major,
 * i.e. the GEMM's (kernel_h * kernel_w * in_c) x out_c B matrix; the output is the GEMM's C,
 * out_h x out_w x out_c, already NHWC.
 *
 * Elements are the engine's (RVNPU_ENGINE_ELEM_BYTES bytes, RVNPU_ENGINE_IN_WIDTH bits),
 * signed unless a flag says unsigned (ONNX models quantised to uint8). Padding is symmetric
 * and filled with the input zero point, as in TFLite and ONNX quantised convolutions, so
 * padded taps add nothing to the sums.
 */
#ifndef RVNPU_CONV_H
#define RVNPU_CONV_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint32_t in_h, in_w, in_c, out_c;
    uint32_t kernel_h, kernel_w;
    uint32_t stride_h, stride_w;
    uint32_t pad_h, pad_w;         /* rows added above and below, columns left and right */
    const void *input;             /* in_h x in_w x in_c */
    const void *weights;           /* kernel_h x kernel_w x in_c x out_c (HWIO) */
    void *output;                  /* out_h x out_w x out_c */
    int32_t in_zero, weight_zero;
    rvnpu_requant_t requant;       /* per output channel; clamp_min/max is the activation */
    void *workspace;               /* rvnpu_conv2d_workspace_bytes() bytes, 4-byte aligned */
    uint32_t in_unsigned, weight_unsigned;   /* 0: signed elements (the default) */
} rvnpu_conv2d_t;

/* Positions a window of `kernel` takes along a side of `size` (plus `pad` on each end) moving
 * by `stride`; 0 if it never fits or the stride is 0. */
static inline uint32_t rvnpu_window_count(uint32_t size, uint32_t kernel, uint32_t stride,
                                          uint32_t pad)
{
    uint32_t padded = size + 2 * pad;
    if (!stride || !kernel || kernel > padded)
        return 0;
    return (padded - kernel) / stride + 1;
}

static inline uint32_t rvnpu_conv2d_out_h(const rvnpu_conv2d_t *conv)
{
    return rvnpu_window_count(conv->in_h, conv->kernel_h, conv->stride_h, conv->pad_h);
}

static inline uint32_t rvnpu_conv2d_out_w(const rvnpu_conv2d_t *conv)
{
    return rvnpu_window_count(conv->in_w, conv->kernel_w, conv->stride_w, conv->pad_w);
}

/* Bytes of workspace a convolution needs: the GEMM's requantisation table, then the patch
 * matrix of (out_h * out_w) x (kernel_h * kernel_w * in_c) elements. */
static inline uint32_t rvnpu_conv2d_workspace_bytes(const rvnpu_conv2d_t *conv)
{
    uint32_t patches = rvnpu_conv2d_out_h(conv) * rvnpu_conv2d_out_w(conv);
    uint32_t depth = conv->kernel_h * conv->kernel_w * conv->in_c;
    return rvnpu_gemm_qp_words(conv->out_c) * 4 + patches * depth * RVNPU_ENGINE_ELEM_BYTES;
}

/* The convolution on the engine: im2col on the core, then rvnpu_gemm (see there for `status`).
 * Returns an enum rvnpu_gemm_result; RVNPU_GEMM_BAD_SHAPE also when the kernel does not fit
 * the padded input or a stride is 0. */
int rvnpu_conv2d(const rvnpu_conv2d_t *conv, uint32_t *status);

/* The im2col step alone: the patch matrix into the workspace, and in *gemm the GEMM that
 * finishes the convolution (its qp is the workspace's start). A runtime that recorded that
 * GEMM once (rvnpu_gemm_record) replays it after each im2col. Returns an enum
 * rvnpu_gemm_result. */
int rvnpu_conv2d_im2col(const rvnpu_conv2d_t *conv, rvnpu_gemm_t *gemm);

/* The same convolution on the core alone (rvnpu_gemm_cpu after im2col: TFLITE and RAW modes),
 * a reference for the engine and a speed to compare it with. */
int rvnpu_conv2d_cpu(const rvnpu_conv2d_t *conv);

/* Max-pooling without padding: windows that would cross the input's far edge are dropped, as
 * with TFLite's VALID padding. */
typedef struct {
    uint32_t in_h, in_w, channels;
    uint32_t kernel_h, kernel_w;
    uint32_t stride_h, stride_w;
    const void *input;             /* in_h x in_w x channels */
    void *output;                  /* out_h x out_w x channels, by rvnpu_window_count(.., 0) */
    uint32_t is_unsigned;          /* 0: signed elements (the default) */
} rvnpu_maxpool2d_t;

/* Max-pool on the core; returns RVNPU_GEMM_OK, or RVNPU_GEMM_BAD_SHAPE if no window fits. */
int rvnpu_maxpool2d(const rvnpu_maxpool2d_t *pool);

/* Windows along a side of `size` with `pad_head` and `pad_tail` added, as ONNX Runtime counts
 * them: with ceil_mode a last partial window is kept if it starts inside the input or its head
 * padding. 0 if no window fits or the stride is 0. */
static inline uint32_t rvnpu_pool_out_size(uint32_t size, uint32_t kernel, uint32_t stride,
                                           uint32_t pad_head, uint32_t pad_tail,
                                           uint32_t ceil_mode)
{
    uint32_t padded = size + pad_head + pad_tail;
    if (!stride || !kernel || kernel > padded)
        return 0;
    uint32_t span = padded - kernel;
    if (!ceil_mode)
        return span / stride + 1;
    uint32_t out = (span + stride - 1) / stride + 1;
    if ((out - 1) * stride >= size + pad_head)
        out--;
    return out;
}

/* Quantised average pooling of one-byte elements, as ONNX Runtime's QLinearAveragePool
 * computes it (sim/golden/pool.py is the specification): in float32, each input dequantised
 * as in_scale * (x - in_zero), a window's values summed rows then columns, divided by its
 * element count (kernel_h * kernel_w with count_include_pad, else the taps inside the input),
 * then nearbyint(mean / out_scale + out_zero), clamped. A window covering the whole unpadded
 * input (GlobalAveragePool) takes MLAS's integer path: (sum - in_zero * count) times the
 * float32 in_scale / (out_scale * count), rounded half to even, plus out_zero. The core has
 * no FPU: the float32 steps are the compiler's soft-float, rounded as IEEE 754 (and x86) do. */
typedef struct {
    uint32_t in_h, in_w, channels;
    uint32_t kernel_h, kernel_w;
    uint32_t stride_h, stride_w;
    uint32_t pad_top, pad_left, pad_bottom, pad_right;
    uint32_t count_include_pad, ceil_mode;
    const void *input;             /* in_h x in_w x channels */
    void *output;                  /* out_h x out_w x channels, by rvnpu_pool_out_size */
    float in_scale, out_scale;
    int32_t in_zero, out_zero;
    int32_t clamp_min, clamp_max;  /* the element type's range, or a fused activation's */
    float *workspace;              /* 256 floats: the dequantised value of each byte */
    uint32_t is_unsigned;          /* 0: signed elements (the default) */
} rvnpu_avgpool2d_t;

/* Average-pool on the core; returns RVNPU_GEMM_OK, or RVNPU_GEMM_BAD_SHAPE if no window fits. */
int rvnpu_avgpool2d(const rvnpu_avgpool2d_t *pool);

/* Copy an h x w x c (NHWC) tensor into c x h x w (NCHW) order: what ONNX's Flatten of a
 * feature map means, since ONNX orders activations NCHW. */
void rvnpu_nhwc_to_nchw(const void *input, void *output, uint32_t h, uint32_t w, uint32_t c);

#ifdef __cplusplus
}
#endif

#endif /* RVNPU_CONV_H */
