/* What a trap prints before the firmware exits: enough to find the faulting instruction. */
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
