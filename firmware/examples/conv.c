/*
 * Convolution benchmark: a quantised conv and max-pool, engine against core alone.
 *
 * Convolution benchmark: a quantised 2-D convolution (im2col on the core, GEMM on the engine)
 * against the same convolution on the core alone, then a max-pool of its output.
 *
 * Build with -DH=.. -DW=.. -DCIN=.. -DCOUT=.. (input height, width, channels; output
 * channels), -DKH=.. -DKW=.. (kernel), -DSTRIDE=.., -DPAD=.., -DPOOL=.. (max-pool window and
 * stride) and -DSEED=.. (default: 6x6x2 in, 8 out, 3x3, stride 1, pad 1, pool 2; small, as the
 * core's reference takes about 300 cycles a multiply-accumulate); -DRELU clamps at the output
 * zero point and -DEXTREME draws only the most negative and most positive inputs and weights.
 * The operands come from the xorshift32 generator that rvnpu.sim.golden.examples repeats in
 * Python, so the printed checksums (FNV-1a of the convolution's and the pool's output bytes)
 * check the run against numpy. Exit code: 0 if the engine and the core agree and neither
 * reported an error.
 */
#include "rvnpu.h"

#ifndef H
#define H 6
#endif
#ifndef W
#define W 6
#endif
#ifndef CIN
#define CIN 2
#endif
#ifndef COUT
#define COUT 8
#endif
#ifndef KH
#define KH 3
#endif
#ifndef KW
#define KW 3
#endif
#ifndef STRIDE
#define STRIDE 1
#endif
#ifndef PAD
#define PAD 1
#endif
#ifndef POOL
#define POOL 2
#endif
#ifndef SEED
#define SEED 1
#endif

#include "example_data.h"

#define EB RVNPU_ENGINE_ELEM_BYTES
#define BITS RVNPU_ENGINE_IN_WIDTH
#define OUT_H ((H + 2 * PAD - KH) / STRIDE + 1)
#define OUT_W ((W + 2 * PAD - KW) / STRIDE + 1)
#define DEPTH (KH * KW * CIN)

static uint8_t input[H * W * CIN * EB] __attribute__((aligned(64)));
static uint8_t weights[DEPTH * COUT * EB] __attribute__((aligned(64)));
static uint8_t engine_out[OUT_H * OUT_W * COUT * EB] __attribute__((aligned(64)));
static uint8_t cpu_out[OUT_H * OUT_W * COUT * EB];
static uint8_t pooled[(OUT_H / POOL) * (OUT_W / POOL) * COUT * EB];
static int32_t bias[COUT], multiplier[COUT], shift[COUT];

#ifdef EXTREME
#define EXTREME_VALUES 1
#else
#define EXTREME_VALUES 0
#endif

int main(void)
{
    fill(input, H * W * CIN, EXTREME_VALUES);
    fill(weights, DEPTH * COUT, EXTREME_VALUES);
    /* As in matmul.c: scales that spread sums of DEPTH products over the output range. */
    int32_t base_shift = 7 + (int32_t)(log2_floor(DEPTH) + 1) / 2;
    for (uint32_t j = 0; j < COUT; j++) {
        bias[j] = (int32_t)((next() >> 8) & 0x1FFF) - 4096;
        multiplier[j] = (int32_t)(0x40000000u | (next() >> 2));
        shift[j] = -base_shift - (int32_t)((next() >> 8) & 1);
    }
    int32_t in_zero = (int32_t)((next() >> 8) & 7) - 4;
    int32_t weight_zero = (int32_t)((next() >> 8) & 3) - 2;
    int32_t out_zero = (int32_t)((next() >> 8) & 7) - 4;
    int32_t out_max = (1 << (BITS - 1)) - 1;

    uint32_t free_bytes;
    rvnpu_conv2d_t conv = {
        .in_h = H, .in_w = W, .in_c = CIN, .out_c = COUT, .kernel_h = KH, .kernel_w = KW,
        .stride_h = STRIDE, .stride_w = STRIDE, .pad_h = PAD, .pad_w = PAD,
        .input = input, .weights = weights, .output = engine_out,
        .in_zero = in_zero, .weight_zero = weight_zero,
        .requant = {
            .mode = RVNPU_GEMM_TFLITE, .bias = bias, .multiplier = multiplier, .shift = shift,
            .out_zero = out_zero,
#ifdef RELU
            .clamp_min = out_zero,
#else
            .clamp_min = -out_max - 1,
#endif
            .clamp_max = out_max,
        },
        .workspace = rvnpu_free_ram(&free_bytes),
    };
    printf("conv2d %ux%ux%u -> %ux%ux%u, %ux%u kernel, stride %u, pad %u, int%u, "
           "%ux%u array\n", H, W, CIN, OUT_H, OUT_W, COUT, KH, KW, STRIDE, PAD, BITS,
           RVNPU_ENGINE_ROWS, RVNPU_ENGINE_COLS);
    uint32_t need = rvnpu_conv2d_workspace_bytes(&conv);
    if (need > free_bytes) {
        printf("FAILED: the workspace needs %u bytes, %u are free\n", need, free_bytes);
        return 1;
    }

    rvnpu_status(1);
    uint32_t status = 0;
    uint64_t t0 = rvnpu_timer_cycles();
    int engine_result = rvnpu_conv2d(&conv, &status);
    uint64_t t1 = rvnpu_timer_cycles();
    conv.output = cpu_out;
    int cpu_result = rvnpu_conv2d_cpu(&conv);
    uint64_t t2 = rvnpu_timer_cycles();
    printf("engine: cycles %u (im2col and GEMM), status 0x%08x\n", (uint32_t)(t1 - t0),
           status);
    printf("cpu: cycles %u\n", (uint32_t)(t2 - t1));

    rvnpu_maxpool2d_t pool = {
        .in_h = OUT_H, .in_w = OUT_W, .channels = COUT, .kernel_h = POOL, .kernel_w = POOL,
        .stride_h = POOL, .stride_w = POOL, .input = engine_out, .output = pooled,
    };
    int pool_result = rvnpu_maxpool2d(&pool);

    int failed = 0;
    if (engine_result != RVNPU_GEMM_OK || cpu_result != RVNPU_GEMM_OK ||
        pool_result != RVNPU_GEMM_OK) {
        printf("FAILED: results engine %d, cpu %d, pool %d\n", engine_result, cpu_result,
               pool_result);
        failed = 1;
    }
    for (uint32_t i = 0; i < sizeof engine_out; i++) {
        if (engine_out[i] != cpu_out[i]) {
            printf("FAILED: engine and cpu differ first at byte %u\n", i);
            failed = 1;
            break;
        }
    }
    printf("conv checksum 0x%08x\n", fnv1a(engine_out, sizeof engine_out));
    printf("pool checksum 0x%08x\n", fnv1a(pooled, sizeof pooled));
    return failed;
}
