"""A student's working copy of a lab (``rvnpu lab start N DIR``).

The copy holds the files the student edits, with the lab's holes cut, at their source-tree
paths (``hdl/engine/pe.py``), the handout, the autograder's tests and a manifest. The
autograder imports the student's modules in place of the installed package's
(:mod:`rvnpu.labs.plugin`); everything else comes from the installed rvnpu.
"""

import json
import shutil
from pathlib import Path

from rvnpu.labs.catalog import LabError, find_lab, module_name, source_path
from rvnpu.labs.holes import cut_holes


__all__ = ["MANIFEST", "start_lab", "read_manifest", "student_files"]

#: The manifest that makes a folder a lab copy.
MANIFEST = ".rvnpu-lab.json"

_PYTEST_INI = """\
# Makes this folder pytest's root, so that no configuration above it applies.
[pytest]
addopts = -p no:cacheprovider
"""


def student_files(lab):
    """``{path in the copy: (source file, module name or None)}`` of every file the student
    edits: the project's files, then the lab folder's own."""
    files = {path: (source_path(path), module_name(path)) for path in lab.files}
    for name in lab.lab_files:
        path = Path(name)
        files[name] = (lab.folder / path,
                       ".".join(path.with_suffix("").parts) if path.suffix == ".py" else None)
    return files


def start_lab(number, dest, *, seed=None, cut=None):
    """Write lab ``number``'s working copy into ``dest`` (absent or empty); returns the lab.
    ``cut(hole)`` picks the holes to cut (default all; ``lambda hole: False`` writes the
    reference solution, for instructors and for the tests that the autograder passes it)."""
    lab = find_lab(number)
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise LabError(f"{dest} exists and is not empty; pick a new folder for the lab copy")
    texts = {}
    for path, (source, _) in student_files(lab).items():
        text, holes = cut_holes(source.read_text(), lab.number, str(source), cut=cut)
        if not holes:
            raise LabError(f"lab {lab.number} lists {path} but it has no lab {lab.number} hole")
        texts[path] = text
    dest.mkdir(parents=True, exist_ok=True)
    for path, text in texts.items():
        (dest / path).parent.mkdir(parents=True, exist_ok=True)
        (dest / path).write_text(text)
    shutil.copy2(lab.folder / "README.md", dest / "README.md")
    shutil.copytree(lab.autograder, dest / "autograder",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (dest / "pytest.ini").write_text(_PYTEST_INI)
    manifest = {"lab": lab.number, "name": lab.name, "seed": lab.seed if seed is None else seed,
                "modules": {mod: path for path, (_, mod) in student_files(lab).items() if mod}}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return lab


def read_manifest(folder):
    """A lab copy's manifest, refusing a folder that is not one."""
    path = Path(folder) / MANIFEST
    if not Path(folder).is_dir():
        raise LabError(f"{folder} is not a folder")
    try:
        manifest = json.loads(path.read_text())
        int(manifest["lab"]), dict(manifest["modules"])
    except FileNotFoundError:
        raise LabError(f"{folder} is not a lab copy (no {MANIFEST}); make one with "
                       "`rvnpu lab start N DIR`") from None
    except (ValueError, KeyError, TypeError) as error:
        raise LabError(f"{path} is damaged ({error}); start a new copy") from None
    return manifest
