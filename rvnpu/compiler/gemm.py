"""Compile ``C = requantize(A @ B + bias)`` of any shape into an engine program.

The program is plain data, a memory image plus ``(funct, op1, op2)`` commands, so the same job
runs on the golden model (:func:`run_on_model`) and on the RTL (``rvnpu.sim.rtl``). Tiles rotate
through slots of the local memories; the engine's hazard checks make reuse safe, so the
program never fences between tiles and loads run ahead of the array as far as slots allow.
"""

from dataclasses import dataclass, field

import numpy as np

from rvnpu.spec.config import EngineConfig
from rvnpu.spec.commands import Funct, Space, Dataflow, QP_ROWS, encode
from rvnpu.spec.requant import MODE_NAMES, mode_named
from rvnpu.sim.golden.engine import EngineModel, element_range, clamp_ok
from rvnpu.sim.golden.gemm import Requant


__all__ = ["GemmJob", "GemmError", "compile_gemm", "run_on_model"]


class GemmError(ValueError):
    """The GEMM cannot be mapped onto this engine (operands out of range, too large...)."""


@dataclass
class GemmJob:
    """A memory image and a program; the result is read from ``out_addr``."""
    config: EngineConfig
    image: list = field(default_factory=list)       # (byte address, bytes)
    program: list = field(default_factory=list)     # (funct, op1, op2)
    out_addr: int = 0
    out_shape: tuple = (0, 0)
    out_bytes: int = 1                             # bytes an element
    out_signed: bool = True
    macs: int = 0                                  # useful multiply-accumulates

    def read_output(self, memory):
        m, n = self.out_shape
        raw = np.asarray(memory[self.out_addr:self.out_addr + m * n * self.out_bytes],
                         dtype=np.uint8)
        dtype = {1: "i1", 2: "<i2", 4: "<i4"}[self.out_bytes]
        if not self.out_signed:
            dtype = dtype.replace("i", "u")
        return raw.view(dtype).reshape(m, n).astype(np.int64)


