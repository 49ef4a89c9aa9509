"""Random command programs for the matrix engine, made while running them on the golden
model, and the comparison of an RTL run with it: shared by ``tests/test_engine_rtl.py`` and
``rvnpu fuzz engine``.

The programs mix valid and refused commands of every kind and aim most of them at a few local
rows and a small window of main memory, so that loads, computes and stores queued in different
units overlap: that is what the front end's hazard checks must keep in program order. A
prologue fills every local memory and an epilogue makes them visible in main memory, so that
comparing the whole memory afterwards (and every FENCE/STATUS answer, the timing-dependent busy
bit masked) compares everything the program did.
"""

import copy
import dataclasses

import numpy as np

from rvnpu.spec.commands import (LIST_ENTRY_BYTES, STATUS_FIELDS, Dataflow, Funct, PostConstant,
                                 RequantMode, Space, encode, pack_list, unpack_status)
from rvnpu.sim.golden.engine import EngineModel, element_range, output_range
from rvnpu.sim.golden.post import pool_shape


__all__ = ["Program", "random_program", "check_program", "region_of", "first_difference",
           "BUSY", "BUSY_MASK"]


BUSY = next(f for f in STATUS_FIELDS if f.name == "busy")
BUSY_MASK = ~(((1 << BUSY.width) - 1) << BUSY.lsb) & 0xffffffff


