"""The catalogue of the course: which labs there are, read from each lab's ``lab.toml``.

A lab is a folder ``labs/NN-name/`` (in the wheel, ``rvnpu/labs/course/NN-name/``) holding
``lab.toml``, the handout ``README.md``, the notes ``INSTRUCTOR.md`` and the autograder's tests
in ``autograder/``. ``labs/README.md`` explains the fields; this module only reads them.
"""

import dataclasses
import importlib.util
import math
import tomllib
from pathlib import Path


__all__ = ["LabError", "Lab", "Tier", "course_dir", "labs", "find_lab", "source_path",
           "module_name", "PACKAGE_FOLDERS"]

#: Top-level folders of the source tree and the packages they install as (pyproject.toml's
#: package-dir; tests/test_labs.py checks the two agree).
PACKAGE_FOLDERS = {"rvnpu": "rvnpu", "hdl": "rvnpu.hdl", "sim": "rvnpu.sim",
                   "boards": "rvnpu.boards", "firmware": "rvnpu.firmware"}


class LabError(ValueError):
    """A refused lab command: an unknown lab, a bad folder, a broken lab definition."""


@dataclasses.dataclass(frozen=True)
class Tier:
    """A performance tier: reached when the metric is at most ``at_most``."""
    name: str
    at_most: float
    points: float


@dataclasses.dataclass(frozen=True)
class Lab:
    """One lab, as its ``lab.toml`` defines it.

    ``files`` are source-tree paths of the project's files the student edits (their lab
    ``number`` holes are cut); ``lab_files`` are files of the lab folder itself, with holes
    marked the same way; ``tiers`` grade the performance ``metric`` an autograder test
    records (lower is better), best tier first.
    """
    number: int
    name: str
    title: str
    folder: Path
    files: tuple
    lab_files: tuple
    seed: int
    timeout: float
    minutes: int
    metric: str | None = None
    metric_label: str | None = None
    tiers: tuple = ()

    @property
    def autograder(self):
        return self.folder / "autograder"

    def tier_of(self, value):
        """The best tier ``value`` reaches, or None."""
        for tier in self.tiers:
            if value is not None and value <= tier.at_most:
                return tier
        return None

    @property
    def performance_points(self):
        return max((t.points for t in self.tiers), default=0)


def course_dir():
    """The folder holding the labs: in the wheel beside this module, in a checkout at the
    top of the tree."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "course", here.parents[1] / "labs"):
        if (candidate / "README.md").is_file():
            return candidate
    raise LabError("the course's labs are not installed (no labs folder next to rvnpu.labs)")


def _read(folder):
    where = folder / "lab.toml"
    try:
        spec = tomllib.loads(where.read_text())
        perf = spec.get("performance")
        tiers = tuple(Tier(t["name"], float(t.get("at_most", math.inf)), float(t["points"]))
                      for t in (perf or {}).get("tiers", ()))
        return Lab(number=int(spec["number"]), name=folder.name, title=spec["title"],
                   folder=folder, files=tuple(spec.get("files", ())),
                   lab_files=tuple(spec.get("lab_files", ())), seed=int(spec["seed"]),
                   timeout=float(spec.get("timeout", 300)), minutes=int(spec["minutes"]),
                   metric=perf and perf["metric"], metric_label=perf and perf.get("label"),
                   tiers=tiers)
    except (OSError, KeyError, TypeError, ValueError, tomllib.TOMLDecodeError) as error:
        raise LabError(f"{where}: not a lab definition ({error})") from None


def labs():
    """Every lab, by number."""
    found = [_read(p) for p in sorted(course_dir().iterdir()) if (p / "lab.toml").is_file()]
    return {lab.number: lab for lab in sorted(found, key=lambda lab: lab.number)}


def find_lab(number):
    """The lab numbered ``number`` (an int or its text)."""
    every = labs()
    try:
        return every[int(number)]
    except (KeyError, ValueError):
        raise LabError(f"unknown lab {number!r}; the labs are "
                       f"{', '.join(map(str, every))} (see `rvnpu lab list`)") from None


def _split(path):
    parts = Path(path).parts
    if len(parts) < 2 or parts[0] not in PACKAGE_FOLDERS:
        raise LabError(f"{path}: a lab file must lie in one of the package folders "
                       f"{', '.join(PACKAGE_FOLDERS)}")
    return PACKAGE_FOLDERS[parts[0]], Path(*parts[1:])


def source_path(path):
    """Where source-tree file ``path`` (``hdl/engine/pe.py``) is, in a checkout or installed."""
    package, rest = _split(path)
    spec = importlib.util.find_spec(package)
    return Path(list(spec.submodule_search_locations)[0]) / rest


def module_name(path):
    """The module a source-tree Python file is (``hdl/engine/pe.py`` -> ``rvnpu.hdl.engine.pe``),
    or None for another kind of file."""
    if Path(path).suffix != ".py":
        return None
    package, rest = _split(path)
    return ".".join([package, *rest.with_suffix("").parts])
