/* What a trap prints before the firmware exits: enough to find the faulting instruction; and
 * the interrupt entry, which hands interrupts to the handler firmware registers. */
#include "rvnpu.h"

static const char *cause_name(uint32_t mcause)
{
    if (mcause >> 31)
        return "interrupt";
    switch (mcause) {
    case 0: return "instruction address misaligned";
    case 1: return "instruction access fault";
    case 2: return "illegal instruction";
    case 3: return "breakpoint";
    case 4: return "load address misaligned";
    case 5: return "load access fault";
    case 6: return "store address misaligned";
    case 7: return "store access fault";
    case 11: return "environment call from M-mode";
    default: return "unknown";
    }
}

/* Weak, so that firmware may handle traps its own way. */
__attribute__((weak, noreturn)) void rvnpu_trap(uint32_t mcause, uint32_t mepc, uint32_t mtval)
{
    printf("\ntrap: mcause=0x%08x (%s) mepc=0x%08x mtval=0x%08x\n", mcause,
           cause_name(mcause), mepc, mtval);
    rvnpu_exit(RVNPU_EXIT_TRAP);
}

static rvnpu_irq_handler_t irq_handler;

/* mtvec once a handler is set. The attribute saves the registers it uses and returns with
 * mret; an exception leaves for crt0's rvnpu_trap_entry, which takes a fresh stack. */
__attribute__((interrupt("machine"), aligned(4))) static void irq_entry(void)
{
    uint32_t mcause;
    __asm__ volatile("csrr %0, mcause" : "=r"(mcause));
    if (mcause >> 31)
        irq_handler(mcause & 0x7FFFFFFFu);
    else
        __asm__ volatile("j rvnpu_trap_entry");
}

void rvnpu_irq_set_handler(rvnpu_irq_handler_t handler)
{
    extern char rvnpu_trap_entry[];
    irq_handler = handler;
    uint32_t vector = handler ? (uint32_t)(uintptr_t)irq_entry
                              : (uint32_t)(uintptr_t)rvnpu_trap_entry;
    __asm__ volatile("csrw mtvec, %0" : : "r"(vector) : "memory");
}
