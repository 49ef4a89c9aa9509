/*
 * Start-up code: the core starts here, at address 0, from reset.
 *
 * RAM-only firmware needs no copying: the image is already in place. Set the stack to the top
 * of RAM, point traps at a handler that reports them, zero .bss, run main and hand its return
 * value to rvnpu_exit (which ends a simulation through the SIM.EXIT register).
 */
#include "rvnpu_soc.h"

    .section .text.start, "ax"
    .globl _start
_start:
    la      sp, __stack_top
    la      t0, rvnpu_trap_entry
    csrw    mtvec, t0

    la      t0, __bss_start
    la      t1, __bss_end
1:  bgeu    t0, t1, 2f
    sw      zero, 0(t0)
    addi    t0, t0, 4
    j       1b

2:  li      a0, 0               /* argc */
    li      a1, 0               /* argv */
    call    main
    call    rvnpu_exit          /* does not return */
3:  j       3b

/*
 * Traps are not resumed: the handler prints the cause and exits. It gets a fresh stack, since
 * the trap may have come from a wild stack pointer. mtvec needs a 4-byte-aligned base.
 */
    .text
    .balign 4
    .globl rvnpu_trap_entry
rvnpu_trap_entry:
    csrr    a0, mcause
    csrr    a1, mepc
    csrr    a2, mtval
    la      sp, __stack_top
    call    rvnpu_trap
4:  j       4b
