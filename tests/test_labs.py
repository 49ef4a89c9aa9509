"""The course labs: their holes, ``rvnpu lab``, and honest grading.

* Every hole marker in the project's sources is well formed, and every lab's files hold holes
  of that lab; the marker parser refuses malformed ones.
* For every lab, the reference solution (the project's own code) scores full, the starter
  scores less, and so does a copy with any single hole cut: each hole is caught. A check runs
  well within its time limit.
* ``rvnpu lab`` refuses bad input in one line, lists the labs and writes Gradescope's JSON.
"""

import json
import os
import time
import tomllib
from pathlib import Path

import pytest

from rvnpu.cli import main
from rvnpu.labs.catalog import PACKAGE_FOLDERS, LabError, find_lab, labs, source_path
from rvnpu.labs.grading import check_lab
from rvnpu.labs.holes import HoleError, cut_holes, find_holes
from rvnpu.labs.workspace import start_lab, student_files
from rvnpu.sim import toolchain


REPO = Path(__file__).resolve().parents[1]
#: The labs whose checks run the SoC in Verilator (lab 5's firmware, lab 6's model).
VERILATOR_LABS = {5, 6}
HAVE_VERILATOR = "verilator" in toolchain.available_simulators()
LABS = [n for n in labs() if HAVE_VERILATOR or n not in VERILATOR_LABS]
#: How long one check may take here; the labs promise 5 minutes on a 2-core machine (the
#: first check of a Verilator lab also builds the SoC's model, once).
CHECK_BUDGET_S = 120


@pytest.fixture(scope="module", autouse=True)
def shared_simulator_builds():
    """Lab checks build simulators where the other tests do, so a model is built once."""
    before = os.environ.get("RVNPU_SIM_BUILD")
    os.environ["RVNPU_SIM_BUILD"] = before or str(REPO / "build" / "sim")
    yield
    if before is None:
        del os.environ["RVNPU_SIM_BUILD"]


def marked_sources():
    """Every source file of the tree with a lab marker in it (rvnpu.labs only describes
    them)."""
    files = []
    for folder in ("hdl", "sim", "firmware", "boards", "rvnpu", "labs"):
        for path in (REPO / folder).rglob("*"):
            if (path.suffix in (".py", ".c", ".h", ".S") and "__pycache__" not in path.parts
                    and REPO / "rvnpu" / "labs" not in path.parents):
                if " lab " in path.read_text(errors="replace"):
                    files.append(path)
    return files


# -- Holes ---------------------------------------------------------------------------------------

def test_every_marker_is_well_formed_and_every_lab_has_its_holes():
    holes = {}
    for path in marked_sources():
        for hole in find_holes(path.read_text(), str(path)):
            holes.setdefault(hole.lab, []).append((path, hole))
    assert set(labs()) <= set(holes)
    assert set(holes) <= set(labs()), "holes of a lab that does not exist"
    for number in labs():
        lab = find_lab(number)
        for path, (source, _) in student_files(lab).items():
            _, cut = cut_holes(source.read_text(), number, path)
            assert cut, f"lab {number} lists {path} without a hole in it"
        for path, hole in holes[number]:
            assert hole.starter_lines, f"{path}: lab {number} hole {hole.title!r} has no starter"


def test_the_package_folders_are_pyprojects():
    dirs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"]
    assert {folder: package for package, folder in dirs.items()
            if package.count(".") <= 1} == PACKAGE_FOLDERS
    assert source_path("hdl/engine/pe.py") == REPO / "hdl" / "engine" / "pe.py"


SOURCE = """\
def f(x):
    # lab 7 hole begin: double it
    y = 2 * x
    # lab 7 starter:
    # y = x
    #
    # lab 7 hole end
    # lab 8 hole begin: no starter
    z = y
    # lab 8 hole end
    return z
"""


def test_cutting_replaces_the_reference_by_the_starter_and_keeps_other_labs():
    text, cut = cut_holes(SOURCE, 7)
    assert [h.title for h in cut] == ["double it"]
    assert text == ("def f(x):\n    # >>> lab 7: double it (your code here)\n    y = x\n\n"
                    "    # <<< lab 7\n    z = y\n    return z\n")
    reference, _ = cut_holes(SOURCE, 7, cut=lambda hole: False)
    assert reference == "def f(x):\n    y = 2 * x\n    z = y\n    return z\n"
    namespace = {}
    exec(reference, namespace)
    assert namespace["f"](3) == 6


@pytest.mark.parametrize("bad, message", [
    ("# lab 1 hole begin: a\nx\n", "never ends"),
    ("# lab 1 hole end\n", "without its 'hole begin'"),
    ("# lab 1 hole begin: a\n# lab 2 hole end\n", "without its 'hole begin'"),
    ("# lab 1 hole begin: a\n# lab 1 hole begin: b\n", "inside"),
    ("# lab 1 hole begin: a\n# lab 1 starter:\nx = 1\n# lab 1 hole end\n", "starter line"),
    ("#lab 1 hole begin a\n", "malformed"),
    ("    # lab 1 hole begin: a\n# lab 1 hole end\n", "same indentation"),
])
def test_malformed_markers_are_refused(bad, message):
    with pytest.raises(HoleError, match=message):
        find_holes(bad)


