/*
 * The board's power-on demo: a self-test, a GEMM benchmark, then LEDs and buttons.
 *
 * What a freshly programmed board prints on its UART: a self-test (the engine's GEMMs against
 * the core's own reference) and a GEMM benchmark with its cycle count. Then it blinks the LEDs
 * and runs again whenever a button is pressed, so a terminal opened late still sees a report.
 *
 * Sizes are small enough for the smallest board's RAM; -DBENCH=.. sets the benchmark's
 * M = N = K (default 32, or 16 where the core multiplies in software).
 *
 * -DSMALL_SELF_TEST keeps the report's structure with small GEMMs (and BENCH 4): a gate-level
 * simulation of the netlist (rvnpu.boards.gate_sim) reaches its verdict in under a million
 * cycles instead of about seventeen million.
 */
#include "rvnpu.h"

#if defined SMALL_SELF_TEST && !defined BENCH
#define BENCH 4
#endif

#ifndef BENCH
#if RVNPU_WITH_M && RVNPU_ENGINE_WITH_REQUANT
#define BENCH 32
#else
/* A core that multiplies in software (no M, or requantising for the engine) would spend
 * seconds on 32x32x32: the report would be long in coming. */
#define BENCH 16
#endif
#endif

#define SEED 1
#include "example_data.h"

#define EB RVNPU_ENGINE_ELEM_BYTES
#define W RVNPU_ENGINE_IN_WIDTH

static uint8_t a[BENCH * BENCH * EB] __attribute__((aligned(64)));
static uint8_t b[BENCH * BENCH * EB] __attribute__((aligned(64)));
static uint8_t c_engine[BENCH * BENCH * EB] __attribute__((aligned(64)));
static uint8_t c_core[BENCH * BENCH * EB] __attribute__((aligned(64)));
static uint32_t qp[(BENCH + RVNPU_ENGINE_COLS - 1) / RVNPU_ENGINE_COLS * RVNPU_QP_ROWS *
                   RVNPU_ENGINE_COLS] __attribute__((aligned(64)));

/* A requantised GEMM of m x n x k on the operands in a and b, into c. */
static rvnpu_gemm_t gemm(uint32_t m, uint32_t n, uint32_t k, uint8_t *c)
{
    int32_t out_max = (1 << (W - 1)) - 1;
    rvnpu_gemm_t g = {
        .m = m, .n = n, .k = k, .a = a, .b = b, .c = c, .a_zero = 1, .qp = qp,
        .requant = {
            .mode = RVNPU_GEMM_TFLITE, .multiplier_all = 0x50000000, .shift_all = -10,
            .out_zero = -2, .clamp_min = -out_max - 1, .clamp_max = out_max,
        },
    };
    return g;
}

static int same(uint32_t bytes)
{
    for (uint32_t i = 0; i < bytes; i++)
        if (c_engine[i] != c_core[i])
            return 0;
    return 1;
}

static int self_test(void)
{
#ifdef SMALL_SELF_TEST
    static const uint32_t shapes[][3] = {{1, 1, 1}, {3, 5, 2}, {5, 2, 3}, {BENCH, BENCH, BENCH}};
#else
    static const uint32_t shapes[][3] = {{1, 1, 1}, {5, 7, 3}, {16, 9, 20}, {BENCH, BENCH, BENCH}};
#endif
    int failures = 0;
    for (uint32_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        uint32_t m = shapes[i][0], n = shapes[i][1], k = shapes[i][2];
        fill(a, m * k, 0);
        fill(b, k * n, 0);
        rvnpu_gemm_t on_engine = gemm(m, n, k, c_engine), on_core = gemm(m, n, k, c_core);
        uint32_t status;
        rvnpu_status(1);
        int engine_result = rvnpu_gemm(&on_engine, &status);
        int core_result = rvnpu_gemm_cpu(&on_core);
        int ok = engine_result == RVNPU_GEMM_OK && core_result == RVNPU_GEMM_OK
                 && !rvnpu_status_error(status) && same(m * n * EB);
        printf("%s gemm %ux%ux%u\n", ok ? "ok  " : "FAIL", m, n, k);
        failures += !ok;
    }
    return failures;
}

