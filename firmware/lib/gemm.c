/*
 * Tiled GEMM on the engine, weight-stationary.
 *
 * This is rvnpu.compiler.gemm.compile_gemm (dataflow "ws") in C, statement for statement but for
 * the running values of schedule()'s loops, so that the command streams are identical
 * (tests/test_firmware_build.py compares them): change one, change the other.
 */
#include "rvnpu.h"

#define R RVNPU_ENGINE_ROWS
#define C RVNPU_ENGINE_COLS
#define EB RVNPU_ENGINE_ELEM_BYTES

static uint32_t min_u32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

static uint32_t ceil_div(uint32_t a, uint32_t b)
{
    return (a + b - 1) / b;
}

typedef struct {
    const rvnpu_gemm_t *g;
    rvnpu_program_t *program;      /* record commands here instead of issuing them */
    uint32_t raw, out_bytes, qp_resident;
    uint32_t out_addr, qp_addr;
    uint32_t load_stride;          /* the stride the engine holds (UINT32_MAX: unknown) */
    /* A store waits until the next tile's computes are issued (see store()). */
    uint32_t pending, p_acc_row, p_m0, p_rows, p_n, p_cols;
} plan_t;

/* Inlined, so that each call site issues its one instruction without a switch. */
static inline __attribute__((always_inline)) void emit(plan_t *p, rvnpu_cmd_t cmd)
{
    if (p->program)
        rvnpu_program_add(p->program, cmd);
    else
        rvnpu_issue(cmd);
}

/* CONFIG_LOAD only when the stride changes: issuing costs the core tens of cycles a command. */
static inline __attribute__((always_inline)) void config_load(plan_t *p, uint32_t stride)
{
    // lab 5 hole begin: set the load stride only when it changes
    if (stride != p->load_stride) {
        emit(p, rvnpu_encode_config_load(stride));
        p->load_stride = stride;
    }
    // lab 5 starter:
    // emit(p, rvnpu_encode_config_load(stride));
    // lab 5 hole end
}

static void load(plan_t *p, uint32_t dram, uint32_t space, uint32_t row, uint32_t rows,
                 uint32_t cols, uint32_t stride)
{
    /* LOAD moves at most 255 rows. */
    config_load(p, stride);
    for (uint32_t done = 0; done < rows; done += 255) {
        uint32_t part = min_u32(255, rows - done);
        emit(p, rvnpu_encode_load(dram + done * stride, row + done, space, part, cols));
    }
}

static uint32_t qp_load(plan_t *p, uint32_t n)
{
    if (p->qp_resident)
        return n * RVNPU_QP_ROWS;
    uint32_t row = n % (RVNPU_ENGINE_QP_DEPTH / RVNPU_QP_ROWS) * RVNPU_QP_ROWS;
    config_load(p, C * 4);
    emit(p, rvnpu_encode_load(p->qp_addr + n * RVNPU_QP_ROWS * C * 4, row, RVNPU_SPACE_QP,
                              RVNPU_QP_ROWS, C));
    return row;
}

static void emit_store(plan_t *p)
{
    uint32_t n = p->p_n;
    uint32_t qp_row = p->raw ? 0 : qp_load(p, n);
    uint32_t addr = p->out_addr + (p->p_m0 * p->g->n + n * C) * p->out_bytes;
    emit(p, rvnpu_encode_config_store(p->g->n * p->out_bytes, qp_row));
    if (p->raw)
        emit(p, rvnpu_encode_store_acc(addr, p->p_acc_row, p->p_rows, p->p_cols));
    else
        emit(p, rvnpu_encode_store(addr, p->p_acc_row, p->p_rows, p->p_cols));
    p->pending = 0;
}

/* Store a tile once the next tile's computes are queued: the front end dispatches in order, so
 * a STORE waiting for its COMPUTE would otherwise leave the array idle while it drains. */
static void store(plan_t *p, uint32_t acc_row, uint32_t m0, uint32_t rows, uint32_t n,
                  uint32_t cols)
{
    // lab 5 hole begin: hold the store back until the next tile's computes are issued
    if (p->pending)
        emit_store(p);
    p->pending = 1;
    p->p_acc_row = acc_row;
    p->p_m0 = m0;
    p->p_rows = rows;
    p->p_n = n;
    p->p_cols = cols;
    // lab 5 starter:
    // p->p_acc_row = acc_row;
    // p->p_m0 = m0;
    // p->p_rows = rows;
    // p->p_n = n;
    // p->p_cols = cols;
    // emit_store(p);
    // lab 5 hole end
}

static uint32_t float_bits(float value)
{
    union { float f; uint32_t u; } u;
    u.f = value;
    return u.u;
}

