"""STORE_POOL, the max-pool fused into the store unit: the golden model against literal loops
(requantise each window row, then take the max), its refusals, and the engine's RTL on
Amaranth's simulator against the golden model bit for bit, with random windows, clamps that
saturate at both ends, unsigned outputs, zero-sized and refused commands, and with fewer
requantisation lanes than columns.
"""

import dataclasses

import numpy as np
import pytest

from rvnpu.sim.engine_programs import BUSY_MASK, check_program, random_program
from rvnpu.sim.golden.engine import EngineModel, output_range
from rvnpu.sim.golden.requant import quantize_multiplier
from rvnpu.spec.commands import ErrorCode, Funct, RequantMode, Space, encode, unpack_status
from rvnpu.spec.config import EngineConfig

from test_engine_fetch import run_golden, run_rtl


CONFIGS = {
    "4x4-bus32": EngineConfig(rows=4, cols=4, spad_depth=32, acc_depth=32, qp_depth=8,
                              bus_width=32, mem_bytes=1 << 12),
    "2x4-lanes2-serial": EngineConfig(rows=2, cols=4, spad_depth=32, acc_depth=32, qp_depth=8,
                                      bus_width=64, mem_bytes=1 << 12, queue_depth=1,
                                      hazards="serial", requant_lanes=2),
    "3x3-ort": EngineConfig(rows=3, cols=3, spad_depth=32, acc_depth=16, qp_depth=4,
                            mem_bytes=1 << 12, requant_modes="ort", post_unit=False),
}

SEED = 1401


def _words(values):
    return np.asarray(values, np.int64).astype("<u4").tobytes()


def _setup(config, rng, acc_addr, qp_addr):
    """An image holding ACC rows (with extreme values) and a QP triple of the engine's first
    mode, and the commands loading them."""
    C, A = config.cols, config.acc_depth
    acc = rng.integers(-5000, 5000, (A, C))
    extreme = rng.random((A, C)) < 0.15
    acc[extreme] = rng.choice([-(1 << 31), (1 << 31) - 1, -(1 << 20), 1 << 20],
                              int(extreme.sum()))
    mode = config.built_requant_modes[0].code
    bias = rng.integers(-300, 300, C)
    if mode == RequantMode.TFLITE:
        mult, shift = quantize_multiplier(float(rng.uniform(0.005, 0.08)))
        second, third = np.full(C, mult), np.full(C, shift)
    else:
        # Negative scales too: the max after requantisation is still ONNX's max-pool.
        scales = rng.uniform(0.005, 0.08, C) * rng.choice([-1, 1], C)
        second = np.asarray(scales, np.float32).view(np.int32)
        third = np.zeros(C, np.int64)
    image = [(acc_addr, _words(acc)), (qp_addr, _words([bias, second, third]))]
    commands = [encode(Funct.CONFIG_LOAD, stride=C * 4),
                encode(Funct.LOAD, dram_addr=acc_addr, local_row=0, space=Space.ACC, rows=A,
                       cols=C),
                encode(Funct.LOAD, dram_addr=qp_addr, local_row=0, space=Space.QP, rows=3,
                       cols=C),
                encode(Funct.CONFIG_STORE, stride=C, qp_row=0)]
    return image, commands, mode


