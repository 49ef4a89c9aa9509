"""Lab 3 autograder: the output-stationary path of the PE, and a dataflow choice, measured.

Correctness: output-stationary tiles (single, back to back without draining the array, with
accumulation, with int8 extremes and zero points) against the golden model, and the
weight-stationary path unchanged. Performance: for GEMM shapes drawn from the grading seed, the
project's schedule in each dataflow runs on the execute unit's RTL, and its loads and stores
are priced by the bus model of :func:`rvnpu.labs.benches.gemm_memory_cycles`; the cycles of
``choose_dataflow``'s picks over the cycles of the better dataflow is the lab's performance
metric (``cycle_ratio``), graded in tiers. Memory traffic counts: with the array alone,
output-stationary is never much slower and "always os" would reach the top tier.
"""

import pytest

from rvnpu.labs.benches import (check_computes, command, gemm_computes, gemm_memory_cycles,
                                random_spads, run_computes)
from rvnpu.spec.config import EngineConfig


CONFIG = EngineConfig(rows=4, cols=4, spad_depth=128, acc_depth=64, qp_depth=4,
                      mem_bytes=1 << 14)


def os_command(**fields):
    return command(CONFIG, dataflow=0, **fields)


def test_os_single_tile(rng, wave):
    spad_a, spad_b = random_spads(rng, CONFIG)
    check_computes(CONFIG, spad_a, spad_b, [os_command(steps=8)], wave=wave)


def test_os_reduction_not_a_multiple_of_rows(rng, wave):
    spad_a, spad_b = random_spads(rng, CONFIG)
    k = int(rng.integers(1, 4)) + 4 * int(rng.integers(1, 4))
    check_computes(CONFIG, spad_a, spad_b, [os_command(steps=k)], wave=wave)


def test_os_tiles_back_to_back(rng, wave):
    """Consecutive tiles follow each other into the array without draining it: each cell's
    sum must restart after its tile's last step while the previous results move down."""
    spad_a, spad_b = random_spads(rng, CONFIG)
    cmds = [os_command(steps=int(rng.integers(4, 12)), a_row=16 * i, b_row=16 * i,
                       c_row=4 * i) for i in range(4)]
    check_computes(CONFIG, spad_a, spad_b, cmds, wave=wave)


def test_os_accumulate_and_zero_points(rng, wave):
    spad_a, spad_b = random_spads(rng, CONFIG)
    za, zb = (int(z) for z in rng.integers(-128, 128, 2))
    cmds = [os_command(steps=8, a_zero=za, b_zero=zb),
            os_command(steps=5, a_row=32, b_row=40, accumulate=1, a_zero=za, b_zero=zb)]
    check_computes(CONFIG, spad_a, spad_b, cmds, wave=wave)


def test_os_gemm(rng, wave):
    spad_a, spad_b = random_spads(rng, CONFIG)
    m, n, k = (int(x) for x in rng.integers(3, 10, 3))
    check_computes(CONFIG, spad_a, spad_b, gemm_computes(CONFIG, m, n, k, "os"), wave=wave)


def test_ws_still_correct(rng, wave):
    spad_a, spad_b = random_spads(rng, CONFIG)
    m, n, k = (int(x) for x in rng.integers(3, 10, 3))
    check_computes(CONFIG, spad_a, spad_b, gemm_computes(CONFIG, m, n, k, "ws"), wave=wave)


def graded_shapes(rng):
    """GEMM shapes: batch-1 layers (M small), square-ish ones and long-K ones."""
    shapes = [(int(rng.integers(1, 4)), 4 * int(rng.integers(2, 5)), 4 * int(rng.integers(2, 6))),
              (int(rng.integers(12, 25)), int(rng.integers(4, 13)), int(rng.integers(2, 7))),
              (int(rng.integers(4, 9)), int(rng.integers(4, 9)), int(rng.integers(16, 33))),
              (int(rng.integers(2, 6)), int(rng.integers(8, 17)), int(rng.integers(8, 17))),
              (int(rng.integers(16, 33)), int(rng.integers(2, 6)), int(rng.integers(2, 5)))]
    return shapes


def test_dataflow_choice_performance(rng, record_metric):
    from dataflow_choice import choose_dataflow

    spad_a, spad_b = random_spads(rng, CONFIG)
    chosen = best = 0
    for m, n, k in graded_shapes(rng):
        pick = choose_dataflow(m, n, k, CONFIG.rows, CONFIG.cols)
        assert pick in ("os", "ws"), f"choose_dataflow({m}, {n}, {k}) returned {pick!r}"
        cycles = {d: run_computes(CONFIG, spad_a, spad_b,
                                  gemm_computes(CONFIG, m, n, k, d)).cycles
                  + gemm_memory_cycles(CONFIG, m, n, k, d) for d in ("os", "ws")}
        chosen += cycles[pick]
        best += min(cycles.values())
        print(f"M={m} N={n} K={k}: os {cycles['os']}, ws {cycles['ws']} cycles "
              f"(memory included); "
              f"you chose {pick}")
    record_metric("cycle_ratio", chosen / best)
