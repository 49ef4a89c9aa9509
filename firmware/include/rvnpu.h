/*
 * rvnpu.h: what firmware needs to drive the rvnpu SoC.
 *
 * - the generated rvnpu_soc.h (memory map, SoC parameters) and rvnpu_engine.h (engine command
 *   encoders), which match the hardware by construction;
 * - engine intrinsics: each command is one custom-0 instruction (opcode 0x0B, funct3 0,
 *   funct7 = function code, rs1 = op1, rs2 = op2, rd = answer for FENCE and STATUS);
 * - cycle counters, exit, and (through the headers included at the end) UART I/O, GEMM and
 *   convolution, element-wise operations.
 *
 * Built with -DRVNPU_HOST, commands go to rvnpu_host_issue() instead, so the command stream of
 * library code can be checked on a workstation.
 */
#ifndef RVNPU_H
#define RVNPU_H

#include <stdint.h>
#include "rvnpu_soc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* -- Engine intrinsics ------------------------------------------------------------------- */

#ifdef RVNPU_HOST
uint32_t rvnpu_host_issue(uint32_t funct, uint32_t op1, uint32_t op2);
#else
/* One custom-0 instruction; "memory" orders it after the stores that filled its operands. */
// lab 5 hole begin: the custom-0 instructions (opcode 0x0B, funct3 0), without and with an answer
#define RVNPU_CUSTOM0(funct7, rs1, rs2) \
    __asm__ volatile(".insn r 0x0B, 0, %0, x0, %1, %2" \
                     : : "i"(funct7), "r"(rs1), "r"(rs2) : "memory")
#define RVNPU_CUSTOM0_RD(funct7, rd, rs1, rs2) \
    __asm__ volatile(".insn r 0x0B, 0, %1, %0, %2, %3" \
                     : "=r"(rd) : "i"(funct7), "r"(rs1), "r"(rs2) : "memory")
// lab 5 starter:
// #define RVNPU_CUSTOM0(funct7, rs1, rs2) ((void)(rs1), (void)(rs2))
// #define RVNPU_CUSTOM0_RD(funct7, rd, rs1, rs2) ((void)(rs1), (void)(rs2), (rd) = 0)
// lab 5 hole end
#endif

/*
 * Issue one command; returns the engine's answer for FENCE and STATUS (the core waits for it),
 * 0 for the others. The instruction's funct7 is an immediate, so the switch over the known
 * function codes folds to a single instruction when cmd.funct is a constant. An unknown
 * function code issues nothing and returns 0xFFFFFFFF. Always inlined: at -Os the switch
 * grows with the engine's command set, and once clang stops inlining it every command pays
 * a call, its operands spilled to the stack and a jump table (tens of cycles a command).
 */
static inline __attribute__((always_inline)) uint32_t rvnpu_issue(rvnpu_cmd_t cmd)
{
#ifdef RVNPU_HOST
    return rvnpu_host_issue(cmd.funct, cmd.op1, cmd.op2);
#else
    uint32_t answer = 0;
    switch (cmd.funct) {
#define RVNPU_ISSUE_CASE(name, funct7, answers)                          \
    case funct7:                                                         \
        if (answers)                                                     \
            RVNPU_CUSTOM0_RD(funct7, answer, cmd.op1, cmd.op2);          \
        else                                                             \
            RVNPU_CUSTOM0(funct7, cmd.op1, cmd.op2);                     \
        return answer;
    RVNPU_FOR_EACH_COMMAND(RVNPU_ISSUE_CASE)
#undef RVNPU_ISSUE_CASE
    default:
        return 0xFFFFFFFFu;
    }
#endif
}

/* Wait until every command issued so far has finished; returns the status word. */
static inline uint32_t rvnpu_fence(void)
{
    return rvnpu_issue(rvnpu_encode_fence());
}

/* The status word now; with clear != 0 the sticky error is cleared after reading it. */
static inline uint32_t rvnpu_status(uint32_t clear)
{
    return rvnpu_issue(rvnpu_encode_status(clear ? 1u : 0u, 0u));
}

/* True if the status word reports a refused command. */
static inline int rvnpu_status_error(uint32_t status)
{
    return (status & RVNPU_STATUS_WORD_ERROR_MASK) != 0;
}

/* A byte address in RAM as the engine's DMA sees it (RAM starts at the DMA window's 0). On a
 * host, rvnpu_host_ram stands in for the RAM. */
#ifdef RVNPU_HOST
extern uint8_t rvnpu_host_ram[];
#define RVNPU_DMA_ADDR(pointer) ((uint32_t)((const uint8_t *)(pointer) - rvnpu_host_ram))
#endif
#ifndef RVNPU_DMA_ADDR
#define RVNPU_DMA_ADDR(pointer) ((uint32_t)(uintptr_t)(pointer) - RVNPU_RAM_BASE)
#endif