def first_difference(got, want):
    """``None`` if equal, else a description of the first differing index."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return f"shape {got.shape}, expected {want.shape}"
    diff = np.argwhere(got != want)
    if not diff.size:
        return None
    idx = tuple(int(i) for i in diff[0])
    return (f"{len(diff)} of {want.size} differ; first at {idx}: got {got[idx]}, "
            f"expected {want[idx]}")


@dataclasses.dataclass
class Program:
    label: str
    image: list
    commands: list
    memory: np.ndarray        # the golden model's main memory afterwards
    responses: list           # and its answers
    body: int                 # commands before the epilogue


class _Generator:
    """Builds a random program while running it on a golden model, so that every choice can
    see the configuration registers (strides, dataflow) the earlier commands left."""

    def __init__(self, config, rng):
        self.c = c = config
        self.rng = rng
        self.es = es = c.elem_bytes
        R, C = c.rows, c.cols
        # Most commands aim at these first rows of each local memory.
        self.hot_spad = min(3 * R + 8, c.spad_depth - R) // R * R
        self.hot_acc = 2 * R + 4
        self.hot_qp = 6
        # The LOADs that race with STOREs write the band of rows above the hot ones, where they
        # survive until the epilogue shows them (every accumulator row is shown).
        self.dump_spad = min(self.hot_spad + 2 * R + 8, c.spad_depth - R) // R * R
        # The end of main memory is kept for the epilogue: the accumulator dump, the dumps of
        # the first scratchpad rows and two identity matrices.
        self.acc_dump = c.mem_bytes - (c.acc_depth + 2 * self.dump_spad) * C * 4 \
            - (R * R + R * C) * es
        self.b_dump = self.acc_dump + c.acc_depth * C * 4
        self.a_dump = self.b_dump + self.dump_spad * C * 4
        self.ident_a = self.a_dump + self.dump_spad * C * 4
        self.ident_b = self.ident_a + R * R * es
        # Command lists go below those, where no command writes (the engine reads ahead).
        self.list_base = (self.acc_dump - 768) // LIST_ENTRY_BYTES * LIST_ENTRY_BYTES
        self.list_next = self.list_base
        self.limit = self.list_base
        # Edge pairs write main memory here, above the window most commands aim at.
        self.dram_band = 768
        memory = rng.integers(0, 256, c.mem_bytes, dtype=np.uint8)
        for addr, rows, cols in ((self.ident_a, R, R), (self.ident_b, R, C)):
            ident = np.eye(rows, cols, dtype="<u2" if es == 2 else "u1").tobytes()
            memory[addr:addr + len(ident)] = np.frombuffer(ident, np.uint8)
        # Two triples of sane requantisation rows (bias, multiplier or scale, shift), TFLite
        # then ONNX Runtime, so that some STOREs produce values that are not all clamped.
        self.sane_qp = int(rng.integers(0, self.limit - 2 * 3 * c.cols * 4)) & ~3
        rows = []
        for mode in (RequantMode.TFLITE, RequantMode.ORT):
            bias = rng.integers(-1000, 1000, c.cols)
            if mode == RequantMode.TFLITE:
                mult = rng.integers(1 << 30, 1 << 31, c.cols)
                second = mult
                third = rng.integers(-24, 1, c.cols)
            else:
                second = np.asarray(rng.uniform(1e-6, 1e-2, c.cols), np.float32).view(np.int32)
                third = np.zeros(c.cols, np.int64)
            rows += [bias, second, third]
        sane = np.asarray(rows, np.int64).astype("<u4").tobytes()
        memory[self.sane_qp:self.sane_qp + len(sane)] = np.frombuffer(sane, np.uint8)
        self.initial = memory                 # lists are added as they are made
        self.model = EngineModel(c, memory.copy())
        self.commands = []
        self.responses = []
        self.in_list = False                  # making a list's entries
        self.list_running = False             # a RUN not yet followed by a FENCE

    @property
    def image(self):
        return [(0, self.initial.tobytes())]

    # Helpers.

    def chance(self, p):
        return self.rng.random() < p

    def pick(self, lo, hi):
        """An integer from lo to hi inclusive (lo if the range is empty)."""
        return int(self.rng.integers(lo, hi, endpoint=True)) if hi > lo else lo

    def emit(self, funct, op1=None, op2=None, **fields):
        if funct == Funct.STATUS and self.list_running and not self.in_list:
            # A STATUS while a list runs answers at once, with the list half done.
            self.emit(Funct.FENCE)
        if funct == Funct.FENCE and not self.in_list:
            self.list_running = False
        command = (int(funct), op1, op2) if op1 is not None else encode(funct, **fields)
        self.commands.append(command)
        answer = self.model.execute(*command, in_list=self.in_list)
        if answer is not None:
            self.responses.append(answer)

    def local(self, depth, rows, hot):
        """A first row for ``rows`` rows of a ``depth``-row memory; mostly in the first ``hot``
        rows so that commands collide, sometimes anywhere, rarely out of range."""
        if self.chance(0.04):
            return min(max(0, depth - rows + self.pick(1, 4)), (1 << 14) - 1)
        top = min(hot, depth) if self.chance(0.8) else depth
        return self.pick(0, max(0, top - rows))

    def dram(self, span, near=None):
        """A byte address for ``span`` bytes: mostly in a small window, any alignment; or
        within a few bytes of ``near``."""
        if near is not None and near + 16 + span <= self.limit:
            return self.pick(max(0, near - 16), near + 16)
        if self.chance(0.04):
            return min(max(0, self.c.mem_bytes - span + self.pick(1, 8)), (1 << 32) - 1)
        if self.chance(0.02):
            # Past the window by a multiple of its size: wrong unless every bit is checked.
            return min(self.c.mem_bytes * self.pick(1, 8) + self.pick(0, 64), (1 << 32) - 1)
        top = min(self.limit, 768) if self.chance(0.7) else self.limit
        if span > top:
            top = self.limit
        return self.pick(0, max(0, top - span))

    def stride(self, row_bytes):
        choice = self.pick(0, 5)
        if choice == 0:
            return 0
        if choice == 1:
            return row_bytes
        if choice == 2:
            return self.pick(1, 3 * row_bytes + 9)         # overlapping, unaligned, gaps
        if choice == 3:
            return self.c.bus_bytes * self.pick(1, 8)
        if choice == 4:
            return self.pick(1, 200)
        return self.pick(0, (1 << 32) - 1) if self.chance(0.3) else self.pick(200, 1200)

    # Commands.

    def load(self, near=None):
        c, m = self.c, self.model
        space = Space(self.pick(0, 3 if near is None else 2))
        depth, width = m._space(space).shape
        es = self.es if space in (Space.SPAD_A, Space.SPAD_B) else 4
        hot = {Space.SPAD_A: self.hot_spad, Space.SPAD_B: self.hot_spad,
               Space.ACC: self.hot_acc, Space.QP: self.hot_qp}[space]
        rows = self.pick(1, min(depth, 12 if self.chance(0.8) else 40))
        if near is not None:
            rows = self.pick(1, 8)
        cols = self.pick(1, width)
        if self.chance(0.04):
            cols = self.pick(width + 1, width + 3)
        if self.chance(0.04):
            rows, cols = (0, cols) if self.chance(0.5) else (rows, 0)
        if self.chance(0.25):
            self.emit(Funct.CONFIG_LOAD, stride=self.stride(cols * es))
        span = max(0, rows - 1) * m.load_stride + cols * es
        if near is None:
            row = self.local(depth, rows, hot)
        elif space == Space.ACC:
            row = self.pick(self.hot_acc, depth - rows)
        else:
            row = self.pick(self.hot_spad, self.dump_spad - rows)
        self.emit(Funct.LOAD, dram_addr=self.dram(span, near), local_row=row, space=space,
                  rows=rows, cols=cols)

    def sane_qp_load(self):
        c = self.c
        row = self.pick(0, c.qp_depth - 3)
        mode = self.pick(0, 1)
        self.emit(Funct.CONFIG_LOAD, stride=c.cols * 4)
        self.emit(Funct.LOAD, dram_addr=self.sane_qp + mode * 3 * c.cols * 4, local_row=row,
                  space=Space.QP, rows=3, cols=c.cols)
        self.emit(Funct.CONFIG_STORE, stride=self.stride(c.cols * 4), qp_row=row)
        self.config_requant(mode)

    def compute(self):
        c, m = self.c, self.model
        os_mode = m.dataflow == Dataflow.OS
        steps = self.pick(1, 3 * c.rows + 3 if os_mode else 20)
        if self.chance(0.04):
            steps = 0
        k_valid = self.pick(0, c.rows) if not os_mode or self.chance(0.5) else self.pick(0, 63)
        if not os_mode and self.chance(0.04):
            k_valid = self.pick(c.rows + 1, 63)
        a_n, b_n, c_n = m.compute_extent({"steps": steps, "k_valid": k_valid})
        hot_s, hot_c = self.hot_spad, self.hot_acc
        self.emit(Funct.COMPUTE, a_row=self.local(c.spad_depth, a_n, hot_s),
                  b_row=self.local(c.spad_depth, b_n, hot_s),
                  c_row=self.local(c.acc_depth, c_n, hot_c), steps=steps, k_valid=k_valid,
                  accumulate=self.pick(0, 1))

    def config_exec(self):
        c = self.c
        flows = [Dataflow.OS] * c.with_os + [Dataflow.WS] * c.with_ws
        dataflow = flows[self.pick(0, len(flows) - 1)]
        if len(flows) == 1 and self.chance(0.1):
            dataflow = Dataflow(1 - dataflow)                        # not built: refused
        signs = [self.pick(0, 1), self.pick(0, 1)]
        zeros = []
        for s in signs:
            lo, hi = element_range(c.in_width, s)
            z = self.pick(lo, min(hi, (1 << 15) - 1)) if self.chance(0.6) else 0
            if self.chance(0.04) and lo > -(1 << 15):
                z = hi + 1 if hi < (1 << 15) - 1 else lo - 1          # refused
            zeros.append(z)
        self.emit(Funct.CONFIG_EXEC, dataflow=dataflow, a_signed=signs[0], b_signed=signs[1],
                  a_zero=zeros[0], b_zero=zeros[1])

    def config_requant(self, mode=None):
        w = self.c.in_width
        s_lo, s_hi = output_range(w, True)
        u_lo, u_hi = output_range(w, False)
        lo, hi = (s_lo, s_hi) if self.chance(0.5) else (u_lo, u_hi)
        cmin, cmax = lo, hi
        if self.chance(0.4):
            cmin, cmax = sorted((self.pick(lo, hi), self.pick(lo, hi)))
        if self.chance(0.05):
            cmin, cmax = (s_lo - 1, 0) if self.chance(0.5) and w < 16 else (1, 0)  # refused
        out_zero = self.pick(-20, 20) if self.chance(0.7) else self.pick(-32768, 32767)
        self.emit(Funct.CONFIG_REQUANT, out_zero=out_zero,
                  mode=self.pick(0, 1) if mode is None else mode, clamp_min=cmin,
                  clamp_max=cmax)

    def config_store(self):
        c = self.c
        qp_row = self.pick(0, c.qp_depth - 3)
        if self.chance(0.05):
            qp_row = self.pick(c.qp_depth - 2, c.qp_depth + 3)          # refused
        self.emit(Funct.CONFIG_STORE, stride=self.stride(c.cols * 4), qp_row=qp_row)

    def store(self, near=None):
        c, m = self.c, self.model
        raw = self.chance(0.4)
        es = 4 if raw else self.es
        rows = self.pick(1, 12 if self.chance(0.8) else 40)
        cols = self.pick(1, c.cols)
        if self.chance(0.04):
            cols = self.pick(c.cols + 1, c.cols + 3)
        if self.chance(0.04):
            rows, cols = (0, cols) if self.chance(0.5) else (rows, 0)
        span = max(0, rows - 1) * m.store_stride + cols * es
        self.emit(Funct.STORE_ACC if raw else Funct.STORE, dram_addr=self.dram(span, near),
                  acc_row=self.local(c.acc_depth, rows, self.hot_acc), rows=rows, cols=cols)

    def store_pool(self):
        """A pooled store, often after a new window (sometimes a refused zero kernel), whose
        windows reach ACC rows past its first ``rows``: mostly inside ACC, sometimes not."""
        c, m = self.c, self.model
        if self.chance(0.5):
            kernel = [self.pick(1, 3), self.pick(1, 3)]
            if self.chance(0.08):
                kernel[self.pick(0, 1)] = 0                                    # refused
            self.emit(Funct.CONFIG_STORE_POOL, kernel_h=kernel[0], kernel_w=kernel[1],
                      step=self.pick(0, 4), pitch=self.pick(0, 2 * c.rows + 2))
        rows = self.pick(1, 6)
        cols = self.pick(1, c.cols)
        if self.chance(0.04):
            rows, cols = (0, cols) if self.chance(0.5) else (rows, 0)
        extent = m.store_extent(Funct.STORE_POOL, max(rows, 1))
        span = max(0, rows - 1) * m.store_stride + cols * self.es
        self.emit(Funct.STORE_POOL, dram_addr=self.dram(span),
                  acc_row=self.local(c.acc_depth, extent, self.hot_acc), rows=rows, cols=cols)

    def store_add_constant(self, index=None):
        """A CONFIG_STORE_ADD: a ratio or a fixed term, rarely an infinity or a NaN (refused
        at the next STORE_ADD) or index 3 (refused at once)."""
        self.emit(Funct.CONFIG_STORE_ADD, **self._add_constant(index))

    def store_skip(self, offset):
        """A CONFIG_STORE_SKIP with ``offset``: the element type, the operand order and a
        clamp, sometimes one a STORE_ADD refuses (outside the element type, or min > max)."""
        elem_signed = self.pick(0, 1)
        lo, hi = (-128, 127) if elem_signed else (0, 255)
        cmin, cmax = lo, hi
        if self.chance(0.4):
            cmin, cmax = sorted((self.pick(lo, hi), self.pick(lo, hi)))
        if self.chance(0.05):
            cmin, cmax = (lo - 1, hi) if self.chance(0.5) else (hi, lo)    # refused
        self.emit(Funct.CONFIG_STORE_SKIP, offset=offset % (1 << 32), clamp_min=cmin,
                  clamp_max=cmax, elem_signed=elem_signed, skip_first=self.pick(0, 1))

    def store_add(self):
        """A STORE_ADD, often after new constants and a new skip tensor. Its output never
        overlaps its skip tensor, except exactly (offset 0) with rows that do not overlap one
        another, as the command requires; both are mostly in the hot window, where earlier
        stores may still be writing what it reads."""
        c, m = self.c, self.model
        for index in PostConstant:
            if self.chance(0.3):
                self.store_add_constant(index)
        if self.chance(0.05):
            self.store_add_constant()
        rows, cols = self.pick(1, 6), self.pick(1, c.cols)
        if self.chance(0.04):
            cols = self.pick(c.cols + 1, c.cols + 3)
        if self.chance(0.04):
            rows, cols = (0, cols) if self.chance(0.5) else (rows, 0)
        stride = m.store_stride
        span = max(0, rows - 1) * stride + cols * self.es
        in_place = rows <= 1 or stride >= cols * self.es

        def apart(out, skip):
            return out + span <= skip or skip + span <= out

        if self.chance(0.7) or (m.skip_offset == 0 and not in_place):
            out = self.dram(span)
            if in_place and self.chance(0.25):
                skip = out
            else:
                skips = [self.dram(span) for _ in range(20)]
                skip = next((s for s in skips if apart(out, s)), out + span + self.pick(0, 16))
            self.store_skip(skip - out)
        else:
            offset = m.skip_offset
            outs = [self.dram(span) for _ in range(20)]
            out = next((o for o in outs if offset == 0 or apart(o, (o + offset) % (1 << 32))),
                       2 * c.mem_bytes)                                  # else refused
        self.emit(Funct.STORE_ADD, dram_addr=min(out, (1 << 32) - 1),
                  acc_row=self.local(c.acc_depth, rows, self.hot_acc), rows=rows, cols=cols)

    def dram_pair(self):
        """A STORE and a LOAD of nearly the same main-memory bytes, in either order, so that
        the load unit's reads and the store unit's writes race unless the front end holds the
        second back."""
        near = self.pick(0, 256)
        if self.chance(0.5):
            # Read after write: from idle, the LOAD would start at once.
            if self.chance(0.5):
                self.emit(Funct.FENCE)
            first, second = self.store, self.load
        else:
            # Write after read: a long LOAD elsewhere keeps the load unit busy, so the STORE
            # would overtake the second LOAD.
            if self.chance(0.7):
                self.busy_load()
            first, second = self.load, self.store
        first(near)
        if self.chance(0.3):
            self.compute()
        second(near)

    def edge_pair(self):
        """A command and a later one of another unit whose ranges share exactly one row (or
        byte) at either end: the hazard checks' boundaries. The second one's effect lands
        where the epilogue shows it (accumulator rows above the hot ones, or main memory in a
        band above the hot window)."""
        c, m = self.c, self.model
        R, C, es = c.rows, c.cols, self.es
        band = self.dram_band

        def edge(lo, n, k, top):
            """First of ``k`` rows overlapping only the last or the first of rows lo..lo+n."""
            first = lo + n - 1 if self.chance(0.5) else lo - k + 1
            return min(max(0, first), top - k)

        def compute_shape():
            os_mode = m.dataflow == Dataflow.OS
            steps = self.pick(1, 2 * R + 2 if os_mode else 12)
            k_valid = self.pick(1, R)
            return steps, k_valid, m.compute_extent({"steps": steps, "k_valid": k_valid})

        if self.chance(0.5):
            self.emit(Funct.FENCE)
        kind = self.pick(0, 3)
        if kind == 0:
            # COMPUTE writes accumulator rows, STORE_ACC reads one of them.
            steps, k_valid, (a_n, b_n, c_n) = compute_shape()
            c_row = self.pick(self.hot_acc, c.acc_depth - c_n)
            self.emit(Funct.COMPUTE, a_row=self.pick(0, max(0, self.hot_spad - a_n)),
                      b_row=self.pick(0, max(0, self.hot_spad - b_n)), c_row=c_row,
                      steps=steps, k_valid=k_valid, accumulate=self.pick(0, 1))
            rows = self.pick(1, 4)
            self.emit(Funct.CONFIG_STORE, stride=C * 4, qp_row=self.pick(0, c.qp_depth - 3))
            self.emit(Funct.STORE_ACC, dram_addr=band + self.pick(0, 256),
                      acc_row=edge(c_row, c_n, rows, c.acc_depth), rows=rows, cols=C)
        elif kind == 1:
            # LOAD writes scratchpad rows, COMPUTE reads one of them.
            space = Space(self.pick(0, 1))
            width = R if space == Space.SPAD_A else C
            rows = self.pick(1, 6)
            row = self.pick(R, self.hot_spad - rows)
            self.emit(Funct.CONFIG_LOAD, stride=width * es)
            self.emit(Funct.LOAD, dram_addr=self.pick(0, self.limit - rows * width * es),
                      local_row=row, space=space, rows=rows, cols=width)
            steps, k_valid, (a_n, b_n, c_n) = compute_shape()
            n = a_n if space == Space.SPAD_A else b_n
            rows_of = {"a_row": a_n, "b_row": b_n}
            fields = {name: self.pick(0, max(0, self.hot_spad - k))
                      for name, k in rows_of.items()}
            fields["a_row" if space == Space.SPAD_A else "b_row"] = edge(row, rows, n,
                                                                         c.spad_depth)
            self.emit(Funct.COMPUTE, **fields, c_row=self.pick(self.hot_acc, c.acc_depth - c_n),
                      steps=steps, k_valid=k_valid, accumulate=0)
        elif kind == 2:
            # STORE_ACC reads accumulator rows, LOAD overwrites one of them.
            rows = self.pick(1, 4)
            acc_row = self.pick(self.hot_acc, c.acc_depth - rows)
            self.emit(Funct.CONFIG_STORE, stride=C * 4, qp_row=self.pick(0, c.qp_depth - 3))
            self.emit(Funct.STORE_ACC, dram_addr=band + self.pick(0, 256), acc_row=acc_row,
                      rows=rows, cols=C)
            n = self.pick(1, 4)
            self.emit(Funct.CONFIG_LOAD, stride=C * 4)
            self.emit(Funct.LOAD, dram_addr=self.pick(0, band - n * C * 4),
                      local_row=edge(acc_row, rows, n, c.acc_depth), space=Space.ACC, rows=n,
                      cols=C)
        else:
            # STORE_ACC writes main memory, LOAD reads its first or last byte.
            rows, cols = self.pick(1, 4), self.pick(1, C)
            stride = cols * 4 + self.pick(0, 1) * self.pick(1, 8)
            addr = band + self.pick(64, 256)
            span = (rows - 1) * stride + cols * 4
            self.emit(Funct.CONFIG_STORE, stride=stride, qp_row=self.pick(0, c.qp_depth - 3))
            self.emit(Funct.STORE_ACC, dram_addr=addr, acc_row=self.pick(0, c.acc_depth - rows),
                      rows=rows, cols=cols)
            n = self.pick(1, 3)
            load_span = n * C * 4
            start = addr + span - 1 if self.chance(0.5) else addr - load_span + 1
            self.emit(Funct.CONFIG_LOAD, stride=C * 4)
            self.emit(Funct.LOAD, dram_addr=start, local_row=self.pick(self.hot_acc,
                                                                      c.acc_depth - n),
                      space=Space.ACC, rows=n, cols=C)

    def busy_load(self):
        c = self.c
        space = Space(self.pick(0, 1))
        width = c.rows if space == Space.SPAD_A else c.cols
        row = self.dump_spad if c.spad_depth - self.dump_spad - c.rows >= 16 else 0
        rows = min(self.pick(24, 64), c.spad_depth - row - c.rows)
        self.emit(Funct.CONFIG_LOAD, stride=width * self.es)
        self.emit(Funct.LOAD, dram_addr=self.pick(1024, self.limit - rows * width * self.es),
                  local_row=row, space=space, rows=rows, cols=width)

    def status(self):
        if self.chance(0.2):
            self.emit(Funct.FENCE)
        else:
            self.emit(Funct.STATUS, clear=self.pick(0, 1), clear_done=self.pick(0, 1))

    def run_list(self, kinds=None):
        """A RUN: mostly of a fresh list of random commands (refused ones among them), made
        while running them on the model as the list will run; sometimes misaligned, outside
        the window or empty. Inside a list, a RUN entry (refused)."""
        c = self.c
        choice = self.pick(0, 9)
        if self.in_list or kinds is None or choice == 0:
            addr = self.list_base + self.pick(0, 1) * LIST_ENTRY_BYTES
            if not self.in_list:
                addr += self.pick(1, LIST_ENTRY_BYTES - 1)                  # misaligned
            self.emit(Funct.RUN, list_addr=addr, count=self.pick(0, 3))
            self.list_running = True
            return
        if choice == 1:
            # Past the window: the end of memory, far beyond it, or a count that wraps.
            run = [dict(list_addr=c.mem_bytes - LIST_ENTRY_BYTES, count=self.pick(2, 4)),
                   dict(list_addr=c.mem_bytes * self.pick(1, 8), count=1),
                   dict(list_addr=self.list_base, count=(1 << 32) - self.pick(1, 4))]
            self.emit(Funct.RUN, **run[self.pick(0, 2)])
            return
        if choice == 2 or self.list_next + 24 * LIST_ENTRY_BYTES > self.acc_dump:
            self.emit(Funct.RUN, list_addr=self.pick(0, c.mem_bytes), count=0)   # empty
            self.list_running = True
            return
        before, commands, responses = copy.deepcopy(self.model), self.commands, self.responses
        self.commands, self.in_list = [], True
        weights = np.array([w for _, w in kinds], float)
        for _ in range(self.pick(1, 6)):
            kinds[int(self.rng.choice(len(kinds), p=weights / weights.sum()))][0]()
        entries, live = self.commands, self.model
        self.model, self.commands, self.responses, self.in_list = before, commands, responses, \
            False
        data = np.frombuffer(pack_list(entries), np.uint8)
        at, end = self.list_next, self.list_next + len(data)
        # A STORE with a long stride may reach the list's bytes; the engine would then read
        # what it wrote (or, for one of the list's own, race its read-ahead).
        if not (np.array_equal(before.memory[at:end], self.initial[at:end])
                and np.array_equal(live.memory[at:end], before.memory[at:end])):
            self.emit(Funct.RUN, list_addr=at, count=0)
            self.list_running = True
            return
        self.list_next += len(data)
        self.initial[at:at + len(data)] = data
        self.model.memory[at:at + len(data)] = data
        self.emit(Funct.RUN, list_addr=at, count=len(entries))
        self.list_running = True

    def post_config(self):
        """CONFIG_POST with a small tensor; sometimes a kernel or stride MAXPOOL refuses."""
        h, w = self.pick(1, 6), self.pick(1, 6)
        fields = dict(height=h, width=w, kernel_h=self.pick(1, min(h, 3)),
                      kernel_w=self.pick(1, min(w, 3)), channels=self.pick(1, 6),
                      stride_h=self.pick(1, 3), stride_w=self.pick(1, 3),
                      elem_signed=self.pick(0, 1))
        if self.chance(0.05):
            fields["channels"] = 0                                       # empty: runs
        if self.chance(0.1):
            name = ("kernel_h", "kernel_w", "stride_h", "stride_w")[self.pick(0, 3)]
            size = h if name == "kernel_h" else w
            fields[name] = 0 if name.startswith("stride") or self.chance(0.5) else size + 1
        self.emit(Funct.CONFIG_POST, **fields)

    def post_constant(self, index=None):
        self.emit(Funct.CONFIG_POST_ADD, **self._add_constant(index))

    def _add_constant(self, index):
        """The fields of a QLinearAdd constant command (CONFIG_POST_ADD's and
        CONFIG_STORE_ADD's): a ratio or a fixed term, rarely an infinity or a NaN, and without
        ``index`` a random one, 3 (refused) among them."""
        value = float(self.rng.uniform(-2, 2)) if index != PostConstant.FIXED else \
            float(self.rng.uniform(-60, 60))
        bits = int(np.array([value], np.float32).view(np.uint32)[0])
        if self.chance(0.04):
            bits = (0x7F800000 | self.pick(0, 1) << 31 | self.pick(0, 1) << 22)  # inf, NaN
        if index is None:
            index = self.pick(0, 3)                                      # 3: refused
        return {"value": bits, "index": index}

    def post_out(self, out_addr):
        lo, hi = (-128, 127) if self.model.post.elem_signed else (0, 255)
        cmin, cmax = lo, hi
        if self.chance(0.4):
            cmin, cmax = sorted((self.pick(lo, hi), self.pick(lo, hi)))
        if self.chance(0.05):
            cmin, cmax = (lo - 1, hi) if self.chance(0.5) else (hi, lo)    # refused
        self.emit(Funct.CONFIG_POST_OUT, out_addr=out_addr, clamp_min=cmin, clamp_max=cmax)

    def post(self):
        """A MAXPOOL or a QLINEAR_ADD (mostly after configuring it) on tensors in the hot
        window, where loads and stores race it. Outputs never overlap inputs, except a
        QLINEAR_ADD's output may be an input exactly, as the commands require."""
        regs = self.model.post
        if self.chance(0.7) or regs.height == 0:
            self.post_config()
        n = regs.count

        def apart(x, nx, y, ny):
            return x + nx <= y or y + ny <= x

        if self.chance(0.5):
            in_addr, n_out = self.dram(n), int(np.prod(pool_shape(regs)))
            outs = [self.dram(n_out) for _ in range(20)] + [2 * self.c.mem_bytes]  # refused
            out = next(o for o in outs if apart(in_addr, n, o, n_out))
            if self.chance(0.8) or not apart(in_addr, n, regs.out_addr, n_out):
                self.post_out(out)
            self.emit(Funct.MAXPOOL, in_addr=in_addr)
            return
        for index in PostConstant:
            if self.chance(0.6):
                self.post_constant(index)
        if self.chance(0.1):
            self.post_constant()
        a = self.dram(n)
        b = a if self.chance(0.2) else self.dram(n)
        if not (b == a or apart(a, n, b, n)):
            b = a

        def fits(o):
            return o in (a, b) or (apart(a, n, o, n) and apart(b, n, o, n))

        choice = self.pick(0, 2)
        if choice < 2:
            out = (a, b)[choice]
        else:
            outs = [self.dram(n) for _ in range(20)] + [a]
            out = next(o for o in outs if fits(o))
        if self.chance(0.8) or not fits(regs.out_addr):
            self.post_out(out)
        self.emit(Funct.QLINEAR_ADD, a_addr=a, b_addr=b)

    def bad_funct(self):
        known = {int(f) for f in Funct}
        funct = self.pick(0, 127)
        while funct in known:
            funct = self.pick(0, 127)
        self.emit(funct, self.pick(0, (1 << 32) - 1), self.pick(0, (1 << 32) - 1))

    def prologue(self):
        """Fill every local memory from main memory, so that no program reads what an earlier
        job of the batch left there (see test_batch_jobs_start_from_clear_local_memories)."""
        for space in Space:
            depth, width = self.model._space(space).shape
            es = self.es if space in (Space.SPAD_A, Space.SPAD_B) else 4
            self.emit(Funct.CONFIG_LOAD, stride=width * es)
            for first in range(0, depth, 255):
                rows = min(255, depth - first)
                self.emit(Funct.LOAD, dram_addr=self.pick(0, self.limit - rows * width * es),
                          local_row=first, space=space, rows=rows, cols=width)

    def finish(self):
        """Make the local memories visible in main memory: dump the accumulators, then the hot
        scratchpad rows, multiplied by identity matrices in weight-stationary mode (operands
        unsigned, zero points 0, so each product is the raw element); then fence."""
        c = self.c
        R, C, es, hot = c.rows, c.cols, self.es, self.dump_spad
        self.emit(Funct.STATUS, clear=0)
        self.emit(Funct.CONFIG_STORE, stride=C * 4, qp_row=0)
        for first in range(0, c.acc_depth, 255):
            rows = min(255, c.acc_depth - first)
            self.emit(Funct.STORE_ACC, dram_addr=self.acc_dump + first * C * 4,
                      acc_row=first, rows=rows, cols=C)
        self.emit(Funct.CONFIG_EXEC, dataflow=Dataflow.WS, a_signed=0, b_signed=0)
        top = c.spad_depth - R              # the identities go above the hot rows
        # SPAD_B rows r..r+R through an identity A: ACC[m] = B[r + m].
        self.emit(Funct.CONFIG_LOAD, stride=R * es)
        self.emit(Funct.LOAD, dram_addr=self.ident_a, local_row=top, space=Space.SPAD_A,
                  rows=R, cols=R)
        for r in range(0, hot, R):
            self.emit(Funct.COMPUTE, a_row=top, b_row=r, c_row=r, steps=R, k_valid=R)
        self.emit(Funct.STORE_ACC, dram_addr=self.b_dump, acc_row=0, rows=hot, cols=C)
        # SPAD_A rows through an identity B: ACC[m][n] = A[m][n] for n < rows.
        self.emit(Funct.CONFIG_LOAD, stride=C * es)
        self.emit(Funct.LOAD, dram_addr=self.ident_b, local_row=top, space=Space.SPAD_B,
                  rows=R, cols=C)
        self.emit(Funct.COMPUTE, a_row=0, b_row=top, c_row=0, steps=hot, k_valid=R)
        self.emit(Funct.STORE_ACC, dram_addr=self.a_dump, acc_row=0, rows=hot, cols=C)
        self.emit(Funct.FENCE)


def random_program(config, seed, length=None):
    """A random program and what the golden model makes of it."""
    rng = np.random.default_rng(seed)
    gen = _Generator(config, rng)
    gen.prologue()
    kinds = [(gen.load, 30), (gen.compute, 25), (gen.store, 14), (gen.config_exec, 5),
             (gen.config_requant, 4), (gen.config_store, 4), (gen.sane_qp_load, 3),
             (gen.status, 4), (gen.bad_funct, 2), (gen.dram_pair, 8),
             (gen.edge_pair, 8), (gen.store_pool, 4)]
    # Without the unit, its commands are refused as unknown: rarer, but still there.
    kinds.append((gen.post, 6 if config.post_unit else 1))
    kinds.append((gen.store_add, 4 if config.with_store_add else 1))
    kinds.append((lambda: gen.run_list(kinds), 4))
    weights = np.array([w for _, w in kinds], float)
    length = length or gen.pick(40, 100)
    for _ in range(length):
        kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))][0]()
    body = len(gen.commands)
    gen.finish()
    # The expected results come from running the finished program on its finished image: a
    # command made before a list was placed may have read the list's bytes, which the model
    # guiding the choices saw only once the list was made.
    model = EngineModel(config, gen.initial.copy())
    responses = model.run(gen.commands)
    return Program(f"program seed {seed} ({len(gen.commands)} commands)", gen.image,
                   gen.commands, model.memory, responses, body)


