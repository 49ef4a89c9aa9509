/*
 * Recorded command lists, replayed as threaded code: one small piece of assembly a function
 * code, each ending in a jump to the next command's piece (see rvnpu_program.h).
 */
#include "rvnpu.h"

#ifdef RVNPU_HOST
/* On a host the pieces are C functions, called in a loop. */
#define RVNPU_PIECE(name, funct7, answers)                                 \
    static void piece_##name(uint32_t op1, uint32_t op2)                  \
    {                                                                     \
        rvnpu_host_issue(funct7, op1, op2);                               \
    }
RVNPU_FOR_EACH_COMMAND(RVNPU_PIECE)
#undef RVNPU_PIECE
#define PIECE(name) ((const void *)piece_##name)
#else
/*
 * a0 points at the current entry {code, op1, op2}; the piece issues it, steps a0 and jumps to
 * the next entry's code. An answering command (FENCE, STATUS) writes its answer to t1, where
 * it is dropped: the engine sends an answer either way, and one left unread would be taken by
 * the next instruction that waits for one. rvnpu_piece_end returns to rvnpu_program_run.
 */
#define RVNPU_DECLARE(name, funct7, answers) extern const char rvnpu_piece_##name[];
RVNPU_FOR_EACH_COMMAND(RVNPU_DECLARE)
#undef RVNPU_DECLARE
#define PIECE(name) ((const void *)rvnpu_piece_##name)

#define RVNPU_PIECE(name, funct7, answers)                                 \
    __asm__(".pushsection .text.rvnpu_program, \"ax\"\n"                  \
            ".balign 4\n"                                                 \
            "rvnpu_piece_" #name ":\n"                                    \
            "    lw a1, 4(a0)\n"                                          \
            "    lw a2, 8(a0)\n"                                          \
            "    .insn r 0x0B, 0, " #funct7 ", " RVNPU_RD_##answers ", a1, a2\n" \
            "    lw t0, 12(a0)\n"                                         \
            "    addi a0, a0, 12\n"                                       \
            "    jr t0\n"                                                 \
            ".popsection\n");
#define RVNPU_RD_0 "x0"
#define RVNPU_RD_1 "t1"
RVNPU_FOR_EACH_COMMAND(RVNPU_PIECE)
#undef RVNPU_PIECE

/* Enter the thread at ops[0]; the end marker's code returns here. */
__asm__(".pushsection .text.rvnpu_program, \"ax\"\n"
        ".balign 4\n"
        "rvnpu_program_enter:\n"
        "    lw t0, 0(a0)\n"
        "    jr t0\n"
        "rvnpu_piece_end:\n"
        "    ret\n"
        ".popsection\n");
extern const char rvnpu_piece_end[];
void rvnpu_program_enter(const rvnpu_op_t *ops);
#endif

int rvnpu_program_add(rvnpu_program_t *program, rvnpu_cmd_t cmd)
{
    const void *code;
    switch (cmd.funct) {
#define RVNPU_CASE(name, funct7, answers)                                  \
    case funct7:                                                          \
        code = PIECE(name);                                               \
        break;
    RVNPU_FOR_EACH_COMMAND(RVNPU_CASE)
#undef RVNPU_CASE
    default:
        return -1;
    }
    uint32_t index = program->count++;
    if (index + 1 >= program->capacity)     /* keep an entry for the end marker */
        return -1;
    program->ops[index].code = code;
    program->ops[index].op1 = cmd.op1;
    program->ops[index].op2 = cmd.op2;
    return 0;
}

uint32_t rvnpu_program_run(rvnpu_program_t *program)
{
    if (program->count + 1 > program->capacity)
        return 0xFFFFFFFFu;
#ifdef RVNPU_HOST
    for (uint32_t i = 0; i < program->count; i++)
        ((void (*)(uint32_t, uint32_t))program->ops[i].code)(program->ops[i].op1,
                                                               program->ops[i].op2);
#else
    program->ops[program->count].code = rvnpu_piece_end;
    rvnpu_program_enter(program->ops);
#endif
    return rvnpu_fence();
}
