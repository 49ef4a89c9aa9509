"""The mutation tool (``rvnpu mutate``, :mod:`rvnpu.sim.mutation`): deterministic sampling, a
fault the tests must catch is caught, an equivalent change is not, a change that does not even
elaborate is reported as invalid, and the checkout is never written."""

import dataclasses
import hashlib

import pytest

from rvnpu.cli import main
from rvnpu.sim.mutation import (BLOCKS, EQUIVALENT, KINDS, MutationError, annotate,
                                format_table, generate, module_path, mutant_replacing,
                                mutants_of, run_mutant, snapshot, summarise)


REQUANT = "rvnpu.hdl.engine.requant"
#: The fast test that must catch a rounding fault in the ORT path: ties in both roundings.
TIES = dataclasses.replace(BLOCKS["requant"],
                           tests=("test_requant.py::test_lane_ort_rounding_ties",))


def test_generation_is_deterministic_and_mixes_kinds():
    first = generate("requant", seed=7, max_mutants=12)
    assert first == generate("requant", seed=7, max_mutants=12)
    assert first != generate("requant", seed=8, max_mutants=12)
    assert len(first) == 12 and len({m.ident for m in first}) == 12
    assert {m.kind for m in first} == set(KINDS)
    source = module_path(REQUANT).read_text()
    for mutant in first:
        changed = mutant.apply(source)
        assert changed != source and compile(changed, "mutant", "exec")


def test_sites_skip_error_checks_and_docstrings():
    for mutant in mutants_of("requant"):
        assert "raise" not in mutant.before and '"""' not in mutant.before
        assert "Error" not in mutant.before


def test_bad_requests_are_one_line_errors(capsys):
    with pytest.raises(MutationError, match="no block 'alu'"):
        generate("alu", seed=1, max_mutants=1)
    with pytest.raises(MutationError, match="must occur once"):
        mutant_replacing("requant", REQUANT, "Signal(", "Signal(")
    with pytest.raises(SystemExit) as exit_:
        main(["mutate", "--blocks", "pe,alu", "--list"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "no block 'alu'" in err and len(err.strip().splitlines()) == 1


def test_outcomes_and_the_checkout_is_untouched(tmp_path):
    path = module_path(REQUANT)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    snapshot(tmp_path)
    assert module_path(REQUANT, tmp_path).read_text() == path.read_text()
    # Round half up instead of half to even in float32 -> int32: the tie test catches it.
    rounding = mutant_replacing("requant", REQUANT, "fixed[24] & (fixed[:24].any() | ip[0])",
                                "fixed[24]", root=tmp_path)
    # The same constant written another way: no test can catch it.
    equivalent = mutant_replacing("requant", REQUANT, "xm3.eq(Mux(rounded[24], 1 << 23,",
                                  "xm3.eq(Mux(rounded[24], 0x80_0000,", root=tmp_path)
    # Not hardware at all: elaboration fails, which is no test's merit.
    broken = mutant_replacing("requant", REQUANT, "m.d.comb += norm.eq(mag << lz)",
                              "m.d.comb += norm.eq(mag << undefined_name)", root=tmp_path)
    outcomes = [run_mutant(TIES, m, workdir=tmp_path, timeout_s=300)
                for m in (rounding, equivalent, broken)]
    assert [o.status for o in outcomes] == ["killed", "survived", "invalid"], \
        [(o.status, o.detail) for o in outcomes]
    assert "test_lane_ort_rounding_ties" in outcomes[0].detail
    assert "NameError" in outcomes[2].detail and outcomes[2].tests_failed
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before

    summary = summarise([o.as_dict() for o in outcomes], ["requant"])
    assert summary["total"] == {"mutants": 3, "killed": 1, "survived": 1, "equivalent": 0,
                                "timeout": 0,
                                "invalid": 1, "error": 0, "score": 0.5}
    assert "50.0%" in format_table(summary).splitlines()[-1]


def test_listed_equivalent_survivors_leave_the_score():
    (module, line, before, after), = [k for k in EQUIVALENT if k[2] == "shift > 0"]
    rows = [{"block": "requant", "module": module, "line": line, "before": before,
             "after": after, "status": "survived", "detail": ""},
            {"block": "requant", "module": module, "line": line + 1, "before": before,
             "after": after, "status": "survived", "detail": ""},
            {"block": "requant", "module": module, "line": 1, "before": "a", "after": "b",
             "status": "killed", "detail": ""}]
    report = annotate({"blocks": {"requant": {}}, "mutants": rows})
    assert [r["status"] for r in rows] == ["equivalent", "survived", "killed"]
    assert report["summary"]["requant"]["score"] == 0.5


def test_every_listed_equivalent_mutant_is_where_it_says():
    """Each entry names a line that still holds the text it mutates; an edit that moves or
    removes the line leaves a stale entry, which would then excuse nothing (or the wrong
    mutant)."""
    for module, line, *rest in EQUIVALENT:
        before = rest[-2]
        assert before in module_path(module).read_text().splitlines()[line - 1], \
            (module, line, before)


def test_random_ort_test_catches_a_rounding_fault(tmp_path):
    """The random ORT lane test once sent its tie-rich vectors through constant clamps, so a
    rounding fault passed it; now it must catch one on its own."""
    snapshot(tmp_path)
    random_only = dataclasses.replace(BLOCKS["requant"],
                                      tests=("test_requant.py::test_lane_random[1-20-False]",))
    rounding = mutant_replacing("requant", REQUANT, "fixed[24] & (fixed[:24].any() | ip[0])",
                                "fixed[24]", root=tmp_path)
    outcome = run_mutant(random_only, rounding, workdir=tmp_path, timeout_s=300)
    assert outcome.status == "killed", outcome.detail


def test_runs_import_the_private_copy_not_the_checkout(tmp_path):
    """Edits to the checkout during a campaign must not reach it: the child imports every
    module from the copy :func:`snapshot` made. A fault planted in the copy of a module the
    block does not mutate (the golden model the tests compare with) shows in the run."""
    snapshot(tmp_path)
    golden = module_path("rvnpu.sim.golden.requant", tmp_path)
    assert golden.is_relative_to(tmp_path)
    golden.write_text(golden.read_text() + "\nraise ImportError('the private copy')\n")
    outcome = run_mutant(TIES, None, workdir=tmp_path, timeout_s=300)
    assert outcome.status == "error" and "the private copy" in outcome.detail, outcome


def test_mutants_are_drawn_from_the_private_copy(tmp_path):
    snapshot(tmp_path)
    copy = module_path(REQUANT, tmp_path)
    copy.write_text("\n" + copy.read_text())          # every line one further down
    original = mutants_of("requant")
    moved = mutants_of("requant", tmp_path)
    assert [(m.line + 1, m.before, m.after) for m in original] == \
        [(m.line, m.before, m.after) for m in moved]


def test_only_replays_the_named_mutants(capsys):
    wanted = generate("requant", seed=3, max_mutants=6)[2:4]
    ids = ",".join(m.ident for m in wanted)
    assert main(["mutate", "--blocks", "requant", "--only", ids, "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 2 and all(any(m.ident in line for line in listed) for m in wanted)
    with pytest.raises(SystemExit) as exit_:
        main(["mutate", "--blocks", "requant", "--only", "requant:1:0:nothing", "--list"])
    assert exit_.value.code == 2
    assert "--only: no mutant" in capsys.readouterr().err
