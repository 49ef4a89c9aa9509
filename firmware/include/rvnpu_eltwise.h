/*
 * rvnpu_eltwise.h: element-wise operations of quantised tensors, on the core.
 *
 * rvnpu_qlinear_add() is ONNX's QLinearAdd rounded as onnxruntime rounds it on x86-64 with
 * AVX2 (MLAS's QLinearAdd kernel): the ratios of the input scales to the output scale and the
 * zero points folded into one constant are computed ahead of time in float32 (rvnpu.compiler.onnx does
 * it); each element is then fmaf(a, ratio_a, fmaf(b, ratio_b, fixed)), two fused
 * multiply-adds in that order, rounded half to even and saturated. The core has no FPU; the
 * library evaluates the float32 steps exactly in integers, rounding as the vector unit does.
 */
#ifndef RVNPU_ELTWISE_H
#define RVNPU_ELTWISE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint32_t count;                /* elements of a, b and c */
    const void *a, *b;             /* one byte an element */
    void *c;
    float ratio_a, ratio_b;        /* a_scale / c_scale, b_scale / c_scale */
    float fixed;                   /* c_zero - fmaf(ratio_a, a_zero, ratio_b * b_zero) */
    int32_t clamp_min, clamp_max;  /* the element type's range, or a fused activation's */
    uint32_t is_unsigned;          /* uint8 elements; int8 otherwise */
} rvnpu_qadd_t;

/* c = saturate(round(fmaf(a, ratio_a, fmaf(b, ratio_b, fixed)))); returns RVNPU_GEMM_OK. */
int rvnpu_qlinear_add(const rvnpu_qadd_t *add);

/* output[i] = table[input[i]] for one-byte elements (signed ones index by their byte): any
 * function of one 8-bit value, tabulated ahead of time. rvnpu.compiler.onnx uses it for a
 * requantisation from one scale and zero point to another (ONNX Runtime's DequantizeLinear,
 * Relu or Clip, QuantizeLinear in float32), which it evaluates for all 256 inputs on the host. */
void rvnpu_lookup8(const uint8_t *table, const void *input, void *output, uint32_t count);

#ifdef __cplusplus
}
#endif

#endif /* RVNPU_ELTWISE_H */
