"""Lab 5 autograder: the student's firmware library, built with the project's build (zig cc)
and run on the whole SoC in Verilator (the path of ``rvnpu sim``).

The program is the shipped GEMM example (``firmware/examples/matmul.c``): it fills A and B from
a seeded generator, runs ``rvnpu_gemm`` (direct, then recorded and replayed), times it with the
SoC's timer and prints a checksum of C, which must equal the checksum of numpy's result for the
same operands (:func:`rvnpu.sim.golden.examples.matmul_example`). The shapes come from the
grading seed; the timed GEMM is 32x32x32, replayed from memory, graded in tiers against the
package's own firmware run on the same SoC (so the tiers hold whatever the hardware's timing).
"""

import re

import pytest


def run_matmul(lab_dir, tmp_path, m, n, k, seed):
    """Build matmul.c with the copy's firmware and run it; returns the UART text after checking
    the exit code and the checksum against numpy."""
    from rvnpu.labs.benches import firmware_tree, run_firmware_on_soc
    from rvnpu.sim.golden.examples import matmul_example, parse_checksum
    from rvnpu.spec.memory_map import SocConfig

    tree = firmware_tree(lab_dir, tmp_path / "tree")
    config = SocConfig()
    run = run_firmware_on_soc([tree / "examples" / "matmul.c"], tree, tmp_path / "build",
                              defines={"M": m, "N": n, "K": k, "SEED": seed}, config=config)
    text = run.uart.decode(errors="replace")
    assert not run.timed_out, (f"{m}x{n}x{k}: the firmware did not finish (pc {run.pc:#x}); "
                               f"output: {text[-300:]!r}")
    want = matmul_example(m, n, k, seed=seed, config=config.engine).checksum
    got = parse_checksum(text)
    assert got == want, (f"GEMM {m}x{n}x{k} (seed {seed}): checksum of C is "
                         f"{'missing' if got is None else f'{got:#010x}'}, numpy's is "
                         f"{want:#010x}; the firmware printed: {text.strip()[-400:]!r}")
    assert run.exit_code == 0, (f"GEMM {m}x{n}x{k}: exit code {run.exit_code} (the recorded "
                                f"run disagreed or the engine reported an error): {text!r}")
    return text


def test_gemm_ragged_shapes(lab_dir, tmp_path, rng):
    """Several K chunks and N tiles, none of them full: the custom-0 instructions must reach
    the engine, and the reduction must accumulate."""
    m, n, k = int(rng.integers(5, 24)), int(rng.integers(9, 30)), int(rng.integers(17, 40))
    run_matmul(lab_dir, tmp_path, m, n, k, int(rng.integers(1, 1 << 16)))


def replayed_cycles(text):
    found = re.search(r"replayed: cycles (\d+)", text)
    assert found, f"no 'replayed: cycles' line in the output: {text!r}"
    return int(found.group(1))


def test_gemm_cycles(lab_dir, tmp_path, rng, record_metric):
    """The 32x32x32 GEMM's cycles, replayed from memory (so that the engine, not the core's
    encoding, is timed), against the package's own firmware on the same SoC."""
    seed = int(rng.integers(1, 1 << 16))
    yours = replayed_cycles(run_matmul(lab_dir, tmp_path / "yours", 32, 32, 32, seed))
    package = replayed_cycles(run_matmul(None, tmp_path / "package", 32, 32, 32, seed))
    print(f"32x32x32 replayed: yours {yours} cycles, the package's {package}")
    record_metric("cycle_ratio", yours / package)
