"""``rvnpu bench models``: whole networks compiled and run on the simulated SoC, against the
roofline of its engine and bus.

The networks are those of :mod:`rvnpu.bench.model_zoo`: the digits demo's two classifiers and
the shapes of the four MLPerf Tiny reference networks, **with seeded random weights: these are
the architectures, not MLPerf results** (no trained model, no accuracy). Each is quantised by
onnxruntime (QDQ, per-channel int8 weights, int8 activations), compiled with
:func:`rvnpu.flows.model.compile_model`, run on one seeded input with
:func:`rvnpu.flows.model.run_model` and compared with onnxruntime bit for bit. A model the
compiler refuses gets its one-line reason and the run goes on; one that runs past
``max_cycles`` is reported as timed out.

Definitions (one inference):

- MACs: multiply-accumulates of the convolutions and matrix products
  (:func:`~rvnpu.bench.model_zoo.count_macs`).
- Bytes: what must cross the memory bus at least: every weight once (1 byte; a bias 4) and
  every int8 activation written once and read once by each layer that uses it, fused ReLUs
  and reshapes adding nothing (:func:`~rvnpu.bench.model_zoo.count_traffic`).
- Roofline bound, in cycles: ``max(MACs / (rows * cols), bytes / bus bytes a cycle)`` — the
  array doing a MAC in every cell every cycle, or the bus moving a full word every cycle,
  whichever takes longer. Efficiency is ``bound / cycles``; the cycles are the firmware's
  cycle count around the inference (layers and the core's work between them).
- Core share: the share of the cycles the control core was awake, ``1 - sleep / cycles``, once
  :class:`~rvnpu.flows.model.ChipResult` reports the cycles spent in WFI (``sleep_cycles``);
  until then it is "not measured".
- RAM: the smallest power of two holding the firmware image, ``.bss`` (weights, arena) and the
  stack, as the firmware build measures it from the ELF.
- Milliseconds: cycles at the ULX3S-85F's clock (its engine clock where the board has one).
- Simulation wall time: :func:`~rvnpu.flows.model.run_model` for the one input (simulator
  start, simulation, reading the output), the simulator's build excluded.
"""

import dataclasses
import functools
import json
import math
import platform
import time
from pathlib import Path

import numpy as np

from rvnpu.bench.model_zoo import MODELS, count_macs, count_traffic, quantised_model
from rvnpu.compiler.onnx.ir import ModelError
from rvnpu.gen.files import write_file


__all__ = ["ModelRecord", "BOARD", "NOT_MLPERF", "GOALS", "SIM_RAM_BYTES", "MAX_CYCLES",
           "bench_config", "board_clock_hz", "bench_models", "check_names", "format_table",
           "write_results", "plot_roofline"]

#: The board whose clock turns cycles into milliseconds.
BOARD = "ulx3s-85f"

#: Written beside every figure.
NOT_MLPERF = ("The networks have the MLPerf Tiny reference architectures with seeded random "
              "weights: these are not MLPerf results.")

#: Issue 14's goals (docs/bench.md lists them with the measured figures).
GOALS = {"digits_cnn_cycles": 5_900, "resnet8_efficiency": 0.60, "ds_cnn_efficiency": 0.35,
         "mobilenet_v1_025_efficiency": 0.35, "fc_autoencoder_efficiency": 0.70,
         "core_share": 0.05, "resnet8_sim_wall_s": 30.0}

#: RAM of the simulated SoC unless told otherwise: room for the largest network; what each
#: network needs is reported apart (:attr:`ModelRecord.ram_bytes`).
SIM_RAM_BYTES = 1 << 21

#: Cycle limit of one model's simulation unless told otherwise.
MAX_CYCLES = 50_000_000


@dataclasses.dataclass
class ModelRecord:
    """One network's figures; ``status`` is "ok", "mismatch", "refused", "timed out" or
    "failed", and ``reason`` says why when it did not run."""
    name: str
    title: str
    macs: int
    weight_bytes: int
    activation_bytes: int
    rows: int
    cols: int
    bus_bytes: int
    clock_hz: int
    status: str = "ok"
    reason: str = ""
    cycles: int | None = None
    layer_cycles: list | None = None
    bit_exact: bool | None = None
    sleep_cycles: int | None = None
    ram_bytes_used: int | None = None
    sim_wall_s: float | None = None

    @property
    def bytes(self):
        return self.weight_bytes + self.activation_bytes

    @property
    def compute_bound_cycles(self):
        return self.macs / (self.rows * self.cols)

    @property
    def bandwidth_bound_cycles(self):
        return self.bytes / self.bus_bytes

    @property
    def bound_cycles(self):
        return max(self.compute_bound_cycles, self.bandwidth_bound_cycles)

    @property
    def bound_by(self):
        return "compute" if self.compute_bound_cycles >= self.bandwidth_bound_cycles \
            else "bandwidth"

    @property
    def intensity(self):
        """Arithmetic intensity, MACs a byte."""
        return self.macs / self.bytes

    @property
    def macs_per_cycle(self):
        return self.macs / self.cycles if self.cycles else None

    @property
    def efficiency(self):
        return self.bound_cycles / self.cycles if self.cycles else None

    @property
    def core_share(self):
        if self.cycles and self.sleep_cycles is not None:
            return 1 - self.sleep_cycles / self.cycles
        return None

    @property
    def ram_bytes(self):
        """The smallest power-of-two RAM the firmware fits."""
        if self.ram_bytes_used is None:
            return None
        return 1 << max(10, math.ceil(math.log2(self.ram_bytes_used)))

    @property
    def ms(self):
        return 1e3 * self.cycles / self.clock_hz if self.cycles else None

    def to_dict(self):
        d = dataclasses.asdict(self)
        for name in ("bytes", "compute_bound_cycles", "bandwidth_bound_cycles", "bound_cycles",
                     "bound_by", "intensity", "macs_per_cycle", "efficiency", "core_share",
                     "ram_bytes", "ms"):
            d[name] = getattr(self, name)
        if d["core_share"] is None:
            d["core_share_note"] = "not measured: the run reports no cycles spent in WFI"
        return d


