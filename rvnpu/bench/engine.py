"""``rvnpu bench engine``: cycles and array utilisation of square GEMMs on the engine's RTL.

Utilisation is ``M*N*K / (cycles * rows * cols)`` over the whole program: loads from main
memory, computes and requantising stores included, from the first command to the final FENCE.
Every result is also checked against the golden model, so a fast wrong answer cannot pass.
"""

import json
import platform
import time
from dataclasses import replace

from rvnpu.gen.files import write_file
from rvnpu.spec.config import EngineConfig
from rvnpu.sim.rtl import RtlEngine
from rvnpu.sim.workloads import random_gemm


__all__ = ["BenchMismatch", "bench_engine", "format_table", "write_results"]


class BenchMismatch(RuntimeError):
    """The RTL's result differs from the golden model's."""


def bench_engine(*, sizes=(16, 64, 128), arrays=(4, 8, 16), dataflows=("os", "ws"),
                 base=EngineConfig(), requant="tflite", simulator="verilator", seed=1,
                 build_root=None, progress=print):
    """Run every (array, dataflow, size) and return one record per run."""
    records = []
    for n in arrays:
        config = replace(base, rows=n, cols=n)
        available = [d for d in dataflows if (config.with_os if d == "os" else config.with_ws)]
        problems = [random_gemm(s, s, s, config=config, dataflow=d, requant=requant, seed=seed)
                    for d in available for s in sizes]
        progress(f"{n}x{n} array: {len(problems)} GEMMs on {simulator} "
                 f"(the first run of a configuration builds it)")
        engine = RtlEngine(config, simulator=simulator, build_root=build_root)
        start = time.perf_counter()
        results = engine.run_gemms([p.job for p in problems])
        wall = time.perf_counter() - start
        for problem, (got, result) in zip(problems, results):
            if not (got == problem.expected).all():
                raise BenchMismatch(
                    f"{n}x{n} {problem.dataflow} {problem.m}^3 (seed {seed}) differs from the "
                    f"golden model in {(got != problem.expected).sum()} elements")
            records.append({
                "rows": n, "cols": n, "dataflow": problem.dataflow, "m": problem.m,
                "n": problem.n, "k": problem.k, "requant": requant, "seed": seed,
                "cycles": result.cycles, "active_cycles": result.active_cycles,
                "utilisation": problem.macs / (result.cycles * n * n),
                "macs_per_cycle": problem.macs / result.cycles,
            })
        progress(f"  done in {wall:.1f} s")
    return records


def format_table(records):
    header = ("array", "flow", "GEMM", "cycles", "MAC/cycle", "utilisation")
    rows = [(f"{r['rows']}x{r['cols']}", r["dataflow"], f"{r['m']}x{r['n']}x{r['k']}",
             str(r["cycles"]), f"{r['macs_per_cycle']:.1f}", f"{100 * r['utilisation']:.1f}%")
            for r in records]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.rjust(w) if i >= 3 else v.ljust(w)
                      for i, (v, w) in enumerate(zip(row, widths))) for row in rows]
    return "\n".join(out)


def write_results(records, path, base):
    """Write the records with the conditions they were measured under, atomically."""
    document = {
        "benchmark": "engine",
        "definition": "utilisation = M*N*K / (cycles * rows * cols); cycles from the first "
                      "command to the final FENCE answer, DMA and requantised stores included",
        "base_config": base.to_dict(),
        "host": platform.node(),
        "results": records,
    }
    return write_file(path, json.dumps(document, indent=2) + "\n")
