"""The golden model: GEMMs compiled for it against plain numpy, each command against a literal
reading of its documented semantics, and its handling of refused commands.

Every random case is derived from a fixed seed that the failure message names, so any mismatch
can be rerun alone.
"""

import dataclasses

import numpy as np
import pytest

from rvnpu.spec.config import EngineConfig
from rvnpu.spec.commands import (STATUS_FIELDS, Dataflow, ErrorCode, Funct, RequantMode, Space,
                                 encode, pack_list, unpack_status)
from rvnpu.compiler.gemm import GemmError, compile_gemm, run_on_model
from rvnpu.sim.golden.gemm import Requant, gemm_reference
from rvnpu.sim.golden.engine import EngineModel, clamp_ok, element_range, output_range
from rvnpu.sim.golden.requant import (float32_bits, quantize_multiplier,
                                      requantize_tflite_scalar)


SEED = 20240611
ZMAX = (1 << 15) - 1
SHAPES = {"4x4": (4, 4), "3x5": (3, 5), "8x8": (8, 8)}
IN_WIDTHS = (4, 8, 16)


def make_config(rows, cols, in_width=8, **kwargs):
    """A configuration with room for every GEMM below."""
    return EngineConfig(rows=rows, cols=cols, in_width=in_width, **{
        "dataflow": "both", "spad_depth": 256, "acc_depth": 64, "qp_depth": 16,
        "mem_bytes": 1 << 16, **kwargs})


