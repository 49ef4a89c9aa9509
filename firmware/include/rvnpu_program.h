/*
 * rvnpu_program.h: engine command lists, recorded once and replayed fast.
 *
 * Encoding a command takes the core many cycles (its serial shifter moves one bit a cycle; a
 * barrel shifter still leaves about a hundred a command), often more than the engine needs to
 * run the command. A runtime that runs the same layer again and again records its commands
 * once, with their encodings, and replays them: replaying costs a few loads and an indirect
 * call a command, so the engine, not the core, sets the pace.
 */
#ifndef RVNPU_PROGRAM_H
#define RVNPU_PROGRAM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * One recorded command: `code` is where the code issuing its function code starts. The list is
 * threaded code: each piece loads its operands, issues the custom-0 instruction and jumps
 * straight to the next command's piece, so a command costs 3 loads, 1 add and 2 jumps.
 */
typedef struct {
    const void *code;
    uint32_t op1, op2;
} rvnpu_op_t;

typedef struct {
    rvnpu_op_t *ops;       /* room for `capacity` entries: the commands and one end marker */
    uint32_t capacity;
    uint32_t count;        /* commands added, including those that did not fit */
} rvnpu_program_t;

/* Append a command. Past the capacity it is only counted, so that after recording
 * `count` says how much room the whole program needs (count + 1 entries). Returns 0 if it
 * was stored. */
int rvnpu_program_add(rvnpu_program_t *program, rvnpu_cmd_t cmd);

/* Issue the stored commands in order, then FENCE; returns the FENCE's status word (or
 * 0xFFFFFFFF without issuing anything if commands were dropped for want of room). */
uint32_t rvnpu_program_run(rvnpu_program_t *program);

#ifdef __cplusplus
}
#endif

#endif /* RVNPU_PROGRAM_H */