/* -- Cycle counters ---------------------------------------------------------------------- */

#ifndef RVNPU_HOST
/* The core's mcycle/mcycleh CSRs (what rdcycle reads), read as one consistent 64-bit value. */
static inline uint64_t rvnpu_rdcycle(void)
{
    uint32_t hi, lo, hi2;
    do {
        __asm__ volatile("csrr %0, mcycleh" : "=r"(hi));
        __asm__ volatile("csrr %0, mcycle" : "=r"(lo));
        __asm__ volatile("csrr %0, mcycleh" : "=r"(hi2));
    } while (hi != hi2);
    return ((uint64_t)hi << 32) | lo;
}

/* Retired instructions (minstret/minstreth). */
static inline uint64_t rvnpu_rdinstret(void)
{
    uint32_t hi, lo, hi2;
    do {
        __asm__ volatile("csrr %0, minstreth" : "=r"(hi));
        __asm__ volatile("csrr %0, minstret" : "=r"(lo));
        __asm__ volatile("csrr %0, minstreth" : "=r"(hi2));
    } while (hi != hi2);
    return ((uint64_t)hi << 32) | lo;
}
#endif

/* Clock cycles since reset, from the TIMER peripheral (reading the low word latches the high). */
static inline uint64_t rvnpu_timer_cycles(void)
{
    uint32_t lo = RVNPU_TIMER_CYCLE_LO;
    return ((uint64_t)RVNPU_TIMER_CYCLE_HI << 32) | lo;
}

/* Cycles since reset in which the engine fed its systolic array. */
static inline uint64_t rvnpu_active_cycles(void)
{
    uint32_t lo = RVNPU_TIMER_ACTIVE_LO;
    return ((uint64_t)RVNPU_TIMER_ACTIVE_HI << 32) | lo;
}

/* Cycles the core spent waiting in WFI (TIMER.SLEEP; reading the low word latches the high). */
static inline uint64_t rvnpu_sleep_cycles(void)
{
    uint32_t lo = RVNPU_TIMER_SLEEP_LO;
    return ((uint64_t)RVNPU_TIMER_SLEEP_HI << 32) | lo;
}

/* Raise the timer interrupt once the TIMER's cycle count reaches `when` (UINT64_MAX: never).
 * The high word goes to all ones first, so no mix of old and new words fires early. */
static inline void rvnpu_timer_set_compare(uint64_t when)
{
    RVNPU_TIMER_MTIMECMP_HI = 0xFFFFFFFFu;
    RVNPU_TIMER_MTIMECMP_LO = (uint32_t)when;
    RVNPU_TIMER_MTIMECMP_HI = (uint32_t)(when >> 32);
}

/* -- Interrupts ------------------------------------------------------------------------- */

/* The core's interrupts: each one's bit in mie/mip and its code in mcause (bit 31 set). */
#define RVNPU_IRQ_EXTERNAL 11   /* the engine: a command list finished */
#define RVNPU_IRQ_TIMER 7       /* TIMER: cycle count >= MTIMECMP */
#define RVNPU_IRQ_BIT(irq) (1u << (irq))

#ifndef RVNPU_HOST
/* Wait until an interrupt enabled in mie is pending (whether or not interrupts are on). */
static inline void rvnpu_wfi(void)
{
    __asm__ volatile("wfi" ::: "memory");
}

/* Enable the interrupts in `mask` (RVNPU_IRQ_BIT(...)) and turn interrupts on (mstatus.MIE). */
static inline void rvnpu_irq_enable(uint32_t mask)
{
    __asm__ volatile("csrs mie, %0\n\tcsrsi mstatus, 8" : : "r"(mask) : "memory");
}

/* Disable the interrupts in `mask`; the others stay as they are. */
static inline void rvnpu_irq_disable(uint32_t mask)
{
    __asm__ volatile("csrc mie, %0" : : "r"(mask) : "memory");
}

/* Called with the interrupt's code (RVNPU_IRQ_TIMER, RVNPU_IRQ_EXTERNAL), with interrupts off;
 * it must remove the cause (move MTIMECMP, clear the engine's status) before returning. */
typedef void (*rvnpu_irq_handler_t)(uint32_t irq);

/* Route interrupts to `handler` (NULL: back to reporting every trap as fatal). Exceptions
 * are still reported by rvnpu_trap. */
void rvnpu_irq_set_handler(rvnpu_irq_handler_t handler);
#endif

/* -- Free RAM --------------------------------------------------------------------------- */

#ifndef RVNPU_HOST
/* The RAM no section uses (between .bss and the stack's reserve): *bytes receives its size.
 * There is no allocator; firmware carves buffers out of it itself. */
static inline void *rvnpu_free_ram(uint32_t *bytes)
{
    extern char __free_start[], __free_end[];
    uintptr_t start = ((uintptr_t)__free_start + 15) & ~(uintptr_t)15;
    *bytes = (uintptr_t)__free_end > start ? (uint32_t)((uintptr_t)__free_end - start) : 0;
    return (void *)start;
}
#endif

