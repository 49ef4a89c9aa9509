"""The mark of test cases that only ``RVNPU_LONG=1`` runs.

The test suite must finish in CI's 30 minutes on 2 cores, so where several seeds or engine
configurations of one random-program test take a minute or two each, CI runs one or two and the
others wait for a long run. Those CI keeps are also the ones ``rvnpu mutate`` relies on.
"""

import os

import pytest


__all__ = ["LONG", "long_case"]


LONG = pytest.mark.skipif(os.environ.get("RVNPU_LONG") != "1",
                          reason="long: set RVNPU_LONG=1 to run every configuration")


def long_case(*values, id=None):
    """A ``pytest.param`` of ``values`` run only with ``RVNPU_LONG=1``."""
    return pytest.param(*values, id=id, marks=LONG)
