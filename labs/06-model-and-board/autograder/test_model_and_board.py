"""Lab 6 autograder: a model on the chip, and a board build's report read.

* ``run_on_chip``: a small MLP with weights drawn from the grading seed, quantised by
  onnxruntime's ``quantize_static``, runs on the SoC in Verilator (the path of ``rvnpu run``);
  its output must equal onnxruntime's bit for bit, and its cycles the cycles the project's
  flow (:mod:`rvnpu.flows.model`) measures for the same input.
* ``critical_path`` (the project's ``boards/report.py``) and ``utilisation``: on the real
  nextpnr reports beside this file (``ulx3s-2x2.json``, ``ulx3s-3x3.json``: the ULX3S's ECP5
  with a 2x2 and a 3x3 array; ``icebreaker-1x1.json``: the iCEBreaker's iCE40 UP5K) and on
  reports varied by the seed, against the project's own report reader, loaded from the
  installed package under another name.
* ``largest_square_array``: from the two ULX3S reports, for devices drawn from the seed,
  against this file's own count.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest


REPORTS = Path(__file__).resolve().parent
REPORT_FILES = ["ulx3s-2x2.json", "ulx3s-3x3.json", "icebreaker-1x1.json"]
#: The arrays of the two ULX3S builds.
SMALL_MACS, LARGE_MACS = 4, 9
#: The project's table rows, as ``utilisation`` names them.
RESOURCE_OF_ROW = {"LUTs / logic cells": "logic", "FFs": "flip-flops", "DSPs": "multipliers",
                   "block RAMs": "block RAMs"}


def load_report(name):
    return json.loads((REPORTS / name).read_text())


def project_report_module():
    """The installed ``boards/report.py`` (the reference), not the student's copy of it."""
    from rvnpu.labs.catalog import source_path

    spec = importlib.util.spec_from_file_location("lab6_project_report",
                                                  source_path("boards/report.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def project_utilisation(report):
    """What ``utilisation`` must return, from the project's ``parse_report``."""
    from types import SimpleNamespace

    board = SimpleNamespace(name="board", platform=SimpleNamespace(device="device"))
    engine = SimpleNamespace(rows=1, cols=1, to_dict=dict)
    table = project_report_module().parse_report(report, board=board, engine=engine,
                                                 clock_hz=25e6)
    return {RESOURCE_OF_ROW[label]: (r["used"], r["available"])
            for label, r in table["resources"].items() if label in RESOURCE_OF_ROW}


# -- A model on the chip ------------------------------------------------------------------------

def tiny_mlp(rng, folder):
    """A 64-16-10 MLP (Gemm, Relu, Gemm) with seeded weights, quantised by onnxruntime."""
    from rvnpu.flows.digits import quantise, save_mlp

    folder.mkdir(parents=True, exist_ok=True)
    w0 = (rng.normal(size=(64, 16)) / 8).astype(np.float32)
    b0 = (rng.normal(size=16) / 4).astype(np.float32)
    w1 = (rng.normal(size=(16, 10)) / 4).astype(np.float32)
    b1 = (rng.normal(size=10) / 4).astype(np.float32)
    save_mlp(w0, b0, w1, b1, folder / "float.onnx")
    calibration = rng.uniform(0, 1, (16, 64)).astype(np.float32)
    return quantise(folder / "float.onnx", folder / "int8.onnx", calibration, [1, 64])


def onnxruntime_output(path, x):
    from rvnpu.flows.model import ort_session

    session = ort_session(path)
    return session.run(None, {session.get_inputs()[0].name: x.reshape(1, 64)})[0]


def test_the_model_runs_bit_exact_with_onnxruntime(rng, tmp_path):
    from model_and_board import run_on_chip

    path = tiny_mlp(rng, tmp_path / "model")
    x = rng.uniform(0, 1, (1, 64)).astype(np.float32)
    output, _ = run_on_chip(path, x, tmp_path / "build")
    want = onnxruntime_output(path, x)
    got = np.asarray(output)
    assert got.shape == want.shape and got.dtype == want.dtype, (
        f"the output is {got.dtype}{list(got.shape)}, onnxruntime's {want.dtype}"
        f"{list(want.shape)}: return the float output of the chip's result")
    assert got.tobytes() == want.tobytes(), (
        f"the chip's output {got.ravel().tolist()} is not onnxruntime's "
        f"{want.ravel().tolist()} (bit for bit)")


def test_the_cycles_are_the_chips(rng, tmp_path):
    from model_and_board import run_on_chip
    from rvnpu.flows.model import compile_model, run_model

    path = tiny_mlp(rng, tmp_path / "model")
    x = rng.uniform(0, 1, (1, 64)).astype(np.float32)
    _, cycles = run_on_chip(path, x, tmp_path / "yours")
    want = run_model(compile_model(path, tmp_path / "project"), [x])[0].cycles
    assert cycles == want, (f"{cycles!r} cycles; the project's flow measures {want} core "
                            f"cycles for this inference (ChipResult.cycles)")


# -- The critical path --------------------------------------------------------------------------

@pytest.mark.parametrize("name", REPORT_FILES)
def test_critical_path_of_a_build(name):
    from rvnpu.boards.report import critical_path

    report = load_report(name)
    want = project_report_module().critical_path(report)
    got = critical_path(report)
    assert got == want, f"{name}: the critical path is {want}, not {got}"


def test_critical_path_when_another_path_is_worst(rng):
    """The same paths in another order, an I/O path first: the first register-to-register
    one is the worst."""
    from rvnpu.boards.report import critical_path

    report = load_report(REPORT_FILES[int(rng.integers(len(REPORT_FILES)))])
    paths = report["critical_paths"]
    io_paths = [i for i, p in enumerate(paths) if "<async>" in (p["from"], p["to"])]
    shift = int(rng.choice(io_paths))
    report["critical_paths"] = paths[shift:] + paths[:shift]
    want = project_report_module().critical_path(report)
    got = critical_path(report)
    assert got == want, (f"with the paths rotated by {shift} (first is "
                         f"{report['critical_paths'][0]['from']} -> "
                         f"{report['critical_paths'][0]['to']}): the critical path is {want}, "
                         f"not {got}")


# -- Utilisation --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", REPORT_FILES)
def test_utilisation_of_a_build(name):
    from model_and_board import utilisation

    report = load_report(name)
    want = project_utilisation(report)
    got = utilisation(report)
    assert got == want, f"{name}: the utilisation is {want}, not {got}"


def test_utilisation_of_another_build(rng):
    """A report with other counts: every cell type used anywhere from none to all."""
    from model_and_board import utilisation

    report = load_report(REPORT_FILES[int(rng.integers(len(REPORT_FILES)))])
    for cell in report["utilization"].values():
        cell["available"] = int(rng.integers(1, 100_000))
        cell["used"] = int(rng.integers(0, cell["available"] + 1))
    want = project_utilisation(report)
    got = utilisation(report)
    assert got == want, f"the utilisation is {want}, not {got}"


# -- Fitting a bigger array ---------------------------------------------------------------------

def largest_square(small, large, available):
    """The grader's own count: integers only, largest n first."""
    for n in range(32, 0, -1):
        if all(small[r][0] * (LARGE_MACS - SMALL_MACS)
               + (large[r][0] - small[r][0]) * (n * n - SMALL_MACS)
               <= cells * (LARGE_MACS - SMALL_MACS) for r, cells in available.items()):
            return n
    return 0


def fit_cases(rng, small, large):
    """Devices: larger and smaller than the ULX3S's, one filled to the last cell by some array,
    one not even holding the small build."""
    cases = []
    for _ in range(4):
        scale = float(rng.uniform(0.8, 6.0))
        cases.append({r: int(small[r][1] * scale) for r in ("logic", "multipliers",
                                                             "block RAMs")})
    n = int(rng.integers(6, 12))
    exact = {r: small[r][0] + (large[r][0] - small[r][0]) * (n * n - SMALL_MACS)
             // (LARGE_MACS - SMALL_MACS) for r in ("logic", "multipliers")}
    cases.append(exact)
    cases.append({"logic": small["logic"][0] - 1})
    return cases


def test_the_largest_array_that_fits(rng):
    from model_and_board import largest_square_array

    small = project_utilisation(load_report("ulx3s-2x2.json"))
    large = project_utilisation(load_report("ulx3s-3x3.json"))
    for available in fit_cases(rng, small, large):
        want = largest_square(small, large, available)
        got = largest_square_array(small, large, SMALL_MACS, LARGE_MACS, available)
        assert got == want, (f"on a device with {available}: {want} x {want} fits (from the "
                             f"2x2 build {small} and the 3x3 build {large}), not {got} x {got}")