/* -- GPIO and exit ----------------------------------------------------------------------- */

static inline void rvnpu_set_leds(uint32_t leds)
{
    RVNPU_GPIO_LEDS = leds;
}

static inline uint32_t rvnpu_buttons(void)
{
    return RVNPU_GPIO_BUTTONS;
}

/* Wait until the UART has sent everything, then end the simulation with `code`. */
__attribute__((noreturn)) void rvnpu_exit(int code);

/* Reports a trap (mcause, mepc, mtval) on the UART and exits with RVNPU_EXIT_TRAP. */
#define RVNPU_EXIT_TRAP 0xE0
__attribute__((noreturn)) void rvnpu_trap(uint32_t mcause, uint32_t mepc, uint32_t mtval);

#ifdef __cplusplus
}
#endif

#include "rvnpu_stdio.h"
#include "rvnpu_program.h"
#include "rvnpu_gemm.h"
#include "rvnpu_conv.h"
#include "rvnpu_eltwise.h"

/* -- Command lists (RUN) ----------------------------------------------------------------- */

/*
 * The engine runs a list of commands from RAM by itself (RUN), so the core issues one
 * instruction for a whole layer and may sleep meanwhile. Fill an array of rvnpu_list_entry_t
 * (rvnpu_list_entry(cmd) makes one), aligned to RVNPU_LIST_ENTRY_BYTES (declare it with
 * RVNPU_LIST_ALIGNED), and hand it to rvnpu_run_list().
 * FENCE, STATUS and RUN cannot be list entries (the engine refuses and skips them).
 *
 * On an engine built without the command fetcher (RVNPU_ENGINE_COMMAND_FETCH 0),
 * rvnpu_run_list() issues the entries itself, so the same firmware runs on both.
 */
#define RVNPU_LIST_ALIGNED __attribute__((aligned(RVNPU_LIST_ENTRY_BYTES)))

/* Issue every entry of a list from the core, as RUN would run it (FENCE, STATUS and RUN
 * skipped): the fallback without a command fetcher, and a reference to measure RUN against. */
static inline void rvnpu_list_issue(const rvnpu_list_entry_t *list, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++) {
        uint32_t funct = list[i].funct & 0x7Fu;
        if (funct == RVNPU_FUNCT_FENCE || funct == RVNPU_FUNCT_STATUS || funct == RVNPU_FUNCT_RUN)
            continue;
        rvnpu_cmd_t cmd = {funct, list[i].op1, list[i].op2};
        rvnpu_issue(cmd);
    }
}

/* Start the engine on a command list of `count` entries; returns at once (the core's later
 * commands, other than STATUS, wait until the list has finished). */
static inline void rvnpu_run_list(const rvnpu_list_entry_t *list, uint32_t count)
{
#if RVNPU_ENGINE_COMMAND_FETCH
    rvnpu_issue(rvnpu_encode_run(RVNPU_DMA_ADDR(list), count));
#else
    rvnpu_list_issue(list, count);
#endif
}

/* True once the status word says a list (and everything it issued) has finished. */
static inline int rvnpu_status_list_done(uint32_t status)
{
    return (status & RVNPU_STATUS_WORD_LIST_DONE_MASK) != 0;
}

/* Wait for the list by polling STATUS, then acknowledge list_done (the interrupt); returns
 * the status word, whose error fields tell whether an entry was refused. */
static inline uint32_t rvnpu_list_poll(void)
{
#if RVNPU_ENGINE_COMMAND_FETCH
    uint32_t status;
    while (!rvnpu_status_list_done(status = rvnpu_status(0)))
        ;
    rvnpu_issue(rvnpu_encode_status(0u, 1u));
    return status;
#else
    return rvnpu_fence();
#endif
}

/*
 * Wait for the list asleep: WFI until the engine's interrupt (list_done, on the machine external
 * interrupt line, enabled here in mie.MEIE) wakes the core, then acknowledge it; returns the
 * status word. With mstatus.MIE clear (as after reset) the interrupt only wakes WFI; with it set,
 * the trap handler runs first and must leave list_done for this function to acknowledge. The line
 * is a level, so a list finishing between the check and the WFI still wakes it.
 */
static inline uint32_t rvnpu_list_wait(void)
{
#if RVNPU_ENGINE_COMMAND_FETCH && !defined(RVNPU_HOST)
    uint32_t status;
    __asm__ volatile("csrs mie, %0" : : "r"(1u << 11));
    while (!rvnpu_status_list_done(status = rvnpu_status(0)))
        __asm__ volatile("wfi");
    rvnpu_issue(rvnpu_encode_status(0u, 1u));
    return status;
#else
    return rvnpu_list_poll();
#endif
}

#endif /* RVNPU_H */
