"""The output-stationary schedule for layers with few output pixels.

A fully connected layer at batch 1 (or a convolution whose output is a few pixels) has one row
of A. Weight-stationary then pays, for every ``rows`` x ``cols`` weight tile, the tile's
preload and the array's fill and drain for a single row of A: about 18 cycles for the 8 bus
cycles the tile's bytes take. Output-stationary keeps the ``rows`` output pixels and ``cols``
channels in the array and streams the whole reduction past them, one step a cycle, reading
exactly one bus word of weights a step on an 8-wide int8 array: the layer runs at the speed
its weights cross the bus, which is the bound a fully connected layer has.

It applies when the reduction chunks are whole array-row blocks (every chunk but the last holds
``rows`` taps, so step ``k`` reads chunk ``k // rows``), which is true of a GEMM and of a
convolution whose kernel rows are contiguous runs that split evenly.
"""

from rvnpu.spec.commands import Funct, Dataflow


__all__ = ["os_applies", "OsSchedule"]

#: The most COMPUTE steps one command takes (its ``steps`` field).
_MAX_STEPS = 1023


def os_applies(plan, pixels):
    """Whether ``plan`` runs output-stationary: few pixels, one pass of all channels,
    whole-row chunks, and room for two weight strips and the A block (two A blocks when there
    are several).

    One array block of pixels always does. Several do when the weights streamed once a block
    cost clearly fewer cycles than weight-stationary's COMPUTE a chunk and tile, each paying
    about three times ``rows`` cycles of weight preload, fill and drain for its few steps
    (MobileNet's 3x3 layers of 128 and 256 channels)."""
    c = plan.config
    if not c.with_os or len(plan.units) != 1 or plan.pad_row:
        return False
    unit = plan.units[0]
    chunks = unit.chunks
    if any(len(ch.taps) != c.rows for ch in chunks[:-1]):
        return False
    if any(len(needed) != len(chunks) for needed in unit.pairs):
        return False
    k = sum(len(ch.taps) for ch in chunks)
    blocks = -(-pixels // c.rows)
    if blocks > 1:
        tiles = len(unit.pairs)
        os_cycles = blocks * tiles * (k + 2 * c.rows)
        ws_cycles = tiles * len(chunks) * (pixels + 3 * c.rows)
        if 3 * os_cycles >= 2 * ws_cycles:     # a rough estimate: win by a margin
            return False
    return 2 * k <= c.spad_depth and min(blocks, 2) * len(chunks) * c.rows <= c.spad_depth


class OsSchedule:
    """Emits the commands of an output-stationary layer through the weight-stationary
    schedule's loads and stores (``ws``: a :class:`rvnpu.compiler.conv._Schedule`), so both
    read the same constants and write the same output."""

    def __init__(self, ws):
        self.ws = ws

    def run(self):
        ws = self.ws
        c, plan = ws.c, ws.plan
        R = c.rows
        unit = plan.units[0]
        ws.configure(Dataflow.OS)
        pixels = ws.oh * ws.ow
        k_total = sum(len(ch.taps) for ch in unit.chunks)
        b_slots = c.spad_depth // k_total
        acc_slots = max(1, min(8, c.acc_depth // R))
        segment = (_MAX_STEPS // R) * R
        n = 0
        for block, p0 in enumerate(range(0, pixels, R)):
            # Blocks of ``rows`` pixels; a block's A chunks in one half of SPAD_A while the
            # other half still feeds the block before.
            rows = min(R, pixels - p0)
            a_base = (block % 2) * len(unit.chunks) * R
            for j, chunk in enumerate(unit.chunks):
                ws.load_a(unit, chunk, p0, rows, a_base + j * R)
            for t in range(len(unit.pairs)):
                b_base = (n % b_slots) * k_total
                acc_row = (n % acc_slots) * R
                n += 1
                ws.load_b(unit.b_rows[t, 0], b_base, k_total)
                for k0 in range(0, k_total, segment):
                    ws.cmd(Funct.COMPUTE, a_row=a_base + k0, b_row=b_base + k0, c_row=acc_row,
                           steps=min(segment, k_total - k0), accumulate=int(k0 > 0))
                ws.store(unit, t, acc_row, p0, rows)
        ws.flush()
