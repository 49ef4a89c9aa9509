"""Formal checks (rvnpu/formal): a bounded subset proves, and every mutant fails.

The full set at the CLI's depths is ``rvnpu formal`` (docs/verification.md); here each proof
runs at its shallower ``test_depth``, and the slow core groups only as mutants, whose failure
the solver finds quickly.
"""

import pytest

from rvnpu.formal.checks import CHECKS, check_named
from rvnpu.formal.mutants import MutationError, mutant
from rvnpu.formal.sby import prove


#: Proved (asserts and covers) in the test suite; the other core groups run in `rvnpu formal`.
PROVED = ("command_slice", "load_requests", "store_requests", "sram", "core_alu",
          "frontend_hazards", "frontend_refusal", "frontend_order", "frontend_window",
          "frontend_serial", "range_ring", "frontend_lists", "frontend_list_refusal",
          "frontend_post")


@pytest.mark.parametrize("name", PROVED)
def test_properties_hold_and_are_reached(name):
    check = check_named(name)
    outcome = prove(name, check.build(), check.test_depth)
    assert outcome.passed, outcome


@pytest.mark.parametrize("name", [check.name for check in CHECKS])
def test_a_broken_block_fails_its_proof(name):
    check = check_named(name)
    outcome = prove(name, check.build(broken=True), check.test_depth)
    assert not outcome.proved, outcome
    assert outcome.detail.startswith("assert "), outcome


def test_a_mutant_of_a_missing_line_is_refused():
    with pytest.raises(MutationError, match="expected the line"):
        mutant("rvnpu.hdl.engine.command_slice", "CommandSlice", "no such line", "x")


def test_an_unknown_property_set_is_refused():
    with pytest.raises(ValueError, match="no formal property set"):
        check_named("nonsense")


def test_the_front_end_harness_refuses_engines_it_does_not_model():
    from dataclasses import replace
    from rvnpu.formal.frontend import FRONTEND_ENGINE, frontend_harness
    with pytest.raises(ValueError, match="without command_fetch and post_unit"):
        frontend_harness(config=replace(FRONTEND_ENGINE, post_unit=True))


def test_the_list_and_post_harnesses_refuse_engines_they_do_not_model():
    from rvnpu.formal.command_lists import list_harness
    from rvnpu.formal.frontend import FRONTEND_ENGINE
    from rvnpu.formal.post_barrier import post_harness
    with pytest.raises(ValueError, match="with command_fetch and without post_unit"):
        list_harness(config=FRONTEND_ENGINE)
    with pytest.raises(ValueError, match="with post_unit"):
        post_harness(config=FRONTEND_ENGINE)