def random_pool_program(config, seed, n=14):
    """Random CONFIG_REQUANT, CONFIG_STORE_POOL and STORE_POOL commands (some refused, some
    empty), mixed with plain STOREs, after loading ACC and QP; ends with STATUS and FENCE."""
    rng = np.random.default_rng(seed)
    C, A, eb = config.cols, config.acc_depth, config.elem_bytes
    image, commands, mode = _setup(config, rng, 0, A * C * 4)
    out_lo = A * C * 4 + 3 * C * 4 + 16
    s_lo, s_hi = output_range(config.in_width, True)
    u_lo, u_hi = output_range(config.in_width, False)
    kh = kw = step = 1
    pitch = 0
    for _ in range(n):
        choice = rng.integers(0, 10)
        if choice < 2:
            lo, hi = (s_lo, s_hi) if rng.random() < 0.5 else (u_lo, u_hi)
            if rng.random() < 0.5:
                lo, hi = sorted(int(v) for v in rng.integers(lo, hi + 1, 2))
            commands.append(encode(Funct.CONFIG_REQUANT, out_zero=int(rng.integers(-30, 30)),
                                   mode=mode, clamp_min=lo, clamp_max=hi))
        elif choice < 4:
            new = dict(kernel_h=int(rng.integers(1, 4)), kernel_w=int(rng.integers(1, 4)),
                       step=int(rng.integers(0, 5)), pitch=int(rng.integers(0, 7)))
            if rng.random() < 0.15:
                new["kernel_h" if rng.random() < 0.5 else "kernel_w"] = 0      # refused
            else:
                kh, kw, step, pitch = new["kernel_h"], new["kernel_w"], new["step"], \
                    new["pitch"]
            commands.append(encode(Funct.CONFIG_STORE_POOL, **new))
        else:
            rows = int(rng.integers(0, 6)) if rng.random() < 0.9 else 0
            cols = int(rng.integers(1, C + 1)) if rng.random() < 0.9 else 0
            if rng.random() < 0.05:
                cols = C + 1                                                   # refused
            extent = max(1, (rows - 1) * step + (kh - 1) * pitch + kw)
            acc_row = int(rng.integers(0, max(1, A - extent + 1)))
            if rng.random() < 0.08:
                acc_row = A - extent + 1                                       # refused
            funct = Funct.STORE if choice == 9 else Funct.STORE_POOL
            commands.append(encode(funct, dram_addr=int(rng.integers(out_lo, out_lo + 600)),
                                   acc_row=max(0, acc_row), rows=rows, cols=cols))
            if rng.random() < 0.2:
                commands.append(encode(Funct.CONFIG_STORE, stride=int(rng.integers(1, 3 * C * eb)),
                                       qp_row=0))
    commands += [encode(Funct.STATUS, clear=1), encode(Funct.FENCE)]
    return image, commands


# -- The golden model --------------------------------------------------------------------------

def test_golden_store_pool_is_the_max_of_requantised_window_rows():
    """Each output row against STOREs of its window's rows one by one, and their max."""
    config = CONFIGS["4x4-bus32"]
    C = config.cols
    for seed in range(SEED, SEED + 6):
        rng = np.random.default_rng(seed)
        image, setup, mode = _setup(config, rng, 0, config.acc_depth * C * 4)
        kh, kw, step, pitch = (int(rng.integers(1, 4)), int(rng.integers(1, 4)),
                               int(rng.integers(1, 4)), int(rng.integers(2, 6)))
        rows = int(rng.integers(1, 4))
        clamp = (-128, 127) if seed % 2 else (0, 200)
        model = EngineModel(config)
        for addr, data in image:
            model.memory[addr:addr + len(data)] = np.frombuffer(data, np.uint8)
        model.run(setup + [encode(Funct.CONFIG_REQUANT, out_zero=3, mode=mode,
                                  clamp_min=clamp[0], clamp_max=clamp[1]),
                           encode(Funct.CONFIG_STORE_POOL, kernel_h=kh, kernel_w=kw, step=step,
                                  pitch=pitch),
                           encode(Funct.STORE_POOL, dram_addr=2048, acc_row=1, rows=rows,
                                  cols=C)])
        pooled = model.memory[2048:2048 + rows * C].reshape(rows, C)
        want = np.full((rows, C), -1 << 20)
        for j in range(rows):
            for y in range(kh):
                for x in range(kw):
                    row = 1 + j * step + y * pitch + x
                    model.execute(*encode(Funct.STORE, dram_addr=3000, acc_row=row, rows=1,
                                          cols=C))
                    one = model.memory[3000:3000 + C].astype(np.int64)
                    if clamp[0] < 0:
                        one = np.where(one > 127, one - 256, one)
                    want[j] = np.maximum(want[j], one)
        got = pooled.astype(np.int64)
        if clamp[0] < 0:
            got = np.where(got > 127, got - 256, got)
        assert (got == want).all(), f"seed {seed}: {got} != {want}"
        assert model.error_code == ErrorCode.NONE