# -- Honest grading ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reference_reports(tmp_path_factory):
    reports = {}
    for number in LABS:
        folder = tmp_path_factory.mktemp("ref") / f"lab{number}"
        start_lab(number, folder, cut=lambda hole: False)
        start = time.monotonic()
        if number in VERILATOR_LABS:     # the first run may build the SoC: time the second
            check_lab(folder)
            start = time.monotonic()
        reports[number] = (check_lab(folder), time.monotonic() - start)
    return reports


@pytest.mark.parametrize("number", LABS)
def test_the_reference_solution_scores_full_in_time(reference_reports, number):
    report, seconds = reference_reports[number]
    assert report.full, "\n".join(f"{t.name}: {t.message}" for t in report.tests
                                  if not t.passed) or report.error
    assert seconds < CHECK_BUDGET_S
    assert report.tests and all(t.wave is None for t in report.tests)
    assert not list((report.folder / "waves").glob("*.vcd")), "waves of passing tests kept"


@pytest.mark.parametrize("number", LABS)
def test_the_starter_scores_less_and_leaves_waves(tmp_path, number):
    start_lab(number, tmp_path / "copy")
    report = check_lab(tmp_path / "copy")
    assert not report.error and report.score < report.max_score
    failed = [t for t in report.tests if not t.passed]
    assert failed and all(t.message for t in failed)
    for t in failed:
        if t.wave:
            assert Path(t.wave).is_file() and Path(t.wave).read_text().startswith("$")


def _lab_holes(number):
    lab = find_lab(number)
    return [(path, hole.title) for path, (source, _) in student_files(lab).items()
            for hole in cut_holes(source.read_text(), number)[1]]


@pytest.mark.parametrize("number, path, title",
                         [(n, p, t) for n in LABS for p, t in _lab_holes(n)])
def test_each_hole_alone_is_caught(tmp_path, number, path, title):
    start_lab(number, tmp_path / "copy", cut=lambda hole: hole.title == title)
    report = check_lab(tmp_path / "copy", first_failure=True)
    assert not report.full, f"lab {number}: cutting {title!r} in {path} loses no point"


def test_another_seed_draws_other_cases(tmp_path):
    folder = tmp_path / "copy"
    start_lab(1, folder, seed=5)
    report = check_lab(folder, seed=6)
    assert report.seed == 6
    assert json.loads((folder / ".rvnpu-lab.json").read_text())["seed"] == 5


# -- The command line ----------------------------------------------------------------------------

def test_list_names_every_lab(capsys):
    assert main(["lab", "list"]) == 0
    out = capsys.readouterr().out
    for lab in labs().values():
        assert lab.title in out and lab.name in out


@pytest.mark.parametrize("argv, message", [
    (["lab", "start", "99", "{tmp}/a"], "unknown lab '99'; the labs are 1, 2, 3, 4, 5, 6"),
    (["lab", "start", "one", "{tmp}/a"], "unknown lab 'one'"),
    (["lab", "start", "1", "{tmp}/full"], "exists and is not empty"),
    (["lab", "check", "{tmp}/full"], "is not a lab copy"),
    (["lab", "check", "{tmp}/nowhere"], "is not a folder"),
])
def test_bad_input_is_refused_in_one_line(tmp_path, capsys, argv, message):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_copy_in_a_folder_that_exists_but_is_empty(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["lab", "start", "2", str(tmp_path / "empty")]) == 0
    assert (tmp_path / "empty" / "hdl" / "engine" / "array.py").is_file()
    assert "rvnpu lab check" in capsys.readouterr().out


def test_check_prints_the_table_and_writes_gradescope_json(tmp_path, capsys):
    folder = tmp_path / "copy"
    start_lab(3, folder)
    # Only the dataflow choice is the reference's: the OS path of the PE is still a hole.
    choice = find_lab(3).folder / "dataflow_choice.py"
    (folder / "dataflow_choice.py").write_text(
        cut_holes(choice.read_text(), 3, cut=lambda hole: False)[0])
    out_file = tmp_path / "results.json"
    assert main(["lab", "check", str(folder), "--gradescope", str(out_file)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "tier A" in out and "surfer" in out and "-k test_os" in out
    results = json.loads(out_file.read_text())
    assert set(results) >= {"score", "tests"}
    for test in results["tests"]:
        assert set(test) == {"name", "score", "max_score", "output"}
        assert 0 <= test["score"] <= test["max_score"]
    assert results["score"] == sum(t["score"] for t in results["tests"])
    perf = [t for t in results["tests"] if t["name"].startswith("performance")]
    assert perf and perf[0]["score"] == perf[0]["max_score"] == 3
    failing = [t for t in results["tests"] if t["score"] == 0]
    assert failing and all("waveform: " in t["output"] for t in failing
                           if t["name"].startswith("test_os"))


def test_an_unknown_lab_number_is_a_lab_error():
    with pytest.raises(LabError):
        find_lab(0)