def bench_config(engine=None):
    """The simulated SoC: ``rvnpu run``'s default (its engine unless ``engine`` is given),
    with :data:`SIM_RAM_BYTES` of RAM unless ``engine`` sets it."""
    from rvnpu.flows.model import DEFAULT_SOC
    if engine is None:
        engine = dataclasses.replace(DEFAULT_SOC.engine, mem_bytes=SIM_RAM_BYTES)
    return dataclasses.replace(DEFAULT_SOC, engine=engine, ram_bytes=None)


def board_clock_hz(name=BOARD):
    """The board's engine clock if it has its own, else the SoC's."""
    from rvnpu.boards import board
    b = board(name)
    return getattr(b, "engine_clock_hz", None) or b.clock_hz


def check_names(names):
    """The names, each a network of the zoo; a :class:`ModelError` names the unknown ones."""
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise ModelError(f"unknown model{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(unknown)}; choose from {', '.join(MODELS)}")
    if not names:
        raise ModelError(f"no model named; choose from {', '.join(MODELS)}")
    return list(names)


def _one_line(error):
    """An error's first line, with the line after it when the first only announces it."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return " ".join(lines[:2]) if lines[0].endswith(":") and len(lines) > 1 else lines[0]


def _measure(record, int8_path, work_dir, config, seed, max_cycles, simulator, build):
    """Compile, run and compare one network, filling ``record``; ``build()`` builds the
    simulator first, so that the wall time measured is the simulation's alone."""
    from rvnpu.firmware.build import FirmwareError
    from rvnpu.flows.model import compile_model, ort_run, ort_session, run_model, same
    from rvnpu.sim.soc_sim import FirmwareHang
    try:
        compiled = compile_model(int8_path, work_dir / "firmware", config)
    except ModelError as error:
        record.status, record.reason = "refused", _one_line(error)
        return
    except FirmwareError as error:
        record.status, record.reason = "failed", f"firmware build: {_one_line(error)}"
        return
    record.ram_bytes_used = compiled.firmware.ram_bytes_used
    spec = MODELS[record.name]
    x = np.random.default_rng([seed, 2]).normal(size=spec.input_shape).astype(np.float32)
    build()
    start = time.perf_counter()
    try:
        result, = run_model(compiled, [x], simulator=simulator, max_cycles=max_cycles)
    except FirmwareHang:
        # The simulation reached max_cycles (the message says where it was).
        record.status, record.reason = "timed out", f"over {max_cycles} cycles"
        return
    except ModelError as error:
        record.status, record.reason = "failed", _one_line(error)
        return
    finally:
        record.sim_wall_s = time.perf_counter() - start
    record.cycles, record.layer_cycles = result.cycles, list(result.layer_cycles)
    record.sleep_cycles = getattr(result, "sleep_cycles", None)
    want = ort_run(ort_session(int8_path), compiled.model, x)
    record.bit_exact = same(result.output, want)
    if not record.bit_exact:
        record.status, record.reason = "mismatch", "the chip's output differs from onnxruntime's"


def bench_models(names, out_dir, *, seed=0, config=None, max_cycles=MAX_CYCLES,
                 clock_hz=None, progress=print):
    """Build, quantise, compile and run each named network; a :class:`ModelRecord` each.

    ``out_dir`` receives each network's float and int8 ONNX models and its firmware.
    """
    from rvnpu.sim.soc_sim import SocSimulator
    names = check_names(names)
    config = config or bench_config()
    clock_hz = clock_hz or board_clock_hz()
    simulator = SocSimulator(config)
    # A one-cycle run of an empty image builds the model (once), when a network first needs it.
    build = functools.cache(lambda: simulator.run(bytes(4), max_cycles=1))
    records = []
    for name in names:
        work_dir = Path(out_dir) / name
        float_path, int8_path = quantised_model(name, work_dir, seed)
        weight_bytes, activation_bytes = count_traffic(float_path)
        record = ModelRecord(
            name=name, title=MODELS[name].title, macs=count_macs(float_path),
            weight_bytes=weight_bytes, activation_bytes=activation_bytes,
            rows=config.engine.rows, cols=config.engine.cols,
            bus_bytes=config.engine.bus_bytes, clock_hz=clock_hz)
        progress(f"{name}: {record.macs} MACs, {record.bytes} bytes; compiling and simulating")
        _measure(record, int8_path, work_dir, config, seed, max_cycles, simulator, build)
        progress(f"{name}: {record.status}" + (f" ({record.reason})" if record.reason else "")
                 + (f", {record.cycles} cycles in {record.sim_wall_s:.1f} s"
                    if record.cycles else ""))
        records.append(record)
    return records