@pytest.mark.parametrize("label, setup, bad, code", [
    ("zero kernel rows", [], encode(Funct.CONFIG_STORE_POOL, kernel_h=0, kernel_w=2, step=2),
     ErrorCode.BAD_CONFIG),
    ("zero kernel columns", [], encode(Funct.CONFIG_STORE_POOL, kernel_h=2, kernel_w=0),
     ErrorCode.BAD_CONFIG),
    # Windows from row 17 reach row 17 + 2 * 3 + 1 * 8 + 2 - 1 = 32 of a 32-row ACC.
    ("window past ACC",
     [encode(Funct.CONFIG_STORE_POOL, kernel_h=2, kernel_w=2, step=3, pitch=8)],
     encode(Funct.STORE_POOL, acc_row=17, rows=3, cols=4), ErrorCode.BAD_LOCAL),
    ("too many columns", [], encode(Funct.STORE_POOL, acc_row=0, rows=1, cols=5),
     ErrorCode.BAD_SIZE),
    ("past main memory", [encode(Funct.CONFIG_STORE, stride=100)],
     encode(Funct.STORE_POOL, dram_addr=(1 << 12) - 103, acc_row=0, rows=2, cols=4),
     ErrorCode.BAD_MEMORY),
])
def test_golden_refusals(label, setup, bad, code):
    model = EngineModel(CONFIGS["4x4-bus32"])
    model.run(setup)
    assert model.error_code == ErrorCode.NONE, label
    before = model.memory.copy(), (model.pool_kernel_h, model.pool_kernel_w)
    model.execute(*bad)
    assert model.error_code == code, label
    assert (model.memory == before[0]).all()
    assert (model.pool_kernel_h, model.pool_kernel_w) == before[1]


def test_golden_last_window_row_at_the_end_of_acc_is_accepted():
    model = EngineModel(CONFIGS["4x4-bus32"])
    model.run([encode(Funct.CONFIG_STORE_POOL, kernel_h=2, kernel_w=2, step=3, pitch=8),
               encode(Funct.STORE_POOL, acc_row=12, rows=3, cols=4)])   # 12 + 6 + 8 + 2 = 28
    model.run([encode(Funct.STORE_POOL, acc_row=16, rows=3, cols=4)])   # ends at row 32
    assert model.error_code == ErrorCode.NONE
    model.run([encode(Funct.STORE_POOL, acc_row=17, rows=3, cols=4)])
    assert model.error_code == ErrorCode.BAD_LOCAL


def test_golden_reset_window_makes_store_pool_a_store():
    config = CONFIGS["4x4-bus32"]
    rng = np.random.default_rng(SEED)
    image, setup, _ = _setup(config, rng, 0, config.acc_depth * config.cols * 4)
    memories = []
    for funct in (Funct.STORE, Funct.STORE_POOL):
        model = EngineModel(config)
        for addr, data in image:
            model.memory[addr:addr + len(data)] = np.frombuffer(data, np.uint8)
        model.run(setup + [encode(funct, dram_addr=2100, acc_row=2, rows=7, cols=3)])
        memories.append(model.memory.copy())
    assert (memories[0] == memories[1]).all()
    assert (memories[0][2100:2121] != 0).any()


def test_engine_without_requantisation_refuses_store_pool():
    config = EngineConfig(rows=2, cols=2, spad_depth=16, acc_depth=16, qp_depth=4,
                          mem_bytes=1 << 10, requant_modes="none")
    model = EngineModel(config)
    model.run([encode(Funct.STORE_POOL, acc_row=0, rows=1, cols=2)])
    assert model.error_code == ErrorCode.BAD_FUNCT


def test_engine_without_store_pool_refuses_both_commands():
    """store_pool=0 (the iCEBreaker's engine): CONFIG_STORE_POOL and STORE_POOL are unknown
    commands, in the golden model and in the RTL alike, and change nothing."""
    config = dataclasses.replace(CONFIGS["4x4-bus32"], store_pool=False)
    rng = np.random.default_rng(SEED + 20)
    image, setup, mode = _setup(config, rng, 0, config.acc_depth * config.cols * 4)
    program = setup + [
        encode(Funct.CONFIG_REQUANT, out_zero=0, mode=mode, clamp_min=-128, clamp_max=127),
        encode(Funct.CONFIG_STORE_POOL, kernel_h=2, kernel_w=1, step=2, pitch=0),
        encode(Funct.STORE_POOL, dram_addr=2500, acc_row=0, rows=2, cols=config.cols),
        encode(Funct.STORE, dram_addr=2600, acc_row=0, rows=2, cols=config.cols),
        encode(Funct.STATUS, clear=1)]
    answers = _compare(config, image, program)
    status = unpack_status(answers[0])
    assert status["error_code"] == ErrorCode.BAD_FUNCT and status["error_count"] == 2
    mem, _ = run_golden(config, image, program)
    assert not mem[2500:2500 + 2 * config.cols].any(), "a refused STORE_POOL writes nothing"
    assert mem[2600:2600 + 2 * config.cols].any()


