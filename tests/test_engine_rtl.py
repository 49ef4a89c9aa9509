"""The engine's RTL against the golden model, bit for bit.

For each configuration and simulator, one simulator run executes a batch of random GEMMs
(compared with ``gemm_reference``) and of random command programs (compared with
:class:`EngineModel`: the whole main memory afterwards, and every FENCE/STATUS answer with the
timing-dependent busy bit masked). The programs mix valid and refused commands of every kind and
aim most of them at a few local rows and a small window of main memory, so that loads, computes
and stores queued in different units overlap: that is what the front end's hazard checks must
keep in program order.

One test runs one configuration's whole batch, because every simulator run starts the
simulator afresh and pytest-xdist would otherwise repeat the batch in each worker. Its failure
message lists every failing case with the seed that rebuilds it (``random_program(
CONFIGS[name], seed)``, ``random_gemm_case(CONFIGS[name], seed)``); a failing program can be
rerun alone with ``RtlEngine(...).run([EngineRun(p.commands, p.image, [(0, mem_bytes)])])`` and
shrunk by deleting commands while it still fails.
"""

import dataclasses
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from rvnpu.spec.config import EngineConfig
from rvnpu.hdl.engine.engine import MatrixEngine
from rvnpu.spec.commands import (STATUS_FIELDS, Dataflow, Funct, RequantMode, Space, encode,
                                 unpack_status)
from rvnpu.sim import toolchain
from rvnpu.compiler.gemm import compile_gemm
from rvnpu.sim.golden.gemm import Requant, gemm_reference
from rvnpu.sim.golden.engine import EngineModel, element_range, output_range
from rvnpu.sim.golden.requant import quantize_multiplier
from rvnpu.sim.rtl import EngineResult, EngineRun, RtlEngine
from rvnpu.sim.runner import verilog_of


BUILD_ROOT = Path(os.environ.get("RVNPU_SIM_BUILD",
                                 Path(__file__).resolve().parents[1] / "build" / "sim"))

BUSY = next(f for f in STATUS_FIELDS if f.name == "busy")
BUSY_MASK = ~(((1 << BUSY.width) - 1) << BUSY.lsb) & 0xffffffff

CONFIGS = {
    "4x4": EngineConfig(rows=4, cols=4, dataflow="both", spad_depth=256, acc_depth=64,
                        qp_depth=16, mem_bytes=1 << 14),
    # Cells 7..14 multiply in logic (shift and add), the rest with `*`.
    "3x5": EngineConfig(rows=3, cols=5, dataflow="both", spad_depth=128, acc_depth=32,
                        qp_depth=8, bus_width=32, mem_bytes=1 << 13, requant_lanes=1,
                        logic_macs=8),
    "8x8-ws": EngineConfig(rows=8, cols=8, dataflow="ws", spad_depth=64, acc_depth=32,
                           qp_depth=8, bus_width=128, mem_bytes=1 << 13, queue_depth=2,
                           requant_lanes=2, requant_modes="ort"),
    "2x2-int4": EngineConfig(rows=2, cols=2, in_width=4, acc_width=16, dataflow="both",
                             spad_depth=64, acc_depth=32, qp_depth=8, mem_bytes=1 << 12,
                             queue_depth=1, requant_modes="tflite", hazards="serial"),
    # Every cell multiplies in logic, 17 x 17 bits.
    "2x3-int16": EngineConfig(rows=2, cols=3, in_width=16, acc_width=32, dataflow="both",
                              spad_depth=64, acc_depth=32, qp_depth=8, mem_bytes=1 << 13,
                              logic_macs=6),
    # The iCEBreaker's shape: no requantisation (STORE refused), serial hazards, WS only.
    "1x1-bare": EngineConfig(rows=1, cols=1, dataflow="ws", spad_depth=64, acc_depth=32,
                             qp_depth=8, bus_width=32, mem_bytes=1 << 12, queue_depth=1,
                             requant_modes="none", hazards="serial"),
}