/* Requantisation parameters: 3 rows (bias, multiplier or scale, shift) an N tile. */
static void fill_qp(const rvnpu_gemm_t *g, uint32_t n_tiles)
{
    const rvnpu_requant_t *q = &g->requant;
    for (uint32_t t = 0; t < n_tiles; t++) {
        uint32_t *rows = g->qp + t * RVNPU_QP_ROWS * C;
        for (uint32_t j = 0; j < C; j++) {
            uint32_t n = t * C + j;
            uint32_t bias = 0, scale = 0, shift = 0;
            if (n < g->n) {
                bias = q->bias ? (uint32_t)q->bias[n] : 0;
                if (q->mode == RVNPU_GEMM_TFLITE) {
                    scale = (uint32_t)(q->multiplier ? q->multiplier[n] : q->multiplier_all);
                    shift = (uint32_t)(q->shift ? q->shift[n] : q->shift_all);
                } else {
                    scale = float_bits(q->scale ? q->scale[n] : q->scale_all);
                }
            }
            rows[j] = bias;
            rows[C + j] = scale;
            rows[2 * C + j] = shift;
        }
    }
}

static int schedule(const rvnpu_gemm_t *g, rvnpu_program_t *program)
{
    const uint32_t M = g->m, N = g->n, K = g->k;
    if (!M || !N || !K)
        return RVNPU_GEMM_BAD_SHAPE;
    if (!RVNPU_ENGINE_WITH_WS)
        return RVNPU_GEMM_NO_WS;
    if (g->requant.mode > RVNPU_GEMM_RAW
            || (g->requant.mode == RVNPU_GEMM_TFLITE && !RVNPU_ENGINE_WITH_TFLITE)
            || (g->requant.mode == RVNPU_GEMM_ORT && !RVNPU_ENGINE_WITH_ORT))
        return RVNPU_GEMM_BAD_MODE;

    /* Weight-stationary: an R x C weight tile stays in the array while up to mb rows of A
     * stream past it; all K chunks of an M block of A stay in SPAD_A. */
    const uint32_t kc = ceil_div(K, R);
    const uint32_t half = RVNPU_ENGINE_SPAD_DEPTH / 2;
    uint32_t mb = min_u32(min_u32(M, 1023), RVNPU_ENGINE_ACC_DEPTH / 2);
    mb = min_u32(mb, kc <= half ? half / kc : 0);
    if (mb < 1)
        return RVNPU_GEMM_TOO_DEEP;

    plan_t p = {0};
    p.g = g;
    p.program = program;
    p.load_stride = UINT32_MAX;
    p.raw = g->requant.mode == RVNPU_GEMM_RAW;
    p.out_bytes = p.raw ? 4 : EB;
    p.out_addr = RVNPU_DMA_ADDR(g->c);
    const uint32_t n_tiles = ceil_div(N, C);
    const uint32_t a_addr = RVNPU_DMA_ADDR(g->a), b_addr = RVNPU_DMA_ADDR(g->b);

    emit(&p, rvnpu_encode_config_exec(RVNPU_DATAFLOW_WS, !g->a_unsigned, !g->b_unsigned,
                                      g->a_zero, g->b_zero));
    if (!p.raw) {
        const rvnpu_requant_t *q = &g->requant;
        fill_qp(g, n_tiles);
        p.qp_addr = RVNPU_DMA_ADDR(g->qp);
        emit(&p, rvnpu_encode_config_requant(q->out_zero, q->mode, q->clamp_min,
                                             q->clamp_max));
        p.qp_resident = n_tiles * RVNPU_QP_ROWS <= min_u32(RVNPU_ENGINE_QP_DEPTH, 255);
        if (p.qp_resident) {
            config_load(&p, C * 4);
            emit(&p, rvnpu_encode_load(p.qp_addr, 0, RVNPU_SPACE_QP, n_tiles * RVNPU_QP_ROWS,
                                       C));
        }
    }

    /* The loops keep running values (addresses, rows, the weight slot) where compile_gemm
     * multiplies and divides: on the core a multiplication costs 36 cycles with M (a library
     * call without) and a shift 4 + n with the serial shifter (docs/core.md), tens of cycles a
     * command. The values, and so the commands, are the same. */
    const uint32_t slot_end = RVNPU_ENGINE_SPAD_DEPTH / R * R;     /* b_slots * R */
    const uint32_t a_chunk = R * EB, b_chunk = R * N * EB;
    const uint32_t a_step = mb * K * EB;
    uint32_t slot = 0;                                              /* b_next % b_slots * R */
    uint32_t a_block = a_addr;
    for (uint32_t bi = 0, m0 = 0; m0 < M; bi++, m0 += mb, a_block += a_step) {
        uint32_t rows = min_u32(mb, M - m0);
        uint32_t a_base = bi % 2 * kc * mb;
        for (uint32_t n = 0, b_tile = b_addr; n < n_tiles; n++, b_tile += C * EB) {
            uint32_t cols = min_u32(C, N - n * C);
            uint32_t acc_base = (bi * n_tiles + n) % 2 * mb;
            uint32_t a_row = a_base, a_dram = a_block, b_dram = b_tile, k_left = K;
            for (uint32_t j = 0; j < kc; j++) {
                uint32_t k_rows = min_u32(R, k_left);
                /* Each K chunk of A just before its first use: the load unit is in order,
                 * so loading the whole block first would hold back the weights. */
                if (n == 0)
                    load(&p, a_dram, RVNPU_SPACE_SPAD_A, a_row, rows, k_rows, K * EB);
                load(&p, b_dram, RVNPU_SPACE_SPAD_B, slot, k_rows, cols, N * EB);
                // lab 5 hole begin: which K chunks add to the accumulators
                uint32_t accumulate = j > 0;
                // lab 5 starter:
                // uint32_t accumulate = 0;
                // lab 5 hole end
                emit(&p, rvnpu_encode_compute(a_row, slot, acc_base, rows, k_rows, accumulate));
                slot = slot + R == slot_end ? 0 : slot + R;
                a_row += mb;
                a_dram += a_chunk;
                b_dram += b_chunk;
                k_left -= R;
            }
            store(&p, acc_base, m0, rows, n, cols);
        }
    }
    if (p.pending)
        emit_store(&p);
    return RVNPU_GEMM_OK;
}

