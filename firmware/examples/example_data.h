/*
 * example_data.h: the operands and checksums the examples make, shared with their Python
 * goldens (rvnpu.sim.golden.examples), which repeat every draw. The
 * examples print a checksum of their results, so a run is checked bit for bit without
 * reading the RAM back. Include it once, after defining SEED.
 */
#ifndef EXAMPLE_DATA_H
#define EXAMPLE_DATA_H

#include "rvnpu.h"

static uint32_t example_state = SEED ? SEED : 1;

/* xorshift32. */
static uint32_t next(void)
{
    example_state ^= example_state << 13;
    example_state ^= example_state >> 17;
    example_state ^= example_state << 5;
    return example_state;
}

/* Signed elements of the engine's width, stored in its element bytes, little-endian: uniform,
 * or (extreme) only the most negative and most positive values. */
static void fill(uint8_t *dst, uint32_t count, int extreme)
{
    const uint32_t bits = RVNPU_ENGINE_IN_WIDTH, bytes = RVNPU_ENGINE_ELEM_BYTES;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t draw = next() >> 8;
        int32_t v = extreme ? (draw & 1 ? (1 << (bits - 1)) - 1 : -(1 << (bits - 1)))
                            : (int32_t)(draw & ((1u << bits) - 1)) - (1 << (bits - 1));
        dst[i * bytes] = (uint8_t)v;
        if (bytes == 2)
            dst[i * bytes + 1] = (uint8_t)((uint32_t)v >> 8);
    }
}

static uint32_t log2_floor(uint32_t x)
{
    uint32_t r = 0;
    while (x >>= 1)
        r++;
    return r;
}

/* 32-bit FNV-1a. */
static uint32_t fnv1a(const uint8_t *data, uint32_t bytes)
{
    uint32_t h = 0x811C9DC5u;
    for (uint32_t i = 0; i < bytes; i++)
        h = (h ^ data[i]) * 16777619u;
    return h;
}

#endif /* EXAMPLE_DATA_H */