#: (configuration, simulator, GEMM jobs, random programs). Icarus is slower: fewer cases.
PLAN = [
    ("4x4", "verilator", 20, 60),
    ("3x5", "verilator", 14, 30),
    ("8x8-ws", "verilator", 12, 30),
    ("2x2-int4", "verilator", 12, 30),
    ("2x3-int16", "verilator", 12, 30),
    ("1x1-bare", "verilator", 10, 30),
    ("4x4", "icarus", 5, 3),
    ("2x3-int16", "icarus", 4, 2),
]

SEED = 0x5EED_0000


def dataflows(config):
    return [d for d in ("os", "ws") if getattr(config, f"with_{d}")]


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


# -- Random GEMMs --------------------------------------------------------------------------------

@dataclasses.dataclass
class GemmCase:
    label: str
    job: object
    expected: np.ndarray


def random_gemm_case(config, seed, *, shape=None, dataflow=None, mode=None, extreme=False):
    """A random GEMM for ``config`` (shapes up to 20), with its reference result."""
    rng = np.random.default_rng(seed)
    w = config.in_width
    m, n, k = shape or (int(x) for x in rng.integers(1, 21, 3))
    dataflow = dataflow or str(rng.choice(dataflows(config)))
    modes = ["raw"] + (["tflite", "tflite-channel"] if config.with_tflite else []) + \
        (["ort"] if config.with_ort else [])
    mode = mode or str(rng.choice(modes))
    a_signed, b_signed = (bool(x) for x in rng.integers(0, 2, 2))
    a_lo, a_hi = element_range(w, a_signed)
    b_lo, b_hi = element_range(w, b_signed)
    zmax = (1 << 15) - 1          # zero points are signed 16-bit fields
    if extreme:
        # Every A element the minimum, B columns alternately minimum and maximum: every sum is
        # as large as it gets, of alternating sign, so every output saturates one way or the
        # other.
        a_signed = b_signed = True
        a_lo, a_hi = b_lo, b_hi = element_range(w, True)
        a = np.full((m, k), a_lo)
        b = np.where(np.arange(n) % 2 == 0, b_lo, b_hi)[None, :].repeat(k, 0)
        a_zero = b_zero = 0
    else:
        a = rng.integers(a_lo, a_hi, (m, k), endpoint=True)
        b = rng.integers(b_lo, b_hi, (k, n), endpoint=True)
        a_zero = int(rng.integers(a_lo, min(a_hi, zmax), endpoint=True)) \
            if rng.random() < 0.6 else 0
        b_zero = int(rng.integers(b_lo, min(b_hi, zmax), endpoint=True)) \
            if rng.random() < 0.4 else 0
    acc = (a - a_zero) @ (b - b_zero)
    spread = max(1.0, float(np.abs(acc).mean()))
    s_lo, s_hi = output_range(w, True)
    u_lo, u_hi = output_range(w, False)
    clamps = [(0, s_lo, s_hi), (0, 0, s_hi), ((u_hi + 1) // 2, u_lo, u_hi),
              (int(rng.integers(s_lo // 4, s_hi // 4 + 1)), s_lo, s_hi)]
    out_zero, cmin, cmax = clamps[int(rng.integers(len(clamps)))]
    scale = (cmax - cmin + 1) / (2 * spread) * (64 if extreme else 1)
    bias = rng.integers(-2 * spread, 2 * spread, n, endpoint=True) \
        if rng.random() < 0.7 and not extreme else None
    if mode == "raw":
        requant, bias = Requant(None), None
    elif mode == "tflite":
        mult, shift = quantize_multiplier(scale)
        requant = Requant("tflite", multiplier=mult, shift=shift, out_zero=out_zero,
                          clamp_min=cmin, clamp_max=cmax)
    elif mode == "tflite-channel":
        qm = [quantize_multiplier(scale * f * (-1 if rng.random() < 0.15 else 1))
              for f in rng.uniform(0.25, 4, n)]
        requant = Requant("tflite", multiplier=np.array([q for q, _ in qm]),
                          shift=np.array([s for _, s in qm]), out_zero=out_zero,
                          clamp_min=cmin, clamp_max=cmax)
    else:
        requant = Requant("ort", scale=(scale * rng.uniform(0.25, 4, n)).astype(np.float32),
                          out_zero=out_zero, clamp_min=cmin, clamp_max=cmax)
    kwargs = dict(a_zero=a_zero, b_zero=b_zero)
    job = compile_gemm(a, b, bias, requant, config=config, dataflow=dataflow,
                       a_signed=a_signed, b_signed=b_signed, **kwargs)
    expected = gemm_reference(a, b, bias, requant, **kwargs)
    label = (f"GEMM seed {seed}: M,N,K={m},{n},{k} dataflow={dataflow} mode={mode} "
             f"A {'s' if a_signed else 'u'} zero {a_zero}, B {'s' if b_signed else 'u'} zero "
             f"{b_zero}{' extreme' if extreme else ''}")
    return GemmCase(label, job, expected)


def gemm_batch(config, count, seed):
    cases = []
    flows = dataflows(config)
    scaled = "tflite" if config.with_tflite else "ort" if config.with_ort else "raw"
    # Fixed corners first: 1x1x1 in each dataflow, exact multiples of the array, extremes.
    for d in flows:
        cases.append(random_gemm_case(config, seed + len(cases), shape=(1, 1, 1), dataflow=d))
    cases.append(random_gemm_case(config, seed + len(cases), dataflow=flows[-1], mode=scaled,
                                  shape=(2 * config.rows, 2 * config.cols, 3 * config.rows)))
    for d in flows:
        cases.append(random_gemm_case(config, seed + len(cases), shape=(5, 6, 19), dataflow=d,
                                      mode=scaled, extreme=True))
    # A long reduction: many K chunks (WS), a long OS accumulation.
    long_k = min(120, config.spad_depth // 2 - config.rows)
    for d in flows:
        cases.append(random_gemm_case(config, seed + len(cases), shape=(5, 6, long_k),
                                      dataflow=d))
    while len(cases) < count:
        cases.append(random_gemm_case(config, seed + len(cases)))
    return cases


# -- Random command programs ---------------------------------------------------------------------

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
        self.limit = self.acc_dump
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
        self.image = [(0, memory.tobytes())]
        self.model = EngineModel(c, memory.copy())
        self.commands = []
        self.responses = []

    # Helpers.

    def chance(self, p):
        return self.rng.random() < p

    def pick(self, lo, hi):
        """An integer from lo to hi inclusive (lo if the range is empty)."""
        return int(self.rng.integers(lo, hi, endpoint=True)) if hi > lo else lo

    def emit(self, funct, op1=None, op2=None, **fields):
        command = (int(funct), op1, op2) if op1 is not None else encode(funct, **fields)
        self.commands.append(command)
        answer = self.model.execute(*command)
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
            self.emit(Funct.STATUS, clear=self.pick(0, 1))

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
             (gen.edge_pair, 8)]
    weights = np.array([w for _, w in kinds], float)
    length = length or gen.pick(40, 100)
    for _ in range(length):
        kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))][0]()
    body = len(gen.commands)
    gen.finish()
    return Program(f"program seed {seed} ({len(gen.commands)} commands)", gen.image,
                   gen.commands, gen.model.memory, gen.responses, body)


def program_batch(config, count, seed):
    return [random_program(config, seed + i) for i in range(count)]


# -- Comparison ----------------------------------------------------------------------------------

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


def _plan_param(name, simulator, n_gemm, n_prog):
    marks = []
    if simulator != "verilator":
        marks.append(pytest.mark.skipif(
            simulator not in toolchain.available_simulators(),
            reason=f"{simulator} not installed"))
    return pytest.param(name, simulator, n_gemm, n_prog, marks=marks,
                        id=f"{name}-{simulator}")


SMOKE = [encode(Funct.STATUS), encode(Funct.FENCE)]


@pytest.mark.parametrize("name, simulator, n_gemm, n_prog",
                         [_plan_param(*p) for p in PLAN])
def test_engine_matches_golden(name, simulator, n_gemm, n_prog):
    config = CONFIGS[name]
    base = SEED + 10_000 * list(CONFIGS).index(name)
    gemms = gemm_batch(config, n_gemm, base)
    programs = program_batch(config, n_prog, base + 5000)
    # First a STATUS: a simulator that leaves the engine's control undefined (X) fails on its
    # answer at once instead of timing out on the first FENCE.
    runs = [EngineRun(program=SMOKE)]
    runs += [EngineRun(program=g.job.program, image=g.job.image,
                       dump=[(g.job.out_addr, g.expected.size * g.job.out_bytes)])
             for g in gemms]
    runs += [EngineRun(program=p.commands, image=p.image, dump=[(0, config.mem_bytes)])
             for p in programs]
    results = RtlEngine(config, simulator=simulator, build_root=BUILD_ROOT).run(runs)
    assert len(results) == len(runs)
    smoke, results = results[0], results[1:]

    failures = []
    if [r & BUSY_MASK for r in smoke.responses] != [0, 0]:
        failures.append(f"STATUS, FENCE answered {smoke.responses}")
    where = f"{name} ({config.rows}x{config.cols} {config.dataflow}, in_width " \
            f"{config.in_width}) on {simulator}"
    for case, result in zip(gemms, results):
        got = case.job.read_output(result.memory)
        diff = first_difference(got, case.expected)
        if diff:
            failures.append(f"{where}: {case.label}: {diff}")
        elif result.responses != [0]:
            failures.append(f"{where}: {case.label}: FENCE answered "
                            f"{[unpack_status(r) for r in result.responses]}")
    for program, result in zip(programs, results[len(gemms):]):
        diff = check_program(program, result, config)
        if diff:
            failures.append(f"{where}: {program.label}: {diff}")
    assert not failures, f"{len(failures)} of {len(runs)} cases differ:\n" + "\n".join(failures)


# -- The generators themselves -------------------------------------------------------------------

def test_programs_exercise_everything():
    """The random programs reach every command, both dataflows, refusals and collisions; if
    the generator drifted into only valid (or only refused) commands, the RTL test above
    would lose its point without failing."""
    config = CONFIGS["4x4"]
    seen, refused, answers = set(), 0, 0
    for i in range(8):
        program = random_program(config, SEED + 5000 + i)
        seen |= {f for f, _, _ in program.commands}
        model = EngineModel(config, np.frombuffer(program.image[0][1], np.uint8).copy())
        for command in program.commands[:program.body]:
            before = model.error_count
            model.execute(*command)
            refused += model.error_count > before
        answers += len(program.responses)
        # The epilogue shows the local memories as they were.
        acc, spad_a, spad_b = model.acc.copy(), model.spad_a.copy(), model.spad_b.copy()
        model.run(program.commands[program.body:])
        assert np.array_equal(model.memory, program.memory), program.label
        gen = _Generator(config, np.random.default_rng(0))
        hot, cols = gen.dump_spad, config.cols

        def dump(addr, rows):
            return program.memory[addr:addr + rows * cols * 4].view("<i4").reshape(rows, cols)

        assert np.array_equal(dump(gen.acc_dump, config.acc_depth), acc), program.label
        assert np.array_equal(dump(gen.b_dump, hot), spad_b[:hot]), program.label
        assert np.array_equal(dump(gen.a_dump, hot)[:, :config.rows], spad_a[:hot]), \
            program.label
    assert {int(f) for f in Funct} <= seen, f"missing {set(Funct) - seen}"
    assert any(f not in {int(x) for x in Funct} for f in seen), "no unknown function codes"
    assert 10 <= refused, f"only {refused} refused commands"
    assert answers >= 16


def test_check_program_reports_differences():
    """The comparison itself: equal results pass; a changed byte, a changed answer, a busy
    FENCE or a missing answer are each reported (with the busy bit of STATUS ignored)."""
    config = CONFIGS["2x2-int4"]
    program = random_program(config, SEED)
    fine = EngineResult(memory=program.memory.copy(), responses=list(program.responses),
                        cycles=0, active_cycles=0)
    assert check_program(program, fine, config) is None
    answering = [f for f, _, _ in program.commands if f in (Funct.FENCE, Funct.STATUS)]
    busy = dataclasses.replace(fine, responses=list(fine.responses))
    busy.responses[answering.index(Funct.STATUS)] |= 1 << BUSY.lsb
    assert check_program(program, busy, config) is None

    memory = fine.memory.copy()
    memory[gen_limit(config) - 1] ^= 0x40
    message = check_program(program, dataclasses.replace(fine, memory=memory), config)
    assert message and f"byte {gen_limit(config) - 1:#x}" in message and "main memory" in message
    memory = fine.memory.copy()
    memory[-1] ^= 1
    assert "identities" in check_program(program, dataclasses.replace(fine, memory=memory),
                                         config)
    answers = list(fine.responses)
    answers[-1] |= 1 << BUSY.lsb                     # the final FENCE
    assert "busy set" in check_program(program, dataclasses.replace(fine, responses=answers),
                                       config)
    answers = list(fine.responses)
    answers[0] ^= 1 << 16                            # an error count
    assert "answer 0" in check_program(program, dataclasses.replace(fine, responses=answers),
                                       config)
    assert "answers, expected" in check_program(
        program, dataclasses.replace(fine, responses=fine.responses[:-1]), config)


def gen_limit(config):
    return _Generator(config, np.random.default_rng(0)).limit


def test_gemm_batches_compile_for_every_config():
    for name, config in CONFIGS.items():
        for case in gemm_batch(config, 12, SEED):
            assert case.expected.shape == case.job.out_shape, f"{name}: {case.label}"


# -- Reproducers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("simulator", [
    "verilator",
    pytest.param("icarus", marks=pytest.mark.skipif(
        "icarus" not in toolchain.available_simulators(), reason="icarus not installed")),
])
def test_status_answers_after_reset(simulator):
    """The smallest program with an answer. On Icarus the engine's combinational logic stays X
    after reset (cocotb builds with ``iverilog -g2012``, where the ``always @*`` blocks Yosys
    writes never run at time zero), so this fails at once; with ``-g2005`` it passes."""
    config = CONFIGS["4x4"]
    (result,) = RtlEngine(config, simulator=simulator, build_root=BUILD_ROOT).run(
        [EngineRun(program=SMOKE)])
    assert [r & BUSY_MASK for r in result.responses] == [0, 0]
    assert result.responses[1] == 0, "FENCE answered busy"