int rvnpu_gemm_start(const rvnpu_gemm_t *g)
{
    return schedule(g, 0);
}

int rvnpu_gemm_record(const rvnpu_gemm_t *g, rvnpu_program_t *program)
{
    int result = schedule(g, program);
    if (result == RVNPU_GEMM_OK && program->count + 1 > program->capacity)
        return RVNPU_GEMM_NO_ROOM;
    return result;
}

#if !RVNPU_ENGINE_WITH_REQUANT
#ifndef RVNPU_GEMM_SCRATCH_WORDS
#define RVNPU_GEMM_SCRATCH_WORDS 1024
#endif
/* Raw sums of a block of whole output rows, for the core to requantise. */
static int32_t scratch[RVNPU_GEMM_SCRATCH_WORDS];

static int gemm_requant_on_core(const rvnpu_gemm_t *g, uint32_t *status)
{
    if (!g->m || !g->n || !g->k)
        return RVNPU_GEMM_BAD_SHAPE;
    if (g->n > RVNPU_GEMM_SCRATCH_WORDS)
        return RVNPU_GEMM_TOO_WIDE;
    const uint32_t block = RVNPU_GEMM_SCRATCH_WORDS / g->n;
    rvnpu_gemm_t raw = *g;
    raw.requant.mode = RVNPU_GEMM_RAW;
    raw.c = scratch;
    uint32_t word = 0;
    uint8_t *out = (uint8_t *)g->c;
    for (uint32_t m0 = 0; m0 < g->m; m0 += block) {
        raw.m = min_u32(block, g->m - m0);
        raw.a = (const uint8_t *)g->a + m0 * g->k * EB;
        int result = schedule(&raw, 0);
        if (result != RVNPU_GEMM_OK)
            return result;
        word = rvnpu_fence();
        if (rvnpu_status_error(word))
            break;
        const int32_t *sum = scratch;
        for (uint32_t i = 0; i < raw.m; i++)
            for (uint32_t n = 0; n < g->n; n++, out += EB)
                rvnpu_put_element(out, rvnpu_requant_tflite(*sum++, n, &g->requant));
    }
    if (status)
        *status = word;
    return rvnpu_status_error(word) ? RVNPU_GEMM_REFUSED : RVNPU_GEMM_OK;
}
#endif

int rvnpu_gemm(const rvnpu_gemm_t *g, uint32_t *status)
{
#if !RVNPU_ENGINE_WITH_REQUANT
    if (g->requant.mode == RVNPU_GEMM_TFLITE)
        return gemm_requant_on_core(g, status);
#endif
    int result = rvnpu_gemm_start(g);
    if (result != RVNPU_GEMM_OK)
        return result;
    uint32_t word = rvnpu_fence();
    if (status)
        *status = word;
    return rvnpu_status_error(word) ? RVNPU_GEMM_REFUSED : RVNPU_GEMM_OK;
}
