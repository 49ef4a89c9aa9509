"""The output-stationary schedule of a depthwise convolution whose channels share one kernel
(an average pool) over few output pixels, such as a global average pool.

The weight-stationary depthwise mapping (a diagonal weight tile a kernel tap) does one COMPUTE
a tap for each block of output pixels: with one output pixel, each is a single step that pays
the array's whole fill and drain, plus a weight tile and an input row loaded for it. When every
channel has the same kernel, output pixel ``p``'s channels ``c`` are a matrix product instead,
``sum_k w[k] * x[window(p, k), c]``: one row of A (the kernel, the same for every channel) times
B (the window's input pixels, one a row, the channels across the columns). Output-stationary
streams the window's taps past the array one a step, ``min(rows, cols)`` useful MACs a step as
the diagonal mapping has, but one COMPUTE of all the taps a pixel and channel tile, with the
window loaded as strided runs of input pixels.

Every row of the A block holds the kernel, so every accumulator row holds the same result;
the first is stored.
"""

import numpy as np

from rvnpu.spec.commands import Funct, Space, Dataflow


__all__ = ["shared_taps", "pool_block_image", "pool_applies", "OsPoolSchedule"]

#: The most COMPUTE steps one command takes (its ``steps`` field).
_MAX_STEPS = 1023


def shared_taps(spec, config, pad_row):
    """The kernel ``(KH * KW,)`` in (row, column) order when every channel of a depthwise
    convolution has it and the engine can run output-stationary, else ``None`` (padding read
    from zero-point rows is left to the weight-stationary schedule)."""
    w = spec.weights
    if not config.with_os or pad_row or w.shape[2] != 1 or spec.groups != w.shape[3]:
        return None
    taps = w[:, :, 0, :].reshape(-1, w.shape[3])
    if not (taps == taps[:, :1]).all():
        return None
    return taps[:, 0]


def _blocks(plan):
    return -(-len(plan.pool_taps) // plan.config.rows)


def pool_block_image(plan):
    """The A blocks, ``rows`` x ``rows`` elements each, that hold taps ``j * rows ..`` in
    every row of block ``j`` (the weight zero point past the last tap)."""
    c, spec = plan.config, plan.spec
    R = c.rows
    flat = np.full(_blocks(plan) * R, spec.weight_zero, np.int64)
    flat[:len(plan.pool_taps)] = plan.pool_taps
    image = np.repeat(flat.reshape(-1, 1, R), R, axis=1)
    values = image.ravel() & ((1 << (8 * c.elem_bytes)) - 1)
    return values.astype("<u2" if c.elem_bytes == 2 else "u1").tobytes()


def pool_applies(plan, pixels):
    """Whether ``plan`` runs output-stationary over its taps: a shared kernel, fewer output
    pixels than taps (else the diagonal mapping's long COMPUTEs cost no more), each pass's
    channels one tile, and room for the A blocks and two windows."""
    if plan.pool_taps is None:
        return False
    c = plan.config
    taps = len(plan.pool_taps)
    return (pixels < taps and all(u.nco <= c.cols and u.nci == u.nco for u in plan.units)
            and _blocks(plan) * c.rows <= c.spad_depth and 2 * taps <= c.spad_depth)


class OsPoolSchedule:
    """Emits the commands through the weight-stationary schedule's loads and stores (``ws``:
    a :class:`rvnpu.compiler.conv._Schedule`), so both read the same constants and write the
    same output."""

    def __init__(self, ws):
        self.ws = ws

    def load_window(self, unit, pixel, b_row):
        """The window of output pixel ``pixel``, channels of ``unit``: tap ``k`` into SPAD_B
        row ``b_row + k``; one strided LOAD a kernel row, or one for all of them when the
        kernel rows are evenly spaced."""
        ws = self.ws
        spec, x, eb = ws.plan.spec, ws.x, ws.c.elem_bytes
        kh, kw = spec.weights.shape[:2]
        (sh, sw), (dh, dw) = spec.strides, spec.dilations
        top, left, _, _ = spec.pads
        oy, ox = divmod(pixel, ws.ow)
        by, bx = x.top - top + oy * sh, x.left - left + ox * sw
        stride = dw * x.pitch * eb
        if dh * x.width == kw * dw:
            ws.load(x.addr(by, bx, unit.ci0, eb), Space.SPAD_B, b_row, kh * kw, unit.nci, stride)
            return
        for ky in range(kh):
            ws.load(x.addr(by + ky * dh, bx, unit.ci0, eb), Space.SPAD_B, b_row + ky * kw, kw,
                    unit.nci, stride)

    def run(self):
        ws = self.ws
        c, plan = ws.c, ws.plan
        R, eb = c.rows, c.elem_bytes
        taps = len(plan.pool_taps)
        # The kernel is A (one row a block), the input windows B.
        ws.configure(Dataflow.OS, swap=True)
        a_addr = ws.weights_addr + plan.b_total * c.cols * eb
        ws.load(a_addr, Space.SPAD_A, 0, _blocks(plan) * R, R, R * eb)
        b_slots = c.spad_depth // taps
        acc_slots = max(1, min(8, c.acc_depth // R))
        segment = (_MAX_STEPS // R) * R
        n = 0
        for unit in plan.units:
            for pixel in range(ws.oh * ws.ow):
                b_base = (n % b_slots) * taps
                acc_row = (n % acc_slots) * R
                n += 1
                self.load_window(unit, pixel, b_base)
                for k0 in range(0, taps, segment):
                    ws.cmd(Funct.COMPUTE, a_row=k0, b_row=b_base + k0, c_row=acc_row,
                           steps=min(segment, taps - k0), accumulate=int(k0 > 0))
                ws.store(unit, 0, acc_row, pixel, 1)
        ws.flush()