def _fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def format_table(records):
    """The records as text, the refusals below the table."""
    header = ("model", "MACs", "bytes", "cycles", "bound", "by", "eff.", "core", "RAM", "ms",
              "= ORT")
    rows = [header]
    for r in records:
        rows.append((
            r.name, str(r.macs), str(r.bytes), _fmt(r.cycles, "d", r.status),
            f"{r.bound_cycles:.0f}", r.bound_by, _fmt(r.efficiency, ".1%"),
            _fmt(r.core_share, ".1%", "n/m" if r.cycles else "-"),
            _fmt(r.ram_bytes and r.ram_bytes // 1024, "d") + ("K" if r.ram_bytes else ""),
            _fmt(r.ms, ".3f"), {True: "yes", False: "NO", None: "-"}[r.bit_exact]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in records:
        if r.status != "ok":
            lines.append(f"{r.name}: {r.status}: {r.reason}")
    if records:
        r = records[0]
        lines.append(
            f"bound = max(MACs / {r.rows * r.cols} ({r.rows}x{r.cols} array), bytes / "
            f"{r.bus_bytes} (bus bytes a cycle)); eff. = bound / cycles; core: share of the "
            f"cycles the core was awake (n/m: not measured); ms at {r.clock_hz / 1e6:g} MHz "
            f"({BOARD}); = ORT: bit-exact with onnxruntime")
    lines.append(NOT_MLPERF)
    return "\n".join(lines)


def write_results(records, path, config, *, seed):
    """The records and the conditions they were measured under, as JSON, atomically."""
    document = {
        "benchmark": "models",
        "note": NOT_MLPERF,
        "definitions": {
            "macs": "multiply-accumulates of the Conv, Gemm and MatMul nodes",
            "bytes": "int8 weights (int32 biases) read once, plus int8 activations written "
                     "once and read once by each layer using them; fused ReLUs and reshapes "
                     "add nothing",
            "bound_cycles": "max(macs / (rows * cols), bytes / bus_bytes)",
            "efficiency": "bound_cycles / cycles",
            "core_share": "1 - cycles the core spent in WFI / cycles (null: not measured)",
            "ram_bytes": "smallest power of two holding image, .bss and stack",
            "ms": f"cycles at the {BOARD}'s clock",
        },
        "goals": GOALS,
        "seed": seed,
        "soc_config": config.to_dict(),
        "host": platform.node(),
        "results": [r.to_dict() for r in records],
    }
    return write_file(path, json.dumps(document, indent=2) + "\n")


def plot_roofline(records, path):
    """The roofline as a PNG: each network that ran at (MACs a byte, MACs a cycle), under the
    array's and the bus's roofs."""
    import io
    try:
        from matplotlib.figure import Figure    # drawn without pyplot: no display, no state
    except ImportError:
        raise ModelError("the roofline plot needs matplotlib: pip install 'rvnpu[bench]'") \
            from None

    ran = [r for r in records if r.cycles]
    base = records[0]
    peak, bus = base.rows * base.cols, base.bus_bytes
    xs = [r.intensity for r in records]
    lo, hi = min(xs + [peak / bus]) / 4, max(xs + [peak / bus]) * 4
    fig = Figure(figsize=(7.5, 5), dpi=110)
    ax = fig.add_subplot()
    knee = peak / bus
    ax.loglog([lo, knee], [lo * bus, peak], color="tab:blue",
              label=f"bus: {bus} bytes/cycle")
    ax.loglog([knee, hi], [peak, peak], color="tab:red",
              label=f"array: {peak} MACs/cycle ({base.rows}x{base.cols})")
    for r in ran:
        ax.plot(r.intensity, r.macs_per_cycle, "o", color="black")
        ax.annotate(f"{r.name} ({r.efficiency:.0%})", (r.intensity, r.macs_per_cycle),
                    textcoords="offset points", xytext=(5, 4), fontsize=8)
    refused = [r.name for r in records if not r.cycles]
    ax.set_xlabel("arithmetic intensity (MACs / byte)")
    ax.set_ylabel("achieved MACs / cycle")
    ax.set_xlim(lo, hi)
    low = min([r.macs_per_cycle for r in ran] + [lo * bus])
    ax.set_ylim(low / 2, peak * 2)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("rvnpu bench models: random-weight architectures, not MLPerf results",
                 fontsize=9)
    if refused:
        fig.text(0.01, 0.01, "not run: " + ", ".join(refused), fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return write_file(path, buffer.getvalue())