/* The benchmark's GEMM again, its commands recorded beforehand and replayed (as a runtime
 * running a layer many times would): the core no longer encodes each command, so the engine
 * sets more of the pace. Into c_core, checked against the direct run's c_engine. */
static void replay(const rvnpu_gemm_t *direct, uint64_t macs)
{
#if !RVNPU_ENGINE_WITH_REQUANT
    /* Not built where it cannot run: with it the Tang Nano's demo would not fit its 16 KiB. */
    (void)direct;
    (void)macs;
    printf("replayed: skipped, the core requantises on this engine\n");
#else
    uint32_t free_bytes;
    rvnpu_program_t program = {.ops = rvnpu_free_ram(&free_bytes)};
    program.capacity = free_bytes / sizeof(rvnpu_op_t);
    rvnpu_gemm_t g = *direct;
    g.c = c_core;
    int result = rvnpu_gemm_record(&g, &program);
    if (result == RVNPU_GEMM_NO_ROOM) {
        printf("replayed: skipped, %u commands do not fit the %u bytes free\n", program.count,
               free_bytes);
        return;
    }
    for (uint32_t i = 0; i < sizeof c_core; i++)
        c_core[i] = 0;
    uint64_t t0 = rvnpu_timer_cycles();
    uint32_t status = rvnpu_program_run(&program);
    uint32_t cycles = (uint32_t)(rvnpu_timer_cycles() - t0);
    int same = result == RVNPU_GEMM_OK && !rvnpu_status_error(status);
    for (uint32_t i = 0; same && i < sizeof c_core; i++)
        same = c_core[i] == c_engine[i];
    uint32_t util = (uint32_t)(macs * 1000 / ((uint64_t)cycles * RVNPU_ENGINE_ROWS *
                                               RVNPU_ENGINE_COLS));
    printf("%s replayed from a list of %u commands: %u cycles, utilisation %u.%u%%\n",
           same ? "ok  " : "FAIL", program.count, cycles, util / 10, util % 10);
#endif
}

static void benchmark(void)
{
    fill(a, BENCH * BENCH, 0);
    fill(b, BENCH * BENCH, 0);
    rvnpu_gemm_t g = gemm(BENCH, BENCH, BENCH, c_engine);
    uint64_t t0 = rvnpu_timer_cycles(), a0 = rvnpu_active_cycles();
    rvnpu_gemm(&g, 0);
    uint64_t t1 = rvnpu_timer_cycles(), a1 = rvnpu_active_cycles();
    uint32_t cycles = (uint32_t)(t1 - t0), active = (uint32_t)(a1 - a0);
    uint32_t us = (uint32_t)((uint64_t)cycles * 1000000u / RVNPU_CLOCK_HZ);
    uint64_t macs = (uint64_t)BENCH * BENCH * BENCH;
    uint32_t util = (uint32_t)(macs * 1000 / ((uint64_t)cycles * RVNPU_ENGINE_ROWS *
                                               RVNPU_ENGINE_COLS));
    printf("gemm %ux%ux%u int%u on a %ux%u array: %u cycles (%u us at %u Hz), "
           "engine active %u, utilisation %u.%u%%\n", BENCH, BENCH, BENCH, W,
           RVNPU_ENGINE_ROWS, RVNPU_ENGINE_COLS, cycles, us, RVNPU_CLOCK_HZ, active,
           util / 10, util % 10);
    replay(&g, macs);
}

static void report(void)
{
    printf("\nrvnpu board demo\n");
    int failures = self_test();
    printf("self-test: %s (%d failed)\n", failures ? "FAIL" : "PASS", failures);
    benchmark();
    printf("press a button to run again\n");
}

int main(void)
{
    report();
    for (uint32_t tick = 0;; tick++) {
        rvnpu_set_leds(tick >> 16);
        if (rvnpu_buttons()) {
            while (rvnpu_buttons())
                ;
            report();
        }
    }
}