def _ceil(a, b):
    return -(-a // b)


class _Allocator:
    def __init__(self, size):
        self.size, self.next = size, 0

    def take(self, nbytes, align=64):
        addr = _ceil(self.next, align) * align
        self.next = addr + nbytes
        if self.next > self.size:
            raise GemmError(f"operands need {self.next} bytes of main memory, "
                            f"the engine has {self.size}")
        return addr


def _elements(values, width):
    """Operand elements as little-endian bytes, ``width`` bits each (one or two bytes)."""
    nbytes = 2 if width == 16 else 1
    return (np.asarray(values, np.int64) & ((1 << (8 * nbytes)) - 1)).astype(
        "<u2" if nbytes == 2 else "u1").tobytes()


def compile_gemm(a, b, bias=None, requant=Requant(), *, config=EngineConfig(),
                 dataflow="ws", a_zero=0, b_zero=0, a_signed=True, b_signed=True):
    """Build the :class:`GemmJob` computing ``requantize((a - a_zero) @ (b - b_zero) + bias)``.

    Raises :class:`GemmError` with a one-line reason when it cannot.
    """
    c = config
    R, C = c.rows, c.cols
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise GemmError(f"shapes {a.shape} and {b.shape} do not multiply")
    M, K = a.shape
    N = b.shape[1]
    if min(M, N, K) < 1:
        raise GemmError(f"M, N and K must be at least 1, not {M}, {N}, {K}")
    for name, x, signed, zero in (("A", a, a_signed, a_zero), ("B", b, b_signed, b_zero)):
        lo, hi = element_range(c.in_width, signed)
        if not -(1 << 15) <= zero < (1 << 15):
            raise GemmError(f"the {name} zero point must fit 16 signed bits, not {zero}")
        if x.min() < lo or x.max() > hi or not lo <= zero <= hi:
            raise GemmError(f"{name} and its zero point must lie in [{lo}, {hi}] for "
                            f"{'signed' if signed else 'unsigned'} {c.in_width}-bit elements")
    if dataflow not in ("os", "ws"):
        raise GemmError(f"dataflow must be 'os' or 'ws', not {dataflow!r}")
    if not (c.with_os if dataflow == "os" else c.with_ws):
        raise GemmError(f"this engine was generated without the {dataflow} dataflow")
    if requant.mode in MODE_NAMES and not c.with_requant_mode(requant.mode):
        raise GemmError(f"this engine was generated without {requant.mode} requantisation "
                        f"(requant_modes={c.requant_modes!r})")

    job = GemmJob(config=c, macs=M * N * K)
    mem = _Allocator(c.mem_bytes)
    eb = c.elem_bytes
    a_addr = mem.take(M * K * eb)
    b_addr = mem.take(K * N * eb)
    job.image += [(a_addr, _elements(a, c.in_width)), (b_addr, _elements(b, c.in_width))]

    raw = requant.mode is None
    n_tiles = _ceil(N, C)
    job.out_bytes = 4 if raw else eb
    job.out_signed = raw or requant.clamp_min < 0
    job.out_shape = (M, N)
    job.out_addr = mem.take(M * N * job.out_bytes)

    prog = job.program

    def cmd(funct, **fields):
        prog.append(encode(funct, **fields))

    load_stride = [None]        # the stride the engine holds: CONFIG_LOAD only to change it

    def config_load(stride):
        if stride != load_stride[0]:
            cmd(Funct.CONFIG_LOAD, stride=stride)
            load_stride[0] = stride

    cmd(Funct.CONFIG_EXEC, dataflow=Dataflow.OS if dataflow == "os" else Dataflow.WS,
        a_signed=int(a_signed), b_signed=int(b_signed), a_zero=a_zero, b_zero=b_zero)

    # Requantisation parameters: 3 rows (bias, multiplier or scale, shift) an N tile.
    qp_load = None
    if not raw:
        if requant.mode not in MODE_NAMES:
            names = ", ".join(repr(name) for name in MODE_NAMES)
            raise GemmError(f"requant mode must be {names} or None, not {requant.mode!r}")
        if not clamp_ok(c.in_width, requant.clamp_min, requant.clamp_max):
            raise GemmError(f"clamp [{requant.clamp_min}, {requant.clamp_max}] does not fit "
                            f"a {c.in_width}-bit output element")
        table = np.zeros((n_tiles, QP_ROWS, C), np.uint32)
        flat = np.zeros((QP_ROWS, n_tiles * C), np.uint32)
        bias = np.zeros(N, np.int64) if bias is None else np.asarray(bias, np.int64)
        flat[0, :N] = (bias & 0xffffffff).astype(np.uint32)
        for row, words in requant.param_words(N).items():
            flat[row, :N] = words
        table[:] = flat.reshape(QP_ROWS, n_tiles, C).transpose(1, 0, 2)
        qp_addr = mem.take(table.nbytes)
        job.image.append((qp_addr, table.astype("<u4").tobytes()))
        cmd(Funct.CONFIG_REQUANT, out_zero=requant.out_zero,
            mode=mode_named(requant.mode).code,
            clamp_min=requant.clamp_min, clamp_max=requant.clamp_max)
        resident = n_tiles * QP_ROWS <= min(c.qp_depth, 255)
        if resident:
            config_load(C * 4)
            cmd(Funct.LOAD, dram_addr=qp_addr, local_row=0, space=Space.QP,
                rows=n_tiles * QP_ROWS, cols=C)

        def qp_load(n):
            if resident:
                return n * QP_ROWS
            row = (n % (c.qp_depth // QP_ROWS)) * QP_ROWS
            config_load(C * 4)
            cmd(Funct.LOAD, dram_addr=qp_addr + n * QP_ROWS * C * 4, local_row=row,
                space=Space.QP, rows=QP_ROWS, cols=C)
            return row

    def emit_store(acc_row, m0, rows, n, cols):
        funct = Funct.STORE_ACC if raw else Funct.STORE
        qp_row = 0 if raw else qp_load(n)
        cmd(Funct.CONFIG_STORE, stride=N * job.out_bytes, qp_row=qp_row)
        cmd(funct, dram_addr=job.out_addr + (m0 * N + n * C) * job.out_bytes,
            acc_row=acc_row, rows=rows, cols=cols)

    def store(*tile):
        """Store a tile once the next tile's computes are queued: the front end dispatches
        in order, so a STORE waiting for its COMPUTE to finish would otherwise leave the array
        idle while that COMPUTE drains. The schedules give consecutive tiles different
        accumulator rows, so the delay is safe."""
        store.flush()
        store.pending = tile

    def flush():
        if store.pending is not None:
            emit_store(*store.pending)
            store.pending = None

    store.pending, store.flush = None, flush

    def load(dram, space, row, rows, cols, stride):
        """LOAD in pieces of at most 255 rows."""
        config_load(stride)
        done = 0
        while done < rows:
            part = min(255, rows - done)
            cmd(Funct.LOAD, dram_addr=dram + done * stride, local_row=row + done,
                space=space, rows=part, cols=cols)
            done += part

    if dataflow == "ws":
        _ws_schedule(c, M, N, K, a_addr, b_addr, load, store, cmd)
    else:
        _os_schedule(c, M, N, K, a_addr, b_addr, load, store, cmd)
    prog.append(encode(Funct.FENCE))
    return job


def _ws_schedule(c, M, N, K, a_addr, b_addr, load, store, cmd):
    """Weight-stationary: an R x C weight tile stays in the array while up to ``mb`` rows of A
    stream past it; all K chunks of an M block of A stay in SPAD_A."""
    R, C, eb = c.rows, c.cols, c.elem_bytes
    kc = _ceil(K, R)
    half = c.spad_depth // 2
    mb = min(M, 1023, c.acc_depth // 2, half // kc if kc <= half else 0)
    if mb < 1:
        raise GemmError(f"K={K} needs {kc} scratchpad rows a row of A; "
                        f"the scratchpad has {half} a buffer")
    b_slots = c.spad_depth // R
    b_next = 0
    for bi, m0 in enumerate(range(0, M, mb)):
        rows = min(mb, M - m0)
        a_base = (bi % 2) * kc * mb
        for n in range(_ceil(N, C)):
            cols = min(C, N - n * C)
            acc_base = ((bi * _ceil(N, C) + n) % 2) * mb
            for j in range(kc):
                k_rows = min(R, K - j * R)
                if n == 0:
                    # Each K chunk of A just before its first use: the load unit is in
                    # order, so loading the whole block first would hold back the weights.
                    load(a_addr + (m0 * K + j * R) * eb, Space.SPAD_A, a_base + j * mb, rows,
                         k_rows, K * eb)
                slot = (b_next % b_slots) * R
                b_next += 1
                load(b_addr + (j * R * N + n * C) * eb, Space.SPAD_B, slot, k_rows, cols,
                     N * eb)
                cmd(Funct.COMPUTE, a_row=a_base + j * mb, b_row=slot, c_row=acc_base,
                    steps=rows, k_valid=k_rows, accumulate=int(j > 0))
            store(acc_base, m0, rows, n, cols)
    store.flush()


def _os_schedule(c, M, N, K, a_addr, b_addr, load, store, cmd):
    """Output-stationary: each R x C output tile accumulates in the array over K steps; A
    blocks of R rows are held as R x R chunks, B column strips stay resident when they fit."""
    R, C, eb = c.rows, c.cols, c.elem_bytes
    kc = _ceil(K, R)
    a_rows = kc * R
    if 2 * a_rows > c.spad_depth or K > c.spad_depth:
        raise GemmError(f"K={K} does not fit the scratchpads ({c.spad_depth} rows)")
    n_tiles = _ceil(N, C)
    resident = n_tiles * K <= c.spad_depth
    b_slots = n_tiles if resident else max(1, c.spad_depth // K)
    acc_slots = max(1, min(8, c.acc_depth // R))
    segment = (1023 // R) * R
    loaded = set()
    tile = 0
    for bi, m0 in enumerate(range(0, M, R)):
        rows = min(R, M - m0)
        a_base = (bi % 2) * a_rows
        for j in range(kc):
            load(a_addr + (m0 * K + j * R) * eb, Space.SPAD_A, a_base + j * R, rows,
                 min(R, K - j * R), K * eb)
        for n in range(n_tiles):
            cols = min(C, N - n * C)
            slot = (n if resident else tile) % b_slots
            b_base = slot * K
            if not (resident and n in loaded):
                load(b_addr + n * C * eb, Space.SPAD_B, b_base, K, cols, N * eb)
                loaded.add(n)
            acc_row = (tile % acc_slots) * R
            tile += 1
            for k0 in range(0, K, segment):
                steps = min(segment, K - k0)
                cmd(Funct.COMPUTE, a_row=a_base + k0, b_row=b_base + k0, c_row=acc_row,
                    steps=steps, accumulate=int(k0 > 0))
            store(acc_row, m0, rows, n, cols)
    store.flush()


def run_on_model(job, model=None):
    """Run a job on the golden model; returns ``(output, model)``."""
    model = model or EngineModel(job.config)
    for addr, data in job.image:
        model.memory[addr:addr + len(data)] = np.frombuffer(data, np.uint8)
    model.run(job.program)
    return job.read_output(model.memory), model
