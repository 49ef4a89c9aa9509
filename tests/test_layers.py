"""The layers stay put: import-linter checks the contracts in .importlinter.

grimp, which import-linter builds its graph with, reads a package from its folder, but here
rvnpu.hdl, rvnpu.sim, rvnpu.boards and rvnpu.firmware live in hdl/, sim/, boards/ and firmware/
(pyproject.toml's package-dir). So the sources are first laid out as the wheel lays them out,
and lint-imports reads that copy.
"""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[1]

#: lint-imports of this interpreter, wherever pip put its script (``pip install -e .[test]``
#: installs it).
LINT_IMPORTS = [sys.executable, "-c",
                "import sys; from importlinter.cli import lint_imports_command; "
                "sys.exit(lint_imports_command())"]


def _package_dirs():
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]["package-dir"]


def _lay_out_as_installed(root):
    """Copy every package's Python sources to where an installed wheel has them:
    ``hdl/engine/pe.py`` to ``root/rvnpu/hdl/engine/pe.py`` and so on."""
    for package, folder in _package_dirs().items():
        source, target = REPO / folder, root.joinpath(*package.split("."))
        for path in source.rglob("*.py"):
            copy = target / path.relative_to(source)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
    return root


def _lint_imports(root, config):
    """Run lint-imports on the package laid out in ``root``; returns (exit code, output)."""
    # A bare environment: only the laid-out copy is on the path, and no warning filter of the
    # caller's (PYTHONWARNINGS=error) turns a dependency's warning into a failure.
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run([*LINT_IMPORTS, "--no-cache", "--no-logo", str(config)], cwd=root,
                          env=env, capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    return _lay_out_as_installed(tmp_path_factory.mktemp("layers"))


def test_the_layout_holds_every_package(installed):
    for package in _package_dirs():
        assert installed.joinpath(*package.split("."), "__init__.py").is_file(), package


def test_contracts_are_kept(installed):
    code, output = _lint_imports(installed, REPO / ".importlinter")
    assert code == 0, f"an import breaks the layers in .importlinter:\n{output}"


def test_a_broken_contract_fails(installed, tmp_path):
    """The check can fail: the CLI does import the spec, so forbidding it must be reported."""
    config = tmp_path / "contracts.ini"
    config.write_text("[importlinter]\nroot_packages =\n    rvnpu\n\n"
                      "[importlinter:contract:bad]\nname = The CLI never reads the spec\n"
                      "type = forbidden\nsource_modules =\n    rvnpu.cli\n"
                      "forbidden_modules =\n    rvnpu.spec\n")
    code, output = _lint_imports(installed, config)
    assert code != 0, output
    assert "The CLI never reads the spec BROKEN" in output
    assert "rvnpu.cli" in output and "rvnpu.spec" in output


def test_amaranth_in_the_spec_breaks_its_contract(installed, tmp_path):
    """The real contracts catch a real mistake: the spec importing Amaranth."""
    root = tmp_path / "installed"
    shutil.copytree(installed, root)
    (root / "rvnpu" / "spec" / "widths.py").write_text("from amaranth import unsigned\n")
    code, output = _lint_imports(root, REPO / ".importlinter")
    assert code != 0, output
    assert "rvnpu.spec.widths -> amaranth" in output
