"""Array utilisation of convolutions compiled without im2col, on the golden model.

Two figures a convolution, both ``useful MACs / (rows * cols * cycles)``:

* *steps*: cycles are the COMPUTE steps (A rows streamed), the array's best case;
* *bound*: cycles are the busiest of the execute unit and the DMA, estimated from the program:
  a weight-stationary COMPUTE takes ``max(steps, 2 * rows)`` cycles (the next weight tile's
  preload starts ``rows`` cycles into a command and takes ``rows``, see
  ``hdl/engine/execute.py``); the DMA moves one bus word a cycle, a row taking the words its
  bytes span (``hdl/engine/load.py``), for loads and stores alike. The units overlap, so the
  real count is at least this; it is an estimate, not an RTL measurement.

The depthwise table compares the naive mapping (one channel an array pass: one column, one
input row a tap) with the packed one (``min(rows, cols)`` channels a pass on a diagonal weight
tile). Every program is checked against :func:`rvnpu.sim.golden.conv.conv2d`.
"""

from dataclasses import replace

import numpy as np

from rvnpu.spec.config import EngineConfig
from rvnpu.spec.commands import Funct, decode
from rvnpu.sim.golden.conv import conv2d
from rvnpu.sim.golden.gemm import Requant
from rvnpu.compiler.conv import (ConvSpec, FeatureMap, compile_conv, conv_constant_sizes,
                                 run_conv_on_model)


__all__ = ["BenchMismatch", "program_cycles", "measure_conv", "bench_depthwise",
           "bench_convs", "format_table"]


class BenchMismatch(RuntimeError):
    """A compiled convolution differs from the golden convolution."""


def program_cycles(commands, config):
    """``{"steps", "computes", "exec", "dma", "bound"}``: the cycle estimates above."""
    R, bus = config.rows, config.bus_bytes
    steps = computes = exec_cycles = dma = 0
    load_stride = store_stride = 0
    for funct, op1, op2 in commands:
        cmd, f = decode(funct, op1, op2)
        if cmd.funct == Funct.CONFIG_LOAD:
            load_stride = f["stride"]
        elif cmd.funct == Funct.CONFIG_STORE:
            store_stride = f["stride"]
        elif cmd.funct == Funct.COMPUTE and f["steps"]:
            steps += f["steps"]
            computes += 1
            exec_cycles += max(f["steps"], 2 * R)
        elif cmd.funct in (Funct.LOAD, Funct.STORE):
            width = f["cols"] * (config.elem_bytes if cmd.funct == Funct.STORE or f["space"] < 2
                                 else 4)
            stride = load_stride if cmd.funct == Funct.LOAD else store_stride
            starts = f["dram_addr"] + stride * np.arange(f["rows"])
            dma += int(((starts % bus + width + bus - 1) // bus).sum())
    return {"steps": steps, "computes": computes, "exec": exec_cycles, "dma": dma,
            "bound": max(exec_cycles, dma)}


def measure_conv(name, h, w, cin, cout, kernel=3, *, stride=1, pad=1, groups=1, pack=None,
                 config=EngineConfig(), seed=1):
    """Compile one random convolution, check it on the golden model, return its record."""
    rng = np.random.default_rng(seed)
    kh, kw = (kernel, kernel) if np.isscalar(kernel) else kernel
    weights = rng.integers(-128, 128, (kh, kw, cin // groups, cout))
    x = rng.integers(-128, 128, (h, w, cin))
    bias = rng.integers(-2000, 2000, cout)
    requant = Requant(mode="ort", scale=rng.uniform(0.002, 0.02, cout).astype(np.float32))
    spec = ConvSpec(weights, bias, requant, stride=stride, pad=pad, groups=groups,
                    in_zero=-3)
    oh, ow = spec.out_size(h, w)
    t, l, b, r = spec.pads
    eb = config.elem_bytes
    xm = FeatureMap(0, h + t + b, w + l + r, cin, h, w, cin, t, l)
    ym = FeatureMap(xm.nbytes(eb), oh, ow, cout, oh, ow, cout)
    sizes = conv_constant_sizes(spec, config, cin, pack)
    w_addr = ym.base + ym.nbytes(eb)
    program = compile_conv(spec, xm, ym, weights_addr=w_addr, qp_addr=w_addr + sizes["weights"],
                           config=config, pack=pack)
    got, _ = run_conv_on_model(program, xm, x, spec, ym, config)
    want = conv2d(x, weights, bias, requant, stride=stride, pad=pad, in_zero=-3, groups=groups)
    if not (got == want).all():
        raise BenchMismatch(f"{name} differs from the golden convolution in "
                            f"{(got != want).sum()} elements")
    cycles = program_cycles(program.commands, config)
    area = config.rows * config.cols
    return {"name": name, "array": f"{config.rows}x{config.cols}", "mapping": program.mapping,
            "macs": program.macs, "commands": len(program.commands), **cycles,
            "steps_util": program.macs / (area * cycles["steps"]),
            "bound_util": program.macs / (area * cycles["bound"])}


def _big_memory(config):
    return replace(config, mem_bytes=max(config.mem_bytes, 1 << 18))


def bench_depthwise(arrays=((8, 8), (4, 4), (3, 5)), shapes=((16, 16, 32), (14, 14, 64)),
                    seed=1):
    """Depthwise 3x3 convolutions (``h, w, channels``), naive against packed, on each array."""
    records = []
    for rows, cols in arrays:
        config = _big_memory(EngineConfig(rows=rows, cols=cols))
        for h, w, ch in shapes:
            for label, pack in (("naive", 1), ("diagonal", None)):
                records.append(measure_conv(f"dw {h}x{w}x{ch} {label}", h, w, ch, ch,
                                            groups=ch, pack=pack, config=config, seed=seed))
    return records


def bench_convs(config=EngineConfig(), seed=1):
    """The digits CNN's convolution (1x28x28 -> 8 channels, 3x3) and a ResNet-8 one (16
    channels, 32x32, 3x3)."""
    config = _big_memory(config)
    return [measure_conv("digits conv 28x28x1->8", 28, 28, 1, 8, config=config, seed=seed),
            measure_conv("resnet8 conv 32x32x16->16", 32, 32, 16, 16, config=config,
                         seed=seed)]


def format_table(records):
    header = ("convolution", "array", "computes", "steps", "bound cycles", "util (steps)",
              "util (bound)")
    rows = [(r["name"], r["array"], str(r["computes"]), str(r["steps"]), str(r["bound"]),
             f"{100 * r['steps_util']:.1f}%", f"{100 * r['bound_util']:.1f}%")
            for r in records]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) if i < 2 else v.rjust(w)
                      for i, (v, w) in enumerate(zip(row, widths))) for row in rows]
    return "\n".join(out)


if __name__ == "__main__":
    print(format_table(bench_convs() + bench_depthwise()))