def test_batch_jobs_start_from_clear_local_memories():
    """Each job of a batch must start as the golden model does, with zeroed local memories.
    The testbench resets the engine between jobs but keeps its memories, so the second job
    here reads back what the first loaded."""
    config = CONFIGS["4x4"]
    image = [(0, bytes(range(1, 17)))]
    first = [encode(Funct.LOAD, dram_addr=0, local_row=0, space=Space.ACC, rows=1, cols=4),
             encode(Funct.FENCE)]
    second = [encode(Funct.CONFIG_STORE, stride=16),
              encode(Funct.STORE_ACC, dram_addr=64, acc_row=0, rows=1, cols=4),
              encode(Funct.FENCE)]
    model = EngineModel(config)
    model.run(second)
    results = RtlEngine(config, build_root=BUILD_ROOT).run(
        [EngineRun(first, image, [(0, 128)]), EngineRun(second, [], [(0, 128)])])
    diff = first_difference(results[1].memory[64:80], model.memory[64:80])
    assert diff is None, f"STORE_ACC of ACC row 0 in the second job: {diff}"


def test_ws_only_engine_converts_without_warnings():
    """STYLE.md runs with warnings as errors. In a weight-stationary-only engine each PE
    writes ``mark_in & ~os`` with ``os`` the Python int 0, so ``~os`` is -1 and Amaranth warns
    about a signed If condition (hdl/engine/pe.py); the logic happens to be right."""
    config = EngineConfig(rows=2, cols=2, dataflow="ws", spad_depth=16, acc_depth=16,
                          qp_depth=4, mem_bytes=1 << 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        verilog_of(MatrixEngine(config), "engine")
