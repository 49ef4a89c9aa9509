/*
 * rvnpu_gemm.h: C = requantize((A - a_zero) @ (B - b_zero) + bias) of any M, N, K on the engine.
 *
 * rvnpu_gemm() issues the same command stream as the Python compiler
 * (rvnpu.compiler.gemm.compile_gemm, weight-stationary schedule) for the same shapes, so results are
 * bit-exact with rvnpu.sim.golden.gemm.gemm_reference and timings match the engine benchmarks. Loads run
 * ahead of the array through rotating scratchpad slots; the engine's hazard checks make that
 * safe, so nothing waits until the final FENCE.
 *
 * Matrices are dense and row-major in RAM: A is M x K, B is K x N, C is M x N. Elements take
 * RVNPU_ENGINE_ELEM_BYTES bytes (outputs too), or 4 for raw int32 sums.
 */
#ifndef RVNPU_GEMM_H
#define RVNPU_GEMM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How int32 sums become outputs: the engine's requantisation modes, or raw sums. */
enum rvnpu_gemm_mode {
    RVNPU_GEMM_TFLITE = RVNPU_REQUANT_MODE_TFLITE,   /* Q31 multiplier and shift per channel */
    RVNPU_GEMM_ORT = RVNPU_REQUANT_MODE_ORT,         /* float32 scale per channel */
    RVNPU_GEMM_RAW = 2,                              /* int32 sums, no bias */
};

typedef struct {
    uint32_t mode;               /* enum rvnpu_gemm_mode */
    const int32_t *bias;         /* N values, or NULL for none */
    const int32_t *multiplier;   /* TFLITE: N values, or NULL for multiplier_all everywhere */
    const int32_t *shift;        /* TFLITE: N values (> 0 shifts left), or NULL: shift_all */
    const float *scale;          /* ORT: N values, or NULL for scale_all */
    int32_t multiplier_all, shift_all;
    float scale_all;
    int32_t out_zero;            /* added after scaling */
    int32_t clamp_min, clamp_max;   /* activation: ReLU is clamp_min = out_zero */
} rvnpu_requant_t;

typedef struct {
    uint32_t m, n, k;
    const void *a, *b;
    void *c;
    int32_t a_zero, b_zero;
    uint32_t a_unsigned, b_unsigned;   /* 0: signed elements (the default) */
    rvnpu_requant_t requant;
    uint32_t *qp;                /* rvnpu_gemm_qp_words(n) words of workspace (not for RAW) */
} rvnpu_gemm_t;

/* Results of rvnpu_gemm(); engine refusals leave the status word in *status. */
enum rvnpu_gemm_result {
    RVNPU_GEMM_OK = 0,
    RVNPU_GEMM_BAD_SHAPE = 1,    /* M, N or K is 0 */
    RVNPU_GEMM_TOO_DEEP = 2,     /* K needs more than half of the scratchpad a row of A */
    RVNPU_GEMM_NO_WS = 3,        /* the engine was built without the weight-stationary flow */
    RVNPU_GEMM_BAD_MODE = 4,     /* mode is not one of enum rvnpu_gemm_mode, or not built */
    RVNPU_GEMM_REFUSED = 5,      /* the engine refused a command (bad zero point, clamp...) */
    RVNPU_GEMM_NO_ROOM = 6,      /* the program's capacity is too small (see its count) */
    RVNPU_GEMM_TOO_WIDE = 7,     /* N is over RVNPU_GEMM_SCRATCH_WORDS (requantised on the core) */
};

/* Words of requantisation-parameter workspace a GEMM with n output columns needs. */
static inline uint32_t rvnpu_gemm_qp_words(uint32_t n)
{
    return (n + RVNPU_ENGINE_COLS - 1) / RVNPU_ENGINE_COLS * RVNPU_QP_ROWS * RVNPU_ENGINE_COLS;
}

/* Issue a GEMM's commands without waiting for them (the engine works while the core goes on).
 * Returns an enum rvnpu_gemm_result; nothing is issued unless it is RVNPU_GEMM_OK. */
int rvnpu_gemm_start(const rvnpu_gemm_t *gemm);

/* rvnpu_gemm_start, then FENCE: C is complete on return. `status` (may be NULL) receives the
 * FENCE's status word; its error bit is sticky, so clear it (rvnpu_status(1)) beforehand to
 * blame this GEMM alone.
 *
 * An engine built without requantisation (RVNPU_ENGINE_WITH_REQUANT 0, the iCEBreaker's) has
 * no STORE: there rvnpu_gemm runs a TFLITE GEMM raw, RVNPU_GEMM_SCRATCH_WORDS int32 sums at a
 * time (whole rows; 1024 unless defined when the library is built), and requantises them on
 * the core, bit-exact all the same. rvnpu_gemm_start and rvnpu_gemm_record, which do not
 * wait, cannot and return RVNPU_GEMM_BAD_MODE. */
int rvnpu_gemm(const rvnpu_gemm_t *gemm, uint32_t *status);

/* Append the GEMM's commands (without the final FENCE) to `program`, for rvnpu_program_run
 * to issue, as often as wanted: the requantisation table is written to gemm->qp now, and
 * the operands are read when the program runs. Returns RVNPU_GEMM_NO_ROOM if the program
 * could not hold them all; its count then says how many commands it needs room for. */
int rvnpu_gemm_record(const rvnpu_gemm_t *gemm, rvnpu_program_t *program);

/* The same GEMM on the core alone (TFLITE and RAW modes), a reference to check the engine
 * against and to compare speed with. Returns an enum rvnpu_gemm_result. */
int rvnpu_gemm_cpu(const rvnpu_gemm_t *gemm);

/* TFLITE requantisation of one int32 sum of output column n (bias, scaling, zero point,
 * clamp), as the engine's lane does it. */
int32_t rvnpu_requant_tflite(int32_t acc, uint32_t n, const rvnpu_requant_t *q);

/* Write an output element (RVNPU_ENGINE_ELEM_BYTES bytes, little-endian). */
void rvnpu_put_element(void *out, int32_t value);

#ifdef __cplusplus
}
#endif

#endif /* RVNPU_GEMM_H */