def first_difference(got, want, what):
    """Assert equal arrays; otherwise name ``what``, the first differing index and the values."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    diff = np.argwhere(got != want)
    if diff.size:
        idx = tuple(int(i) for i in diff[0])
        raise AssertionError(
            f"{what}: {len(diff)} of {want.size} differ; first at {idx}: got {got[idx]}, "
            f"expected {want[idx]}")


# -- Random GEMM cases ---------------------------------------------------------------------------

@dataclasses.dataclass
class GemmCase:
    a: np.ndarray
    b: np.ndarray
    bias: object
    requant: Requant
    a_zero: int
    b_zero: int
    a_signed: bool
    b_signed: bool
    label: str

    def compile(self, config, dataflow):
        return compile_gemm(self.a, self.b, self.bias, self.requant, config=config,
                            dataflow=dataflow, a_zero=self.a_zero, b_zero=self.b_zero,
                            a_signed=self.a_signed, b_signed=self.b_signed)

    def reference(self):
        return gemm_reference(self.a, self.b, self.bias, self.requant,
                              a_zero=self.a_zero, b_zero=self.b_zero)

    def describe(self, config, dataflow):
        m, k = self.a.shape
        return (f"{self.label}: M,N,K={m},{self.b.shape[1]},{k} dataflow={dataflow} "
                f"{config.rows}x{config.cols} in_width={config.in_width} "
                f"A {'s' if self.a_signed else 'u'} zero {self.a_zero}, "
                f"B {'s' if self.b_signed else 'u'} zero {self.b_zero}, "
                f"requant={self.requant.mode}")


def _clamps(rng, in_width):
    """(out_zero, clamp_min, clamp_max) choices that fit the output element."""
    s_lo, s_hi = output_range(in_width, True)
    u_lo, u_hi = output_range(in_width, False)
    mid = (u_hi + 1) // 2
    choices = [
        (0, s_lo, s_hi),                                     # plain signed
        (int(rng.integers(s_lo // 4, s_hi // 4 + 1)), s_lo, s_hi),
        (0, 0, s_hi),                                        # ReLU
        (int(rng.integers(0, 3)), 0, min(6 << (in_width - 4), s_hi)),   # ReLU6-like
        (mid, u_lo, u_hi),                                   # uint8 with zero 128
        (s_lo + 3, s_lo, s_lo + (s_hi - s_lo) // 4),          # narrow window
    ]
    return choices[int(rng.integers(len(choices)))]


def random_case(seed, *, in_width, max_dim=40, shape=None, mode=None):
    """A random GEMM with parameters that spread the outputs over the clamp range."""
    rng = np.random.default_rng(seed)
    if shape is None:
        shape = tuple(int(x) for x in rng.integers(1, max_dim + 1, 3))
    m, n, k = shape
    a_signed, b_signed = (bool(x) for x in rng.integers(0, 2, 2))
    a_lo, a_hi = element_range(in_width, a_signed)
    b_lo, b_hi = element_range(in_width, b_signed)
    a = rng.integers(a_lo, a_hi, (m, k), endpoint=True)
    b = rng.integers(b_lo, b_hi, (k, n), endpoint=True)
    # Zero points travel in signed 16-bit fields: unsigned 16-bit ones stop at 32767 (see
    # test_unsigned_16_bit_zero_point_too_large).
    a_zero = int(rng.integers(a_lo, min(a_hi, ZMAX), endpoint=True)) if rng.random() < 0.6 else 0
    b_zero = int(rng.integers(b_lo, min(b_hi, ZMAX), endpoint=True)) if rng.random() < 0.4 else 0
    if mode is None:
        mode = ["raw", "tflite", "tflite-channel", "ort"][int(rng.integers(4))]
    raw = np.asarray(a - a_zero, np.int64) @ np.asarray(b - b_zero, np.int64)
    spread = max(1.0, float(raw.std()))
    bias = None
    if rng.random() < 0.7:
        bias = rng.integers(-3 * spread, 3 * spread, n, endpoint=True)
    out_zero, clamp_min, clamp_max = _clamps(rng, in_width)
    # A scale mapping about 3 standard deviations onto the output range: most outputs land
    # inside, some saturate.
    scale = (clamp_max - clamp_min + 1) / (3 * spread)
    if mode == "raw":
        requant = Requant(mode=None)
    elif mode == "tflite":
        mult, shift = quantize_multiplier(scale * rng.uniform(0.5, 2))
        requant = Requant("tflite", multiplier=mult, shift=shift, out_zero=out_zero,
                          clamp_min=clamp_min, clamp_max=clamp_max)
    elif mode == "tflite-channel":
        factors = rng.uniform(0.25, 4, n) * np.where(rng.random(n) < 0.15, -1, 1)
        qm = [quantize_multiplier(scale * f) for f in factors]
        requant = Requant("tflite", multiplier=np.array([q for q, _ in qm]),
                          shift=np.array([s for _, s in qm]), out_zero=out_zero,
                          clamp_min=clamp_min, clamp_max=clamp_max)
    else:
        scales = (scale * rng.uniform(0.25, 4, n)).astype(np.float32)
        requant = Requant("ort", scale=scales, out_zero=out_zero, clamp_min=clamp_min,
                          clamp_max=clamp_max)
    return GemmCase(a, b, bias, requant, a_zero, b_zero, a_signed, b_signed,
                    f"seed {seed} ({mode})")


def check_case(case, config, dataflow):
    what = case.describe(config, dataflow)
    job = case.compile(config, dataflow)
    got, model = run_on_model(job)
    assert model.error_code == ErrorCode.NONE, f"{what}: the program was refused: " \
        f"{unpack_status(model.status_word())}"
    first_difference(got, case.reference(), what)
    return got


CASES_PER_CELL = 8


@pytest.mark.parametrize("index", range(CASES_PER_CELL))
@pytest.mark.parametrize("dataflow", ["os", "ws"])
@pytest.mark.parametrize("in_width", IN_WIDTHS)
@pytest.mark.parametrize("shape", SHAPES)
def test_random_gemm(shape, in_width, dataflow, index):
    config = make_config(*SHAPES[shape], in_width)
    seed = SEED + 1000 * list(SHAPES).index(shape) + 100 * in_width + index
    check_case(random_case(seed, in_width=in_width), config, dataflow)


SPECIAL_SHAPES = [(1, 1, 1), (1, 1, 40), (40, 1, 1), (1, 40, 1), (8, 8, 8), (24, 15, 12),
                  (16, 16, 16), (9, 17, 33), (40, 40, 40), (7, 3, 5)]


@pytest.mark.parametrize("mode", ["raw", "tflite", "tflite-channel", "ort"])
@pytest.mark.parametrize("dataflow", ["os", "ws"])
@pytest.mark.parametrize("shape", SHAPES)
def test_special_shapes(shape, dataflow, mode):
    config = make_config(*SHAPES[shape])
    for i, mnk in enumerate(SPECIAL_SHAPES):
        case = random_case(SEED + 77 * i, in_width=8, shape=mnk, mode=mode)
        check_case(case, config, dataflow)


@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_tight_memories(dataflow):
    # Small local memories: B strips are reloaded (OS), A blocks split (WS), the QP rows of
    # each N tile reloaded into a 4-row QP memory.
    config = EngineConfig(rows=4, cols=4, spad_depth=128, acc_depth=16, qp_depth=4,
                          mem_bytes=1 << 14)
    for i in range(12):
        check_case(random_case(SEED + 500 + i, in_width=8, max_dim=32), config, dataflow)


@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_single_dataflow_configs(dataflow):
    config = make_config(4, 4, dataflow=dataflow)
    for i in range(6):
        check_case(random_case(SEED + 600 + i, in_width=8), config, dataflow)
    other = "ws" if dataflow == "os" else "os"
    with pytest.raises(GemmError, match=f"without the {other} dataflow"):
        random_case(SEED, in_width=8).compile(config, other)


@pytest.mark.parametrize("in_width", IN_WIDTHS)
@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_saturation_at_both_ends(in_width, dataflow):
    """All-minimum A against B columns of all-minimum and all-maximum, with K large enough that
    every output saturates: columns alternate between clamp_max and clamp_min."""
    config = make_config(4, 4, in_width)
    lo, hi = element_range(in_width, True)
    # 16-bit products are near 2**30: K = 1 keeps the sums from wrapping.
    m, n, k = 6, 7, 1 if in_width == 16 else 37
    a = np.full((m, k), lo)
    b = np.where(np.arange(n) % 2 == 0, lo, hi)[None, :].repeat(k, 0)
    s_lo, s_hi = output_range(in_width, True)
    u_lo, u_hi = output_range(in_width, False)
    for requant in [Requant("tflite", multiplier=1 << 30, shift=0, clamp_min=s_lo,
                            clamp_max=s_hi),
                    Requant("ort", scale=np.float32(1.0), clamp_min=s_lo, clamp_max=s_hi),
                    Requant("tflite", multiplier=1 << 30, shift=0, clamp_min=0, clamp_max=s_hi),
                    Requant("tflite", multiplier=(1 << 31) - 1, shift=0 if in_width == 16
                            else 10, out_zero=(u_hi + 1) // 2, clamp_min=u_lo, clamp_max=u_hi)]:
        case = GemmCase(a, b, None, requant, 0, 0, True, True, f"extreme {requant}")
        got = check_case(case, config, dataflow)
        want = np.where(np.arange(n) % 2 == 0, requant.clamp_max, requant.clamp_min)
        first_difference(got, np.broadcast_to(want, (m, n)),
                         case.describe(config, dataflow) + " (expected saturation)")
    # The raw sums are the exact products.
    case = GemmCase(a, b, None, Requant(None), 0, 0, True, True, "extreme raw")
    got = check_case(case, config, dataflow)
    first_difference(got[0], np.where(np.arange(n) % 2 == 0, lo * lo * k, lo * hi * k),
                     case.describe(config, dataflow))


@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_uint8_output_and_relu(dataflow):
    config = make_config(3, 5)
    rng = np.random.default_rng(SEED + 3)
    a = rng.integers(-128, 128, (11, 19))
    b = rng.integers(-128, 128, (19, 13))
    for out_zero, cmin, cmax in [(128, 0, 255), (0, 0, 127), (-20, 0, 127), (5, 0, 6)]:
        requant = Requant("tflite", *quantize_multiplier(1 / 150), out_zero=out_zero,
                          clamp_min=cmin, clamp_max=cmax)
        case = GemmCase(a, b, rng.integers(-5000, 5000, 13), requant, 0, 0, True, True,
                        f"seed {SEED + 3} clamp {cmin}..{cmax} zero {out_zero}")
        got = check_case(case, config, dataflow)
        assert (got == cmin).any() and (got == cmax).any(), f"{case.label}: no saturation"
        assert ((got > cmin) & (got < cmax)).any(), f"{case.label}: every output clamped"


def test_reference_against_literal_loops():
    """gemm_reference itself, on a few cases, against Python integers and the scalar TFLite
    model, so that the GEMM tests above compare with something independent of numpy @."""
    rng = np.random.default_rng(SEED + 4)
    for i in range(20):
        case = random_case(SEED + 900 + i, in_width=8, max_dim=9,
                           mode=["raw", "tflite", "tflite-channel"][i % 3])
        m, k = case.a.shape
        n = case.b.shape[1]
        want = np.zeros((m, n), np.int64)
        for r in range(m):
            for c in range(n):
                acc = sum((int(case.a[r, j]) - case.a_zero) * (int(case.b[j, c]) - case.b_zero)
                          for j in range(k))
                if case.requant.mode is None:
                    want[r, c] = acc
                    continue
                rq = case.requant
                bias = 0 if case.bias is None else int(case.bias[c])
                want[r, c] = requantize_tflite_scalar(
                    acc, bias, int(np.broadcast_to(rq.multiplier, n)[c]),
                    int(np.broadcast_to(rq.shift, n)[c]), rq.out_zero, rq.clamp_min,
                    rq.clamp_max)
        first_difference(case.reference(), want, case.label)
    del rng


def test_raw_sums_wrap_to_int32():
    """Sums beyond int32 wrap in the accumulators as in the reference (8-bit unsigned, huge K
    is out of reach, so a bias pushes the TFLite path over the edge instead)."""
    config = make_config(4, 4)
    a = np.full((4, 40), 255)
    b = np.full((40, 4), 255)
    requant = Requant("tflite", multiplier=1 << 30, shift=0, clamp_min=-128, clamp_max=127)
    bias = np.array([(1 << 31) - 1, -(1 << 31), 0, (1 << 31) - 2_000_000])
    case = GemmCase(a, b, bias, requant, 0, 0, False, False, "wrap")
    for dataflow in ("os", "ws"):
        got = check_case(case, config, dataflow)
        # acc + bias wrapped: column 0 goes negative, column 1 stays very negative.
        first_difference(got[0], [-128, -128, 127, -128], case.describe(config, dataflow))


# -- compile_gemm refusals -----------------------------------------------------------------------

GEMM_ERRORS = [
    ("1-D A", dict(a=np.zeros(4, int), b=np.zeros((4, 2), int)), "do not multiply"),
    ("K mismatch", dict(a=np.zeros((2, 3), int), b=np.zeros((4, 2), int)), "do not multiply"),
    ("M=0", dict(a=np.zeros((0, 3), int), b=np.zeros((3, 2), int)), "at least 1"),
    ("K=0", dict(a=np.zeros((2, 0), int), b=np.zeros((0, 2), int)), "at least 1"),
    ("A too big", dict(a=np.full((2, 2), 128), b=np.zeros((2, 2), int)), "A and its zero"),
    ("A too small", dict(a=np.full((2, 2), -129), b=np.zeros((2, 2), int)), "A and its zero"),
    ("unsigned B < 0", dict(a=np.zeros((2, 2), int), b=np.full((2, 2), -1), b_signed=False),
     "B and its zero"),
    ("unsigned B 256", dict(a=np.zeros((2, 2), int), b=np.full((2, 2), 256), b_signed=False),
     "B and its zero"),
    ("a_zero", dict(a=np.zeros((2, 2), int), b=np.zeros((2, 2), int), a_zero=128),
     "A and its zero"),
    ("b_zero unsigned", dict(a=np.zeros((2, 2), int), b=np.zeros((2, 2), int), b_zero=-1,
                             b_signed=False), "B and its zero"),
    ("dataflow", dict(a=np.zeros((2, 2), int), b=np.zeros((2, 2), int), dataflow="xy"),
     "dataflow must be"),
    ("clamp", dict(a=np.zeros((2, 2), int), b=np.zeros((2, 2), int),
                   requant=Requant(clamp_min=-1, clamp_max=200)), "does not fit"),
    ("clamp order", dict(a=np.zeros((2, 2), int), b=np.zeros((2, 2), int),
                         requant=Requant(clamp_min=5, clamp_max=4)), "does not fit"),
    ("mode", dict(a=np.zeros((2, 2), int), b=np.zeros((2, 2), int),
                  requant=Requant(mode="onnx")), "requant mode"),
    ("memory", dict(a=np.zeros((200, 200), int), b=np.zeros((200, 200), int)),
     "bytes of main memory"),
    ("K too long", dict(a=np.zeros((2, 300), int), b=np.zeros((300, 2), int), dataflow="os"),
     "does not fit the scratchpads"),
]


@pytest.mark.parametrize("label, kwargs, match", GEMM_ERRORS, ids=[e[0] for e in GEMM_ERRORS])
def test_compile_gemm_errors(label, kwargs, match):
    config = EngineConfig(rows=4, cols=4, spad_depth=256, acc_depth=64, qp_depth=16,
                          mem_bytes=1 << 14)
    kwargs = dict(kwargs)
    a, b = kwargs.pop("a"), kwargs.pop("b")
    requant = kwargs.pop("requant", Requant())
    with pytest.raises(GemmError) as info:
        compile_gemm(a, b, None, requant, config=config, **kwargs)
    message = str(info.value)
    assert match in message, f"{label}: {message!r}"
    assert "\n" not in message, f"{label}: not one line: {message!r}"


def test_unsigned_16_bit_zero_point_too_large():
    """Unsigned 16-bit operands take zero points up to 65535, but CONFIG_EXEC carries them in
    signed 16-bit fields: compile_gemm must refuse with a one-line GemmError (it lets the
    encoder's IsaError escape instead)."""
    config = make_config(2, 2, 16)
    a = np.full((2, 2), 40000)
    b = np.ones((2, 2), int)
    with pytest.raises(GemmError) as info:
        compile_gemm(a, b, None, Requant(None), config=config, dataflow="ws",
                     a_signed=False, a_zero=40000)
    assert "\n" not in str(info.value)


def test_compile_gemm_error_is_value_error():
    assert issubclass(GemmError, ValueError)


# -- Command semantics, one command at a time ----------------------------------------------------

SMALL = EngineConfig(rows=4, cols=4, dataflow="both", spad_depth=256, acc_depth=64, qp_depth=16,
                     mem_bytes=1 << 14)
ODD = EngineConfig(rows=3, cols=5, in_width=4, acc_width=20, dataflow="both", spad_depth=64,
                   acc_depth=32, qp_depth=8, mem_bytes=1 << 12)


def random_model(config, rng):
    """A model with random main memory and random local memories."""
    model = EngineModel(config, rng.integers(0, 256, config.mem_bytes).astype(np.uint8))
    mask = (1 << config.in_width) - 1
    model.spad_a[:] = rng.integers(0, mask, model.spad_a.shape, endpoint=True)
    model.spad_b[:] = rng.integers(0, mask, model.spad_b.shape, endpoint=True)
    amax = 1 << (config.acc_width - 1)
    model.acc[:] = rng.integers(-amax, amax, model.acc.shape)
    model.qp[:] = rng.integers(0, 1 << 32, model.qp.shape, dtype=np.uint64).astype(np.uint32)
    return model


def _sign(value, width):
    value &= (1 << width) - 1
    return value - (1 << width) if value >> (width - 1) else value


@pytest.mark.parametrize("config", [SMALL, ODD], ids=["4x4", "3x5-int4"])
def test_load_semantics(config):
    rng = np.random.default_rng(SEED + 10)
    for i in range(60):
        model = random_model(config, rng)
        before = {n: getattr(model, n).copy() for n in ("spad_a", "spad_b", "acc", "qp")}
        space = Space(int(rng.integers(4)))
        mem = model._space(space)
        depth, width = mem.shape
        es = config.elem_bytes if space in (Space.SPAD_A, Space.SPAD_B) else 4
        rows = int(rng.integers(1, min(depth, 20) + 1))
        cols = int(rng.integers(1, width + 1))
        row = int(rng.integers(0, depth - rows + 1))
        stride = int(rng.choice([0, cols * es, int(rng.integers(0, 3 * cols * es + 9))]))
        span = (rows - 1) * stride + cols * es
        addr = int(rng.integers(0, config.mem_bytes - span + 1))
        model.run([encode(Funct.CONFIG_LOAD, stride=stride),
                   encode(Funct.LOAD, dram_addr=addr, local_row=row, space=space, rows=rows,
                          cols=cols)])
        what = (f"case {i} (seed {SEED + 10}): LOAD {space.name} addr {addr} row {row} "
                f"rows {rows} cols {cols} stride {stride}")
        assert model.error_code == ErrorCode.NONE, what
        want = before[space.name.lower()].copy()
        for r in range(rows):
            for c in range(width):
                if c >= cols:
                    want[row + r, c] = 0
                    continue
                start = addr + r * stride + c * es
                value = int.from_bytes(bytes(model.memory[start:start + es]), "little")
                if space in (Space.SPAD_A, Space.SPAD_B):
                    value &= (1 << config.in_width) - 1
                elif space == Space.ACC:
                    value = _sign(value, config.acc_width)
                want[row + r, c] = value
        for name, array in before.items():
            expect = want if name == space.name.lower() else array
            first_difference(getattr(model, name), expect, f"{what}: {name}")


def _literal_compute(model, a_row, b_row, c_row, steps, k_valid, accumulate):
    """COMPUTE as its documentation spells it, in Python integers."""
    c = model.config
    w = c.in_width

    def operand(raw, signed, zero):
        return (_sign(int(raw), w) if signed else int(raw)) - zero

    def a(row, col):
        return operand(model.spad_a[row, col], model.a_signed, model.a_zero)

    def b(row, col):
        return operand(model.spad_b[row, col], model.b_signed, model.b_zero)

    acc = model.acc.copy()
    if model.dataflow == Dataflow.OS:
        targets = range(c.rows)
        for r in targets:
            for n in range(c.cols):
                s = sum(a(a_row + (k // c.rows) * c.rows + r, k % c.rows) * b(b_row + k, n)
                        for k in range(steps))
                acc[c_row + r, n] = _sign(s + (int(acc[c_row + r, n]) if accumulate else 0),
                                          c.acc_width)
    else:
        for mm in range(steps):
            for n in range(c.cols):
                s = sum(a(a_row + mm, r) * b(b_row + r, n) for r in range(k_valid))
                acc[c_row + mm, n] = _sign(s + (int(acc[c_row + mm, n]) if accumulate else 0),
                                           c.acc_width)
    return acc


@pytest.mark.parametrize("config", [SMALL, ODD], ids=["4x4", "3x5-int4"])
def test_compute_semantics(config):
    rng = np.random.default_rng(SEED + 11)
    for i in range(80):
        model = random_model(config, rng)
        dataflow = Dataflow(i % 2)
        a_signed, b_signed = (int(x) for x in rng.integers(0, 2, 2))
        a_zero = int(rng.integers(*element_range(config.in_width, a_signed), endpoint=True))
        b_zero = int(rng.integers(*element_range(config.in_width, b_signed), endpoint=True))
        model.execute(*encode(Funct.CONFIG_EXEC, dataflow=dataflow, a_signed=a_signed,
                              b_signed=b_signed, a_zero=a_zero, b_zero=b_zero))
        steps = int(rng.integers(1, 30))
        k_valid = int(rng.integers(0, config.rows + 1))
        f = dict(steps=steps, k_valid=k_valid)
        a_n, b_n, c_n = model.compute_extent(f)
        fields = dict(a_row=int(rng.integers(0, config.spad_depth - a_n + 1)),
                      b_row=int(rng.integers(0, config.spad_depth - b_n + 1)),
                      c_row=int(rng.integers(0, config.acc_depth - c_n + 1)),
                      steps=steps, k_valid=k_valid, accumulate=int(rng.integers(0, 2)))
        what = (f"case {i} (seed {SEED + 11}): {dataflow.name} a {'su'[1 - a_signed]} zero "
                f"{a_zero}, b {'su'[1 - b_signed]} zero {b_zero}, COMPUTE {fields}")
        want = _literal_compute(model, **fields)
        model.execute(*encode(Funct.COMPUTE, **fields))
        assert model.error_code == ErrorCode.NONE, what
        first_difference(model.acc, want, what)


@pytest.mark.parametrize("config", [SMALL, ODD], ids=["4x4", "3x5-int4"])
def test_store_semantics(config):
    rng = np.random.default_rng(SEED + 12)
    s_lo, s_hi = output_range(config.in_width, True)
    for i in range(60):
        model = random_model(config, rng)
        raw = i % 3 == 0
        es = 4 if raw else config.elem_bytes
        rows = int(rng.integers(1, 12))
        cols = int(rng.integers(1, config.cols + 1))
        acc_row = int(rng.integers(0, config.acc_depth - rows + 1))
        qp_row = int(rng.integers(0, config.qp_depth - 3 + 1))
        stride = int(rng.choice([0, cols * es, int(rng.integers(0, 3 * cols * es + 9))]))
        span = (rows - 1) * stride + cols * es
        addr = int(rng.integers(0, config.mem_bytes - span + 1))
        out_zero = int(rng.integers(-10, 11))
        # TFLite mode with sane shifts: the multiplier row keeps its random bits.
        model.qp[qp_row + 2] = rng.integers(-40, 40, config.cols).astype(np.uint32)
        cmin, cmax = sorted(int(x) for x in rng.integers(s_lo, s_hi, 2, endpoint=True))
        program = [encode(Funct.CONFIG_STORE, stride=stride, qp_row=qp_row),
                   encode(Funct.CONFIG_REQUANT, out_zero=out_zero, mode=RequantMode.TFLITE,
                          clamp_min=cmin, clamp_max=cmax),
                   encode(Funct.STORE_ACC if raw else Funct.STORE, dram_addr=addr,
                          acc_row=acc_row, rows=rows, cols=cols)]
        memory = model.memory.copy()
        model.run(program)
        what = (f"case {i} (seed {SEED + 12}): {'STORE_ACC' if raw else 'STORE'} addr {addr} "
                f"acc_row {acc_row} rows {rows} cols {cols} stride {stride} qp_row {qp_row}")
        assert model.error_code == ErrorCode.NONE, what
        for r in range(rows):       # later rows win where a small stride overlaps them
            for c in range(cols):
                acc = int(model.acc[acc_row + r, c])
                if raw:
                    value = acc
                else:
                    bias, mult, shift = (_sign(int(model.qp[qp_row + j, c]), 32)
                                         for j in range(3))
                    value = requantize_tflite_scalar(acc, bias, mult, shift, out_zero, cmin,
                                                     cmax)
                start = addr + r * stride + c * es
                memory[start:start + es] = np.frombuffer(
                    (value & ((1 << 8 * es) - 1)).to_bytes(es, "little"), np.uint8)
        first_difference(model.memory, memory, what)


# -- Refused commands ----------------------------------------------------------------------------

_REGISTERS = ("dataflow", "a_signed", "b_signed", "a_zero", "b_zero", "load_stride",
              "store_stride", "qp_row", "out_zero", "mode", "clamp_min", "clamp_max")


def snapshot(model):
    state = {n: getattr(model, n).copy() for n in ("memory", "spad_a", "spad_b", "acc", "qp")}
    state.update({n: getattr(model, n) for n in _REGISTERS})
    return state


def assert_unchanged(model, before, what):
    for name, value in before.items():
        if isinstance(value, np.ndarray):
            first_difference(getattr(model, name), value, f"{what}: {name} changed")
        else:
            assert getattr(model, name) == value, f"{what}: register {name} changed"


def _c(funct, **fields):
    return encode(funct, **fields)


M = SMALL.mem_bytes
#: (label, setup commands, refused command, error code). SMALL: 4x4, spad 256, acc 64, qp 16.
BAD_COMMANDS = [
    ("unknown funct 0x05", [], (0x05, 0, 0), ErrorCode.BAD_FUNCT),
    ("unknown funct 0x7f", [], (0x7f, 0xffffffff, 0xffffffff), ErrorCode.BAD_FUNCT),
    ("unknown funct 0x23", [], (0x23, 1, 0), ErrorCode.BAD_FUNCT),
    ("LOAD past the end", [], _c(Funct.LOAD, dram_addr=M - 3, space=Space.SPAD_A, rows=1,
                                 cols=4), ErrorCode.BAD_MEMORY),
    ("LOAD at 0xffffffff", [], _c(Funct.LOAD, dram_addr=0xffffffff, space=Space.SPAD_B, rows=1,
                                  cols=1), ErrorCode.BAD_MEMORY),
    ("LOAD ACC past the end", [], _c(Funct.LOAD, dram_addr=M - 15, space=Space.ACC, rows=1,
                                     cols=4), ErrorCode.BAD_MEMORY),
    ("LOAD strided past the end", [_c(Funct.CONFIG_LOAD, stride=M // 3)],
     _c(Funct.LOAD, dram_addr=4, space=Space.SPAD_A, rows=4, cols=1), ErrorCode.BAD_MEMORY),
    ("LOAD huge stride", [_c(Funct.CONFIG_LOAD, stride=0xffffffff)],
     _c(Funct.LOAD, dram_addr=0, space=Space.QP, rows=2, cols=1), ErrorCode.BAD_MEMORY),
    ("LOAD SPAD_A row", [], _c(Funct.LOAD, local_row=255, space=Space.SPAD_A, rows=2, cols=1),
     ErrorCode.BAD_LOCAL),
    ("LOAD ACC row", [], _c(Funct.LOAD, local_row=64, space=Space.ACC, rows=1, cols=1),
     ErrorCode.BAD_LOCAL),
    ("LOAD QP row", [], _c(Funct.LOAD, local_row=14, space=Space.QP, rows=3, cols=1),
     ErrorCode.BAD_LOCAL),
    ("LOAD row beats size", [], _c(Funct.LOAD, local_row=16383, space=Space.SPAD_B, rows=1,
                                   cols=9), ErrorCode.BAD_LOCAL),
    ("LOAD SPAD_A cols", [], _c(Funct.LOAD, space=Space.SPAD_A, rows=1, cols=5),
     ErrorCode.BAD_SIZE),
    ("LOAD QP cols", [], _c(Funct.LOAD, space=Space.QP, rows=1, cols=255), ErrorCode.BAD_SIZE),
    ("LOAD size beats memory", [], _c(Funct.LOAD, dram_addr=M, space=Space.ACC, rows=1,
                                      cols=5), ErrorCode.BAD_SIZE),
    ("COMPUTE OS padded A", [], _c(Funct.COMPUTE, a_row=250, steps=5), ErrorCode.BAD_LOCAL),
    ("COMPUTE OS B", [], _c(Funct.COMPUTE, b_row=250, steps=7), ErrorCode.BAD_LOCAL),
    ("COMPUTE OS C", [], _c(Funct.COMPUTE, c_row=61, steps=1), ErrorCode.BAD_LOCAL),
    ("COMPUTE steps 1023", [], _c(Funct.COMPUTE, steps=1023), ErrorCode.BAD_LOCAL),
    ("COMPUTE WS C", [_c(Funct.CONFIG_EXEC, dataflow=Dataflow.WS, a_signed=1, b_signed=1)],
     _c(Funct.COMPUTE, c_row=60, steps=5, k_valid=4), ErrorCode.BAD_LOCAL),
    ("COMPUTE WS B", [_c(Funct.CONFIG_EXEC, dataflow=Dataflow.WS, a_signed=1, b_signed=1)],
     _c(Funct.COMPUTE, b_row=253, steps=1, k_valid=4), ErrorCode.BAD_LOCAL),
    ("COMPUTE WS k_valid", [_c(Funct.CONFIG_EXEC, dataflow=Dataflow.WS, a_signed=1, b_signed=1)],
     _c(Funct.COMPUTE, steps=3, k_valid=5), ErrorCode.BAD_SIZE),
    ("STORE row", [], _c(Funct.STORE, acc_row=60, rows=5, cols=1), ErrorCode.BAD_LOCAL),
    ("STORE cols", [], _c(Funct.STORE, rows=1, cols=5), ErrorCode.BAD_SIZE),
    ("STORE past the end", [], _c(Funct.STORE, dram_addr=M - 3, rows=1, cols=4),
     ErrorCode.BAD_MEMORY),
    ("STORE_ACC past the end", [], _c(Funct.STORE_ACC, dram_addr=M - 15, rows=1, cols=4),
     ErrorCode.BAD_MEMORY),
    ("STORE strided", [_c(Funct.CONFIG_STORE, stride=M)], _c(Funct.STORE, rows=2, cols=1),
     ErrorCode.BAD_MEMORY),
    ("CONFIG_REQUANT order", [], _c(Funct.CONFIG_REQUANT, clamp_min=1, clamp_max=0),
     ErrorCode.BAD_CONFIG),
    ("CONFIG_REQUANT -1..200", [], _c(Funct.CONFIG_REQUANT, clamp_min=-1, clamp_max=200),
     ErrorCode.BAD_CONFIG),
    ("CONFIG_REQUANT -129", [], _c(Funct.CONFIG_REQUANT, clamp_min=-129, clamp_max=0),
     ErrorCode.BAD_CONFIG),
    ("CONFIG_REQUANT 256", [], _c(Funct.CONFIG_REQUANT, clamp_min=0, clamp_max=256),
     ErrorCode.BAD_CONFIG),
    ("CONFIG_EXEC a_zero", [], _c(Funct.CONFIG_EXEC, a_signed=1, b_signed=1, a_zero=128),
     ErrorCode.BAD_CONFIG),
    ("CONFIG_EXEC unsigned a_zero", [], _c(Funct.CONFIG_EXEC, a_signed=0, b_signed=1,
                                           a_zero=-1), ErrorCode.BAD_CONFIG),
    ("CONFIG_EXEC b_zero", [], _c(Funct.CONFIG_EXEC, a_signed=1, b_signed=0, b_zero=256),
     ErrorCode.BAD_CONFIG),
    ("CONFIG_STORE qp_row", [], _c(Funct.CONFIG_STORE, qp_row=14), ErrorCode.BAD_LOCAL),
]


@pytest.mark.parametrize("label, setup, bad, code", BAD_COMMANDS,
                         ids=[b[0] for b in BAD_COMMANDS])
def test_refused_command(label, setup, bad, code):
    rng = np.random.default_rng(SEED + 20)
    model = random_model(SMALL, rng)
    assert model.run(setup) == [] and model.error_code == ErrorCode.NONE, label
    before = snapshot(model)
    assert model.execute(*bad) is None, label
    assert_unchanged(model, before, label)
    status = unpack_status(model.status_word())
    assert status == dict(busy=0, error=1, list_busy=0, list_done=0, error_code=code,
                          error_funct=bad[0] & 0x7f, error_count=1), f"{label}: {status}"
    # A second refusal counts but keeps the first's code and function.
    assert model.execute(0x7e, 0, 0) is None
    (word,) = model.run([encode(Funct.FENCE)])
    assert unpack_status(word) == dict(status, error_count=2), label
    # STATUS answers, then clears.
    (word, after) = model.run([encode(Funct.STATUS, clear=1), encode(Funct.STATUS)])
    assert unpack_status(word) == dict(status, error_count=2), label
    assert after == 0, f"{label}: {unpack_status(after)} after a clear"
    assert_unchanged(model, before, label)


def test_unsupported_dataflow_refused():
    for dataflow, other in (("os", Dataflow.WS), ("ws", Dataflow.OS)):
        model = EngineModel(dataclasses.replace(SMALL, dataflow=dataflow))
        before = snapshot(model)
        model.execute(*encode(Funct.CONFIG_EXEC, dataflow=other, a_signed=1, b_signed=1))
        assert_unchanged(model, before, dataflow)
        assert (model.error_code, model.error_funct) == (ErrorCode.BAD_CONFIG,
                                                         Funct.CONFIG_EXEC), dataflow
        # Reset dataflow is the one built.
        assert model.dataflow == (Dataflow.OS if dataflow == "os" else Dataflow.WS)


ACCEPTED_EDGES = [
    _c(Funct.LOAD, dram_addr=M - 4, space=Space.SPAD_A, rows=1, cols=4),
    _c(Funct.LOAD, dram_addr=M - 16, space=Space.QP, local_row=13, rows=3, cols=4),
    _c(Funct.LOAD, local_row=252, space=Space.SPAD_B, rows=4, cols=4),
    _c(Funct.LOAD, dram_addr=M, local_row=16383, space=Space.ACC, rows=0, cols=200),
    _c(Funct.LOAD, dram_addr=0xffffffff, local_row=16383, space=Space.QP, rows=255, cols=0),
    _c(Funct.STORE_ACC, dram_addr=M - 16, acc_row=63, rows=1, cols=4),
    _c(Funct.STORE, dram_addr=M - 4, acc_row=60, rows=1, cols=4),
    _c(Funct.STORE, dram_addr=0xffffffff, acc_row=16383, rows=0, cols=255),
    _c(Funct.COMPUTE, a_row=252, b_row=252, c_row=60, steps=4),
    _c(Funct.COMPUTE, a_row=16383, b_row=16383, c_row=16383, steps=0, k_valid=63),
    _c(Funct.COMPUTE, a_row=248, b_row=251, c_row=60, steps=5),
    _c(Funct.CONFIG_REQUANT, clamp_min=0, clamp_max=255, out_zero=128),
    _c(Funct.CONFIG_REQUANT, clamp_min=-128, clamp_max=127, out_zero=-32768),
    _c(Funct.CONFIG_REQUANT, clamp_min=7, clamp_max=7),
    _c(Funct.CONFIG_EXEC, dataflow=Dataflow.WS, a_signed=0, b_signed=0, a_zero=255, b_zero=0),
    _c(Funct.CONFIG_EXEC, dataflow=Dataflow.OS, a_signed=1, b_signed=1, a_zero=-128,
       b_zero=127),
    _c(Funct.CONFIG_STORE, qp_row=13, stride=0xffffffff),
    _c(Funct.CONFIG_LOAD, stride=0xffffffff),
]


@pytest.mark.parametrize("index", range(len(ACCEPTED_EDGES)))
def test_edges_accepted(index):
    command = ACCEPTED_EDGES[index]
    model = random_model(SMALL, np.random.default_rng(SEED + 21))
    model.execute(*command)
    assert model.error_code == ErrorCode.NONE, \
        f"{command} refused: {unpack_status(model.status_word())}"


def test_zero_sized_commands_write_nothing():
    rng = np.random.default_rng(SEED + 22)
    model = random_model(SMALL, rng)
    before = snapshot(model)
    model.run([_c(Funct.LOAD, space=Space.SPAD_A, rows=0, cols=4),
               _c(Funct.LOAD, space=Space.ACC, rows=3, cols=0),
               _c(Funct.STORE, rows=0, cols=4), _c(Funct.STORE_ACC, rows=4, cols=0),
               _c(Funct.COMPUTE, steps=0, accumulate=0)])
    assert model.error_code == ErrorCode.NONE
    assert_unchanged(model, before, "zero-sized commands")


def test_error_count_saturates():
    model = EngineModel(SMALL)
    for _ in range(0x10002):
        model.execute(0x7f, 0, 0)
    assert unpack_status(model.status_word())["error_count"] == 0xffff
    (word,) = model.run([encode(Funct.STATUS, clear=1)])
    assert unpack_status(word)["error_count"] == 0xffff and model.status_word() == 0


def test_refused_config_keeps_old_settings():
    """A refused CONFIG_REQUANT leaves the earlier clamp in force for later STOREs."""
    model = EngineModel(SMALL)
    model.acc[0, :4] = [-1000, -5, 5, 1000]
    model.qp[1, :4] = 1 << 30            # multiplier 0.5
    model.run([_c(Funct.CONFIG_STORE, qp_row=0),
               _c(Funct.CONFIG_REQUANT, clamp_min=-10, clamp_max=10),
               _c(Funct.CONFIG_REQUANT, clamp_min=-1, clamp_max=200),
               _c(Funct.STORE, dram_addr=64, rows=1, cols=4)])
    assert model.error_code == ErrorCode.BAD_CONFIG
    assert list(model.memory[64:68].view(np.int8)) == [-10, -2, 3, 10]


def test_busy_bit_is_zero_in_the_model():
    busy = next(f for f in STATUS_FIELDS if f.name == "busy")
    assert busy.lsb == 0 and busy.width == 1
    model = EngineModel(SMALL)
    assert model.run([_c(Funct.COMPUTE, steps=4), _c(Funct.STATUS), _c(Funct.FENCE)]) == [0, 0]


def test_clamp_ok_matches_output_ranges():
    for w in (4, 8, 16):
        s_lo, s_hi = output_range(w, True)
        u_lo, u_hi = output_range(w, False)
        assert clamp_ok(w, s_lo, s_hi) and clamp_ok(w, u_lo, u_hi) and clamp_ok(w, 0, 0)
        assert not clamp_ok(w, s_lo - 1, 0) and not clamp_ok(w, 0, u_hi + 1)
        assert not clamp_ok(w, -1, s_hi + 1) and not clamp_ok(w, 1, 0)
    assert output_range(16, False) == (0, 32767)
    assert float32_bits(1.0) == 0x3f800000


def test_requant_mode_not_built_refused():
    for built, other in (("tflite", RequantMode.ORT), ("ort", RequantMode.TFLITE)):
        model = EngineModel(dataclasses.replace(SMALL, requant_modes=built))
        before = snapshot(model)
        model.execute(*encode(Funct.CONFIG_REQUANT, mode=other, clamp_min=-128, clamp_max=127))
        assert_unchanged(model, before, built)
        assert (model.error_code, model.error_funct) == (ErrorCode.BAD_CONFIG,
                                                         Funct.CONFIG_REQUANT), built
        # The mode built is accepted.
        model.execute(*encode(Funct.CONFIG_REQUANT, mode=1 - other, clamp_min=-128,
                              clamp_max=127))
        assert model.error_count == 1, built
        # The compiler says so before anything runs.
        config = make_config(4, 4, requant_modes=built)
        name = "ort" if other == RequantMode.ORT else "tflite"
        case = random_case(SEED, in_width=8, mode=name)
        with pytest.raises(GemmError, match=f"without {name} requantisation"):
            case.compile(config, "ws")


def test_engine_without_requantisation_refuses_store_but_stores_raw():
    model = EngineModel(dataclasses.replace(SMALL, requant_modes="none"))
    model.acc[0, :2] = [-5, 1 << 20]
    before = snapshot(model)
    model.execute(*encode(Funct.STORE, dram_addr=0, acc_row=0, rows=1, cols=2))
    assert_unchanged(model, before, "STORE")
    assert (model.error_code, model.error_funct) == (ErrorCode.BAD_FUNCT, Funct.STORE)
    for mode in RequantMode:
        model.execute(*encode(Funct.CONFIG_REQUANT, mode=mode, clamp_min=-128, clamp_max=127))
    assert model.error_count == 3
    model.execute(*encode(Funct.STORE_ACC, dram_addr=16, acc_row=0, rows=1, cols=2))
    assert model.error_count == 3
    assert list(model.memory[16:24].view("<i4")) == [-5, 1 << 20]
    with pytest.raises(GemmError, match="without tflite requantisation"):
        random_case(SEED, in_width=8, mode="tflite").compile(
            make_config(4, 4, requant_modes="none"), "ws")


# -- Command lists (RUN) -------------------------------------------------------------------------

def _list_program(rng, config, n):
    """Random commands, refused ones among them, as a list might hold."""
    C = config.cols
    out = []
    for _ in range(n):
        kind = int(rng.integers(0, 6))
        if kind == 0:
            out.append(encode(Funct.CONFIG_LOAD, stride=int(rng.integers(0, 64))))
        elif kind == 1:
            out.append(encode(Funct.LOAD, dram_addr=int(rng.integers(0, 2048)),
                              local_row=int(rng.integers(0, 60)), space=int(rng.integers(0, 4)),
                              rows=int(rng.integers(0, 8)), cols=int(rng.integers(0, C + 2))))
        elif kind == 2:
            out.append(encode(Funct.COMPUTE, a_row=int(rng.integers(0, 40)),
                              b_row=int(rng.integers(0, 40)), c_row=int(rng.integers(0, 40)),
                              steps=int(rng.integers(0, 9)), k_valid=int(rng.integers(0, 5)),
                              accumulate=int(rng.integers(0, 2))))
        elif kind == 3:
            out.append(encode(Funct.STORE_ACC, dram_addr=int(rng.integers(0, 2048)),
                              acc_row=int(rng.integers(0, 60)), rows=int(rng.integers(0, 6)),
                              cols=int(rng.integers(0, C + 1))))
        else:
            out.append([encode(Funct.FENCE), encode(Funct.STATUS, clear=1, clear_done=1),
                        encode(Funct.RUN, list_addr=0, count=1), (0x44, 5, 6)]
                       [int(rng.integers(0, 4))])
    return out


@pytest.mark.parametrize("seed", range(6))
def test_run_equals_issuing_the_entries_with_list_refusals(seed):
    """RUN runs each entry as the core would, except that RUN, FENCE and STATUS are refused
    (BAD_IN_LIST) and skipped; a refused entry does not stop the list; list_done is set."""
    rng = np.random.default_rng(SEED + 700 + seed)
    listed = random_model(SMALL, rng)
    direct = EngineModel(SMALL, listed.memory.copy())
    for name in ("spad_a", "spad_b", "acc", "qp"):
        getattr(direct, name)[:] = getattr(listed, name)
    entries = _list_program(rng, SMALL, 40)
    at = 4096
    data = pack_list(entries)
    listed.memory[at:at + len(data)] = np.frombuffer(data, np.uint8)
    direct.memory[at:at + len(data)] = np.frombuffer(data, np.uint8)
    assert listed.execute(*encode(Funct.RUN, list_addr=at, count=len(entries))) is None
    in_list = {Funct.RUN, Funct.FENCE, Funct.STATUS}
    for funct, op1, op2 in entries:
        if funct in in_list:
            direct._refuse(funct, ErrorCode.BAD_IN_LIST)
        else:
            direct.execute(funct, op1, op2)
    for name in ("memory", "spad_a", "spad_b", "acc", "qp"):
        first_difference(getattr(listed, name), getattr(direct, name), name)
    assert listed.list_done == 1 and direct.list_done == 0
    assert listed.status_word() == direct.status_word() | 1 << 3
    assert any(f in in_list for f, _, _ in entries)


@pytest.mark.parametrize("label, run, code", [
    ("misaligned", dict(list_addr=8, count=1), ErrorCode.BAD_MEMORY),
    ("past the end", dict(list_addr=SMALL.mem_bytes - 16, count=2), ErrorCode.BAD_MEMORY),
    ("past by a window", dict(list_addr=SMALL.mem_bytes, count=1), ErrorCode.BAD_MEMORY),
    ("count wraps", dict(list_addr=16, count=(1 << 32) - 1), ErrorCode.BAD_MEMORY),
])
def test_refused_run_runs_nothing(label, run, code):
    rng = np.random.default_rng(SEED + 750)
    model = random_model(SMALL, rng)
    good = pack_list([encode(Funct.CONFIG_LOAD, stride=4)] * 2)
    model.memory[:len(good)] = np.frombuffer(good, np.uint8)
    before = snapshot(model)
    assert model.execute(*encode(Funct.RUN, **run)) is None
    assert_unchanged(model, before, label)
    status = unpack_status(model.status_word())
    assert (status["error_code"], status["error_funct"], status["list_done"]) == \
        (code, Funct.RUN, 0), label


def test_empty_list_sets_list_done_and_clear_done_clears_it():
    model = EngineModel(SMALL)
    model.run([encode(Funct.RUN, list_addr=3, count=0)])   # empty: not even aligned
    first, second, third = model.run([encode(Funct.STATUS, clear=1), encode(Funct.STATUS,
                                      clear_done=1), encode(Funct.STATUS)])
    assert [unpack_status(w)["list_done"] for w in (first, second, third)] == [1, 1, 0]
    assert unpack_status(first)["error"] == 0


def test_run_without_command_fetch_is_an_unknown_command():
    config = dataclasses.replace(SMALL, command_fetch=False)
    model = EngineModel(config)
    data = pack_list([encode(Funct.CONFIG_LOAD, stride=4)])
    model.memory[:len(data)] = np.frombuffer(data, np.uint8)
    model.run([encode(Funct.RUN, list_addr=0, count=1), encode(Funct.RUN, count=0)])
    status = unpack_status(model.status_word())
    assert (status["error_code"], status["error_count"], status["list_done"]) == \
        (ErrorCode.BAD_FUNCT, 2, 0)
    assert model.load_stride == 0
