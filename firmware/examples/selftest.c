/*
 * Self-test of the SoC from the inside: memory, arithmetic, GPIO, the engine.
 *
 * Self-test of the SoC from the inside: start-up, memory, arithmetic, counters, GPIO, and the
 * engine (status, refusals, and GEMMs against the core's own reference). Prints one line a
 * check and returns the number of failures, which becomes the simulation's exit code.
 */
#include "rvnpu.h"

static int failures, checks;

static void check(int ok, const char *name)
{
    checks++;
    if (!ok)
        failures++;
    printf("%s %s\n", ok ? "ok  " : "FAIL", name);
}

/* -- Start-up and memory ------------------------------------------------------------------ */

static uint32_t zeroed[16];
static uint32_t initialised = 0x12345678u;

static void test_startup(void)
{
    int all_zero = 1;
    for (int i = 0; i < 16; i++)
        all_zero &= zeroed[i] == 0;
    check(all_zero, "start-up zeroed .bss");
    check(initialised == 0x12345678u, "start-up kept .data");
    uint32_t sp;
    __asm__ volatile("mv %0, sp" : "=r"(sp));
    check(sp > RVNPU_RAM_BYTES - 1024 && sp <= RVNPU_RAM_BYTES, "stack at the top of RAM");
}

static void test_memory(void)
{
    static volatile uint32_t word;
    volatile uint8_t *bytes = (volatile uint8_t *)&word;
    volatile uint16_t *halves = (volatile uint16_t *)&word;
    word = 0;
    bytes[0] = 0x11;
    bytes[1] = 0x82;
    bytes[3] = 0xF4;
    check(word == 0xF4008211u, "byte stores");
    halves[1] = 0xBEEF;
    check(word == 0xBEEF8211u, "half-word stores");
    check(((volatile int8_t *)bytes)[1] == -126 && bytes[1] == 0x82, "byte loads extend");
    check(((volatile int16_t *)halves)[1] == -16657 && halves[1] == 0xBEEF,
          "half-word loads extend");
}

/* -- Arithmetic ---------------------------------------------------------------------------- */

static void test_arithmetic(void)
{
    /* volatile: computed by the core at run time, not folded by the compiler. */
    volatile int32_t x = -7, y = 2, big = INT32_MIN, minus_one = -1, zero = 0;
    volatile uint32_t u = 0x80000001u;
    check(x * y == -14 && (int64_t)big * big == 0x4000000000000000ll, "multiply");
    check(x / y == -3 && x % y == -1 && u / 3u == 0x2AAAAAABu && u % 3u == 0, "divide");
    /* RISC-V defines these instead of trapping (with M; compiler-rt without it is C). */
    if (RVNPU_WITH_M) {
        int32_t q, r;
        __asm__ volatile("div %0, %1, %2" : "=r"(q) : "r"(x), "r"(zero));
        __asm__ volatile("rem %0, %1, %2" : "=r"(r) : "r"(x), "r"(zero));
        check(q == -1 && r == -7, "divide by zero");
        __asm__ volatile("div %0, %1, %2" : "=r"(q) : "r"(big), "r"(minus_one));
        __asm__ volatile("rem %0, %1, %2" : "=r"(r) : "r"(big), "r"(minus_one));
        check(q == INT32_MIN && r == 0, "divide overflow");
    }
    check((x >> 1) == -4 && ((uint32_t)x >> 28) == 0xF && (y << 30) == INT32_MIN, "shifts");
}

/* -- Counters and GPIO --------------------------------------------------------------------- */

static void test_counters(void)
{
    uint64_t t0 = rvnpu_timer_cycles(), c0 = rvnpu_rdcycle(), i0 = rvnpu_rdinstret();
    for (volatile int i = 0; i < 10; i++)
        ;
    uint64_t t1 = rvnpu_timer_cycles(), c1 = rvnpu_rdcycle(), i1 = rvnpu_rdinstret();
    check(t1 - t0 > 20 && t1 - t0 < 10000, "timer counts cycles");
    check(c1 - c0 > 20 && c1 - c0 < 10000, "mcycle counts cycles");
    check(i1 - i0 > 10 && i1 - i0 < c1 - c0, "minstret counts instructions");
}

static void test_gpio(void)
{
    rvnpu_set_leds(0x5A);
    check(RVNPU_GPIO_LEDS == 0x5A, "LEDs read back");
    rvnpu_set_leds(0);
}

/* -- Engine -------------------------------------------------------------------------------- */