def region_of(config, address):
    """Which part of a random program's memory a byte address is in."""
    gen = _Generator(config, np.random.default_rng(0))
    for name, start in (("identities", gen.ident_a), ("SPAD_A dump", gen.a_dump),
                        ("SPAD_B dump", gen.b_dump), ("ACC dump", gen.acc_dump)):
        if address >= start:
            return name
    return "main memory"


def check_program(program, result, config):
    """A description of the first way the RTL differs from the model, or ``None``."""
    if getattr(result, "hung", False):
        return (f"hang: not finished within its cycle budget, {len(result.responses)} of "
                f"{len(program.responses)} answers came")
    got = [r & BUSY_MASK for r in result.responses]
    want = [r & BUSY_MASK for r in program.responses]
    if len(got) != len(want):
        return f"{len(got)} answers, expected {len(want)}"
    # Where each answer comes from: FENCE and STATUS are never refused.
    answering = [(j, Funct(f)) for j, (f, _, _) in enumerate(program.commands)
                 if f in (Funct.FENCE, Funct.STATUS)]
    for i, ((j, funct), g, w) in enumerate(zip(answering, got, want)):
        if g != w:
            return (f"answer {i} ({funct.name}, command {j}) differs (busy masked): "
                    f"{unpack_status(g)}, expected {unpack_status(w)}")
        # FENCE answers only once nothing is in flight: its busy bit must be 0.
        if funct == Funct.FENCE and result.responses[i] & ~BUSY_MASK:
            return f"answer {i} (FENCE, command {j}) has busy set"
    diff = first_difference(result.memory, program.memory)
    if diff:
        idx = int(np.argwhere(result.memory != program.memory)[0][0])
        region = region_of(config, idx)
        return f"memory ({region}, byte {idx:#x}): {diff}"
    return None
