/*
 * GEMM benchmark: a requantised matrix product on the engine, checked against numpy.
 *
 * GEMM benchmark: C = requantize(A @ B + bias) on the engine, with per-channel TFLite
 * requantisation, timed with the TIMER peripheral, twice:
 *
 * - "direct": rvnpu_gemm() encodes and issues each command as it goes;
 * - "recorded": the same commands recorded beforehand (rvnpu_gemm_record, as a runtime that
 *   runs a layer many times would) and replayed by rvnpu_program_run; skipped if the free RAM
 *   cannot hold them.
 *
 * Build with -DM=.. -DN=.. -DK=.. (default 64 each) and -DSEED=..; -DRELU clamps at the output
 * zero point. The operands come from a xorshift32 generator that rvnpu.sim.golden.examples
 * repeats in Python, so the printed checksum (FNV-1a of C's bytes) can be checked against
 * numpy's result without reading the RAM back. Exit code: 0 if both runs agree and the
 * engine reported no error.
 */
#include "rvnpu.h"

#ifndef M
#define M 64
#endif
#ifndef N
#define N 64
#endif
#ifndef K
#define K 64
#endif
#ifndef SEED
#define SEED 1
#endif

#include "example_data.h"

#define EB RVNPU_ENGINE_ELEM_BYTES
#define W RVNPU_ENGINE_IN_WIDTH

static uint8_t a[M * K * EB] __attribute__((aligned(64)));
static uint8_t b[K * N * EB] __attribute__((aligned(64)));
static uint8_t c[M * N * EB] __attribute__((aligned(64)));
static int32_t bias[N], multiplier[N], shift[N];
static uint32_t qp[(N + RVNPU_ENGINE_COLS - 1) / RVNPU_ENGINE_COLS * RVNPU_QP_ROWS *
                   RVNPU_ENGINE_COLS] __attribute__((aligned(64)));

static uint32_t checksum(void)
{
    return fnv1a(c, sizeof c);
}

static void report(const char *how, uint64_t t0, uint64_t t1, uint64_t a0, uint64_t a1)
{
    uint32_t cycles = (uint32_t)(t1 - t0), active = (uint32_t)(a1 - a0);
    uint64_t macs = (uint64_t)M * N * K;
    uint32_t peak = RVNPU_ENGINE_ROWS * RVNPU_ENGINE_COLS;
    /* Per mille of the array's peak, DMA and command issue included. */
    uint32_t util = (uint32_t)(macs * 1000 / ((uint64_t)cycles * peak));
    printf("%s: cycles %u, engine active %u, utilisation %u.%u%%\n", how, cycles, active,
           util / 10, util % 10);
}

int main(void)
{
    fill(a, M * K, 0);
    fill(b, K * N, 0);
    /* Scales that spread the outputs over the output range: sums of K products have a
     * spread of about 2**13 * sqrt(K) for int8. */
    int32_t base_shift = 7 + (int32_t)(log2_floor(K) + 1) / 2;
    for (uint32_t j = 0; j < N; j++) {
        bias[j] = (int32_t)((next() >> 8) & 0x1FFF) - 4096;
        multiplier[j] = (int32_t)(0x40000000u | (next() >> 2));
        shift[j] = -base_shift - (int32_t)((next() >> 8) & 1);
    }
    int32_t a_zero = (int32_t)((next() >> 8) & 7) - 4;
    int32_t out_zero = (int32_t)((next() >> 8) & 7) - 4;
    int32_t out_max = (1 << (W - 1)) - 1;

    rvnpu_gemm_t g = {
        .m = M, .n = N, .k = K, .a = a, .b = b, .c = c, .a_zero = a_zero, .qp = qp,
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
    };
    printf("matmul %ux%ux%u int%u on a %ux%u array, weight-stationary, tflite requantisation\n",
           M, N, K, W, RVNPU_ENGINE_ROWS, RVNPU_ENGINE_COLS);

    int failed = 0;
    rvnpu_status(1);
    uint64_t t0 = rvnpu_timer_cycles(), a0 = rvnpu_active_cycles();
    uint32_t status;
    int result = rvnpu_gemm(&g, &status);
    uint64_t t1 = rvnpu_timer_cycles(), a1 = rvnpu_active_cycles();
    report("direct", t0, t1, a0, a1);
    uint32_t sum = checksum();
    if (result != RVNPU_GEMM_OK) {
        printf("FAILED: result %d, engine status 0x%08x\n", result, status);
        failed = 1;
    }

    uint32_t free_bytes;
    rvnpu_program_t program = {.ops = rvnpu_free_ram(&free_bytes)};
    program.capacity = free_bytes / sizeof(rvnpu_op_t);
    result = rvnpu_gemm_record(&g, &program);
    if (result == RVNPU_GEMM_NO_ROOM) {
        printf("recorded: skipped, %u commands need %u bytes, %u are free\n", program.count,
               (program.count + 1) * (uint32_t)sizeof(rvnpu_op_t), free_bytes);
    } else if (result == RVNPU_GEMM_BAD_MODE && !RVNPU_ENGINE_WITH_REQUANT) {
        printf("recorded: skipped, the core requantises between blocks on this engine\n");
    } else if (result != RVNPU_GEMM_OK) {
        printf("FAILED: recording result %d\n", result);
        failed = 1;
    } else {
        for (uint32_t i = 0; i < sizeof c; i++)
            c[i] = 0;
        t0 = rvnpu_timer_cycles();
        a0 = rvnpu_active_cycles();
        status = rvnpu_program_run(&program);
        t1 = rvnpu_timer_cycles();
        a1 = rvnpu_active_cycles();
        printf("recorded program of %u commands, ", program.count);
        report("replayed", t0, t1, a0, a1);
        if (rvnpu_status_error(status) || checksum() != sum) {
            printf("FAILED: replay status 0x%08x, checksum 0x%08x\n", status, checksum());
            failed = 1;
        }
    }
    printf("C at 0x%08x, checksum 0x%08x\n", RVNPU_DMA_ADDR(c), sum);
    return failed;
}