static void test_engine_status(void)
{
    rvnpu_status(1);
    uint32_t status = rvnpu_fence();
    check(!rvnpu_status_error(status) && !(status & RVNPU_STATUS_WORD_BUSY_MASK),
          "engine idle without errors");
    /* A LOAD reaching past the DMA window must be refused, not wrap around. */
    rvnpu_issue(rvnpu_encode_config_load(16));
    rvnpu_issue(rvnpu_encode_load(RVNPU_RAM_BYTES - 8, 0, RVNPU_SPACE_SPAD_A, 2, 8));
    rvnpu_status_t s = rvnpu_status_decode(rvnpu_fence());
    check(s.error && s.error_code == RVNPU_ERROR_CODE_BAD_MEMORY &&
          s.error_funct == RVNPU_FUNCT_LOAD && s.error_count == 1,
          "engine refuses a LOAD outside RAM");
    rvnpu_status(1);
    check(!rvnpu_status_error(rvnpu_status(0)), "engine error clears");
}

/* Room for every operand of the shapes in main(). */
#define MAX_ELEMS 256
#define MAX_N 48
static uint8_t ga[MAX_ELEMS * RVNPU_ENGINE_ELEM_BYTES], gb[MAX_ELEMS * RVNPU_ENGINE_ELEM_BYTES];
static int32_t gc_engine[MAX_ELEMS], gc_cpu[MAX_ELEMS];
static int32_t gbias[MAX_N], gmult[MAX_N], gshift[MAX_N];
static uint32_t gqp[RVNPU_QP_ROWS * (MAX_N + RVNPU_ENGINE_COLS)];
static uint32_t rng = 0x2545F491u;

static uint32_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static void test_gemm(uint32_t m, uint32_t n, uint32_t k, uint32_t mode)
{
    const uint32_t eb = RVNPU_ENGINE_ELEM_BYTES, w = RVNPU_ENGINE_IN_WIDTH;
    for (uint32_t i = 0; i < m * k * eb; i++)
        ga[i] = (uint8_t)(next() >> 8);
    for (uint32_t i = 0; i < k * n * eb; i++)
        gb[i] = (uint8_t)(next() >> 8);
    if (w < 8)          /* elements are sign-extended in their byte */
        for (uint32_t i = 0; i < sizeof ga; i++) {
            ga[i] = (uint8_t)((int8_t)(ga[i] << (8 - w)) >> (8 - w));
            gb[i] = (uint8_t)((int8_t)(gb[i] << (8 - w)) >> (8 - w));
        }
    for (uint32_t j = 0; j < n; j++) {
        gbias[j] = (int32_t)(next() & 0xFFFF) - 32768;
        gmult[j] = (int32_t)(0x40000000u | (next() >> 2));
        gshift[j] = -(int32_t)(next() % 12) + 1;   /* some left shifts too */
    }
    int32_t hi = (1 << (w - 1)) - 1;
    rvnpu_gemm_t g = {
        .m = m, .n = n, .k = k, .a = ga, .b = gb, .c = gc_engine, .a_zero = 3, .b_zero = -1,
        .qp = gqp,
        .requant = {.mode = mode, .bias = gbias, .multiplier = gmult, .shift = gshift,
                    .out_zero = -2, .clamp_min = -hi - 1, .clamp_max = hi},
    };
    for (uint32_t i = 0; i < MAX_ELEMS; i++)
        gc_engine[i] = gc_cpu[i] = 0x5A5A5A5A;
    rvnpu_status(1);
    uint32_t status;
    int engine = rvnpu_gemm(&g, &status);
    g.c = gc_cpu;
    int cpu = rvnpu_gemm_cpu(&g);
    uint32_t bytes = m * n * (mode == RVNPU_GEMM_RAW ? 4 : eb), bad = 0;
    for (uint32_t i = 0; i < bytes; i++)
        bad += ((uint8_t *)gc_engine)[i] != ((uint8_t *)gc_cpu)[i];
    checks++;
    if (engine || cpu || bad) {
        failures++;
        printf("FAIL gemm %ux%ux%u %s: engine %d (status 0x%08x), cpu %d, %u bytes differ\n",
               m, n, k, mode == RVNPU_GEMM_RAW ? "raw" : "tflite", engine, status, cpu, bad);
    } else {
        printf("ok   gemm %ux%ux%u %s\n", m, n, k, mode == RVNPU_GEMM_RAW ? "raw" : "tflite");
    }
}

int main(void)
{
    printf("rvnpu self-test\n");
    test_startup();
    test_memory();
    test_arithmetic();
    test_counters();
    test_gpio();
    test_engine_status();
    test_gemm(1, 1, 1, RVNPU_GEMM_TFLITE);
    test_gemm(5, 7, 9, RVNPU_GEMM_TFLITE);
    test_gemm(9, 17, 12, RVNPU_GEMM_TFLITE);
    test_gemm(16, 16, 16, RVNPU_GEMM_RAW);
    test_gemm(3, 40, 6, RVNPU_GEMM_TFLITE);
    printf("selftest: %d of %d checks failed\n", failures, checks);
    return failures;
}
