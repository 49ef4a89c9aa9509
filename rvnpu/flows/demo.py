"""``rvnpu demo``: the default engine, built and run in simulation on a few requantised GEMMs.

The shapes are deliberately not multiples of the array, and each result is compared element
for element with the numpy golden model.
"""

import time

import numpy as np

from rvnpu.sim.rtl import RtlEngine
from rvnpu.sim.workloads import random_gemm


__all__ = ["run_demo", "DEMO_GEMMS"]

#: (M, N, K, dataflow, requantisation, ReLU)
DEMO_GEMMS = [
    (100, 72, 90, "ws", "tflite", True),
    (100, 72, 90, "os", "ort", False),
    (64, 64, 64, "ws", "tflite", False),
    (64, 64, 64, "os", "tflite", False),
]


def run_demo(config, *, simulator="verilator", build_root=None, out=print):
    """Run the demo GEMMs; return True when every result matched the golden model."""
    gemms = [g for g in DEMO_GEMMS if (config.with_os if g[3] == "os" else config.with_ws)]
    problems = [random_gemm(m, n, k, config=config, dataflow=d, requant=rq, relu=relu,
                            seed=seed)
                for seed, (m, n, k, d, rq, relu) in enumerate(gemms)]
    out(f"rvnpu demo: {config.rows}x{config.cols} int{config.in_width} systolic engine "
        f"({config.dataflow}), RTL on {simulator}")
    engine = RtlEngine(config, simulator=simulator, build_root=build_root)
    out("generating Verilog and building the simulator (cached after the first run)...")
    start = time.perf_counter()
    results = engine.run_gemms([p.job for p in problems])
    out(f"simulated in {time.perf_counter() - start:.1f} s\n")
    out(f"{'GEMM (MxNxK)':14} {'flow':4} {'requant':12} {'cycles':>7} {'util':>6}  golden model")
    ok = True
    for problem, (got, result), gemm in zip(problems, results, gemms):
        match = bool((got == problem.expected).all())
        ok &= match
        util = problem.macs / (result.cycles * config.rows * config.cols)
        requant = problem.requant + ("+relu" if gemm[5] else "")
        verdict = "bit-exact" if match else \
            f"MISMATCH in {(got != problem.expected).sum()} elements (seed {problem.seed})"
        shape = f"{problem.m}x{problem.n}x{problem.k}"
        out(f"{shape:14} {problem.dataflow:4} {requant:12} "
            f"{result.cycles:7d} {100 * util:5.1f}%  {verdict}")
    first = problems[0]
    got = results[0][0]
    with np.printoptions(linewidth=100):
        out(f"\nC[:4, :8] of the first GEMM:\n{got[:4, :8]}")
    out("\nall results match the golden model" if ok else "\nSOME RESULTS DIFFER")
    return ok