# -- The RTL -----------------------------------------------------------------------------------

def _compare(config, image, program):
    mem, answers, _ = run_rtl(config, image, program)
    want_mem, want_answers = run_golden(config, image, program)
    diff = np.argwhere(mem != want_mem)
    assert not diff.size, (f"{len(diff)} bytes differ; first at {int(diff[0][0])}: "
                           f"{mem[diff[0][0]]}, expected {want_mem[diff[0][0]]}")
    # A STATUS answers at once: its busy bit depends on the timing.
    assert [w & BUSY_MASK for w in answers] == [w & BUSY_MASK for w in want_answers], \
        [unpack_status(w) for w in answers]
    return want_answers


@pytest.mark.parametrize("name", list(CONFIGS))
def test_rtl_store_pool_matches_golden(name):
    config = CONFIGS[name]
    refused = stored = 0
    for seed in range(SEED, SEED + 3):
        image, program = random_pool_program(config, seed)
        answers = _compare(config, image, program)
        refused += unpack_status(answers[0])["error_count"]
        stored += sum(f == Funct.STORE_POOL for f, _, _ in program)
    assert refused and stored > 10, "the programs should hold pooled stores and refusals"


def test_rtl_pool_store_then_load_of_its_output_waits():
    """A LOAD of what a STORE_POOL writes, issued at once, reads the pooled bytes, and a
    COMPUTE overwriting the window's rows waits for the pooled store to read them."""
    config = CONFIGS["4x4-bus32"]
    rng = np.random.default_rng(SEED + 9)
    C = config.cols
    image, setup, mode = _setup(config, rng, 0, config.acc_depth * C * 4)
    a_addr = 3200
    image.append((a_addr, bytes(rng.integers(0, 256, 64, dtype=np.uint8))))
    program = setup + [
        encode(Funct.CONFIG_REQUANT, out_zero=0, mode=mode, clamp_min=-128, clamp_max=127),
        encode(Funct.CONFIG_STORE_POOL, kernel_h=2, kernel_w=2, step=2, pitch=4),
        encode(Funct.STORE_POOL, dram_addr=2500, acc_row=0, rows=2, cols=C),
        encode(Funct.CONFIG_EXEC, dataflow=1, a_signed=1, b_signed=1),
        encode(Funct.CONFIG_LOAD, stride=4),
        encode(Funct.LOAD, dram_addr=a_addr, local_row=0, space=Space.SPAD_A, rows=8, cols=4),
        encode(Funct.LOAD, dram_addr=a_addr, local_row=0, space=Space.SPAD_B, rows=4, cols=4),
        encode(Funct.COMPUTE, a_row=0, b_row=0, c_row=0, steps=8, k_valid=4),
        encode(Funct.CONFIG_LOAD, stride=C),
        encode(Funct.LOAD, dram_addr=2500, local_row=8, space=Space.SPAD_A, rows=2, cols=4),
        encode(Funct.COMPUTE, a_row=8, b_row=0, c_row=20, steps=2, k_valid=4),
        encode(Funct.CONFIG_STORE, stride=C * 4, qp_row=0),
        encode(Funct.STORE_ACC, dram_addr=2600, acc_row=0, rows=32, cols=C),
        encode(Funct.FENCE)]
    _compare(config, image, program)


def test_rtl_random_programs_with_pooled_stores_match_golden():
    """The shared random programs (every command, valid and refused, colliding in a few rows
    and bytes) with at least three pooled stores: the front end must hold back whatever
    overlaps the ACC rows a STORE_POOL's windows read, not only its first ``rows``."""
    config = CONFIGS["4x4-bus32"]
    seed = SEED
    while True:
        program = random_program(config, seed, length=50)
        model = EngineModel(config, np.frombuffer(program.image[0][1], np.uint8).copy())
        ran = 0
        for command in program.commands:
            before = model.error_count
            model.execute(*command)
            ran += command[0] == Funct.STORE_POOL and model.error_count == before
        if ran >= 3:
            break
        seed += 1
    mem, answers, _ = run_rtl(config, program.image, program.commands)
    result = dataclasses.make_dataclass("Result", ["memory", "responses"])(mem, answers)
    diff = check_program(program, result, config)
    assert diff is None, f"{program.label}: {diff}"
