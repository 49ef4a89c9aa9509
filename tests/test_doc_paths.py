"""Every file or folder of this repository that the README and docs/ name exists.

The tree was reorganised once and the docs kept naming the old places; this keeps them honest.
"""

import re
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[1]

_TOP = ("rvnpu", "hdl", "sim", "firmware", "boards", "tests", "docs")
#: A path in backquotes or a Markdown link that starts at one of the top-level folders.
_PATH = re.compile(r"[`(]((?:%s)/[\w./<>-]*)[`)]" % "|".join(_TOP))


def _named_paths(text):
    for match in _PATH.finditer(text):
        path = match.group(1)
        if "<" in path or "*" in path:          # a pattern such as boards/<board>.py
            continue
        yield path.rstrip(".")


def _documents():
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("document", _documents(), ids=lambda p: p.name)
def test_named_paths_exist(document):
    text = document.read_text()
    missing = sorted({p for p in _named_paths(text)
                      if not (REPO / p).exists() and not (document.parent / p).exists()})
    assert not missing, f"{document.name} names paths that do not exist: {', '.join(missing)}"


def test_the_check_finds_a_stale_path():
    assert list(_named_paths("see `hdl/isa.py` and [x](docs/engine.md)")) == \
        ["hdl/isa.py", "docs/engine.md"]
    assert not (REPO / "hdl/isa.py").exists()
