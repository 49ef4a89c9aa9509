"""What ``pip install rvnpu`` gives a user, checked as a user gets it.

* pyproject.toml names every package in the tree, and its package-data globs take every file
  that is not Python (the firmware's C sources, start-up code and linker script), so nothing a
  command needs is left out of the wheel.
* A shipped example is found by name, and the list of examples describes each in a line.
* The wheel holds exactly the tree's packages and firmware; installed (not editable) into a
  fresh venv it runs, from an empty directory, a shipped example on the SoC and a small ONNX
  model, bit-exact with onnxruntime, without writing into its own (maybe read-only) folder.
"""

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rvnpu.firmware.build import (EXAMPLES, FIRMWARE_DIR, FirmwareError, describe_examples,
                                  find_example)
from rvnpu.sim import toolchain


REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
PACKAGES = SETUPTOOLS["packages"]
PACKAGE_DIRS = SETUPTOOLS["package-dir"]
PACKAGE_DATA = SETUPTOOLS["package-data"]


def package_folder(package, tree=REPO):
    """The folder of ``package`` in a source tree, following ``package-dir``."""
    parts = package.split(".")
    for n in range(len(parts), 0, -1):
        root = ".".join(parts[:n])
        if root in PACKAGE_DIRS:
            return tree / PACKAGE_DIRS[root] / Path(*parts[n:])
    return tree / Path(*parts)


def installed_name(path, tree=REPO):
    """Where a file of a source tree lands in the wheel (``hdl/bus.py`` ->
    ``rvnpu/hdl/bus.py``)."""
    rel = Path(path).relative_to(tree)
    for package, folder in sorted(PACKAGE_DIRS.items(), key=lambda item: -len(item[1])):
        if rel.parts[:len(Path(folder).parts)] == Path(folder).parts:
            inner = rel.relative_to(folder)
            return Path(*package.split("."), inner).as_posix()
    raise ValueError(f"{rel} is in no package folder")


def source_files():
    """The files of the package folders, as git sees them (tracked, or new and not ignored)
    when this is a checkout, so that build products and editor files do not count."""
    folders = sorted(set(PACKAGE_DIRS.values()))
    if (REPO / ".git").exists() and shutil.which("git"):
        done = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                               "--exclude-standard", "--", *folders],
                              cwd=REPO, capture_output=True, text=True, check=True)
        files = [REPO / name for name in done.stdout.split("\0") if name]
    else:
        files = [p for folder in folders for p in (REPO / folder).rglob("*")]
    return sorted(p for p in files
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


def package_data_files(tree=REPO):
    """The files pyproject's package-data globs take (setuptools expands them with glob)."""
    taken = set()
    for package in PACKAGES:
        for pattern in [*PACKAGE_DATA.get(package, ()), *PACKAGE_DATA.get("*", ())]:
            taken.update(p for p in package_folder(package, tree).glob(pattern) if p.is_file())
    return taken


# -- pyproject.toml ------------------------------------------------------------------------------

def test_the_package_list_names_every_package_in_the_tree():
    in_tree = set()
    for package, folder in PACKAGE_DIRS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            if "__pycache__" not in rel.parts:
                in_tree.add(".".join([package, *rel.parts]))
    assert len(PACKAGES) == len(set(PACKAGES)), "a package is listed twice"
    assert sorted(in_tree - set(PACKAGES)) == [], "packages missing from pyproject.toml"
    assert sorted(set(PACKAGES) - in_tree) == [], "listed packages with no __init__.py"
    # Every top-level folder the package is made of.
    assert {"rvnpu", "rvnpu.hdl", "rvnpu.sim", "rvnpu.boards", "rvnpu.firmware"} <= in_tree


def test_package_data_takes_every_file_that_is_not_python():
    others = {p for p in source_files() if p.suffix != ".py"}
    missing = sorted(p.relative_to(REPO).as_posix() for p in others - package_data_files())
    assert missing == [], "files no package-data glob in pyproject.toml takes"
    firmware = {p.relative_to(FIRMWARE_DIR).as_posix() for p in package_data_files()
                if FIRMWARE_DIR in p.parents}
    assert {"crt0.S", "link.ld", "include/rvnpu.h", "lib/uart.c", "examples/hello.c",
            "examples/example_data.h"} <= firmware


# -- Named examples ------------------------------------------------------------------------------

def test_an_example_is_found_by_name():
    assert find_example("hello") == FIRMWARE_DIR / "examples" / "hello.c"
    for name, path in EXAMPLES.items():
        assert find_example(name) == path and path.is_file()
    assert {"hello", "selftest", "matmul", "conv", "board_demo"} <= set(EXAMPLES)


@pytest.mark.parametrize("name", ["nope", "hello.c", "", "examples/hello"])
def test_an_unknown_example_names_the_shipped_ones(name):
    with pytest.raises(FirmwareError) as error:
        find_example(name)
    assert str(error.value) == (f"unknown example '{name}'; the shipped examples are: "
                                f"{', '.join(sorted(EXAMPLES))}")


def test_every_example_is_described_in_a_line():
    descriptions = describe_examples()
    assert list(descriptions) == list(EXAMPLES)
    for name, text in descriptions.items():
        assert text and "\n" not in text and len(text) <= 90, (name, text)
        assert text.endswith(".") and not text.startswith(("/*", "*")), (name, text)
    assert descriptions["hello"] == ("The smallest program: greet over the UART, describe the "
                                     "chip, ask the engine how it is.")


def test_a_description_is_the_first_line_of_the_leading_comment(tmp_path, monkeypatch):
    from rvnpu.firmware import build
    sources = {
        "block": "/*\n *\n * First line.\n *\n * More.\n */\nint x;\n",
        "one_line": "\n/* Just this. */\n#include <x.h>\n",
        "none": "#include <x.h>\n/* Not leading. */\n",
        "line_comment": "// Not a block comment.\n",
    }
    for name, text in sources.items():
        (tmp_path / f"{name}.c").write_text(text)
    monkeypatch.setattr(build, "EXAMPLES", {n: tmp_path / f"{n}.c" for n in sources})
    assert describe_examples() == {"block": "First line.", "one_line": "Just this.", "none": "",
                                   "line_comment": ""}


# -- The wheel, installed --------------------------------------------------------------------------

def _tool_env():
    """The environment for pip and venv: no warnings turned into errors (pip's own
    dependencies are not ours to fix) and no PYTHONPATH reaching into the checkout."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONWARNINGS", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


def _can_build_without_isolation():
    """Whether this venv's setuptools builds the wheel, so that no index is needed."""
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return False
    have = tuple(int(n) for n in re.findall(r"\d+", version)[:2])
    need = re.search(r"setuptools>=([\d.]+)", " ".join(PYPROJECT["build-system"]["requires"]))
    if need and have < tuple(int(n) for n in need.group(1).split(".")[:2]):
        return False
    # bdist_wheel is part of setuptools from 70.1; before, it comes with `wheel`.
    return have >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.fixture(scope="module")
def wheel_source(tmp_path_factory):
    """A copy of the tree's sources: building in the checkout would write build/lib there,
    and files left in it from an older build would ship."""
    src = tmp_path_factory.mktemp("wheel") / "src"
    for path in [REPO / "pyproject.toml", REPO / "README.md", *source_files()]:
        target = src / path.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return src


@pytest.fixture(scope="module")
def wheel(wheel_source):
    """The wheel, as pip builds it."""
    src, tmp = wheel_source, wheel_source.parent
    isolation = ["--no-build-isolation"] if _can_build_without_isolation() else []
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, str(src),
               "-w", str(tmp / "dist")]
    done = subprocess.run(command, capture_output=True, text=True, env=_tool_env(),
                          timeout=600)
    output = done.stdout + done.stderr
    if done.returncode != 0 and re.search(r"(No matching distribution|Could not find a "
                                          r"version).*setuptools", output):
        pytest.skip("no setuptools to build the wheel with: this venv's is too old and no "
                    "package index is reachable")
    assert done.returncode == 0, output
    wheels = list((tmp / "dist").glob("rvnpu-*.whl"))
    assert len(wheels) == 1, output
    return wheels[0]


def test_the_wheel_holds_every_package_and_the_firmware(wheel, wheel_source):
    with zipfile.ZipFile(wheel) as archive:
        names = {n for n in archive.namelist() if not n.startswith("rvnpu-")}
    data = package_data_files(wheel_source)
    copied = [p for folder in set(PACKAGE_DIRS.values())
              for p in (wheel_source / folder).rglob("*")
              if p.is_file() and "__pycache__" not in p.parts]
    expected = {installed_name(p, wheel_source) for p in copied
                if p.suffix == ".py" or p in data}
    assert sorted(expected - names) == [], "missing from the wheel"
    assert sorted(names - expected) == [], "in the wheel but not in the tree"
    for package in PACKAGES:
        assert f"{package.replace('.', '/')}/__init__.py" in names
    for name in ("crt0.S", "link.ld", "build.py", "include/rvnpu.h", "lib/gemm.c",
                 "examples/hello.c", "examples/example_data.h"):
        assert f"rvnpu/firmware/{name}" in names


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """A fresh venv with the wheel installed, not editable. The dependencies come from this
    venv's site-packages through a plain path in a .pth file: a path line does not run that
    folder's own .pth files, so the checkout's editable finder stays out."""
    venv = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   env=_tool_env(), timeout=300)
    python = venv / "bin" / "python"
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                           "--no-deps", "--no-index", str(wheel)],
                          capture_output=True, text=True, env=_tool_env(), timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    site = subprocess.run([str(python), "-c", "import sysconfig; "
                           "print(sysconfig.get_path('purelib'))"], capture_output=True,
                          text=True, check=True, env=_tool_env()).stdout.strip()
    ours = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    Path(site, "rvnpu_test_dependencies.pth").write_text("".join(f"{p}\n" for p in ours))
    return venv


def _installed_files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in Path(folder).rglob("*")
                  if "__pycache__" not in p.parts)


@pytest.mark.skipif("verilator" not in toolchain.available_simulators(),
                    reason="Verilator not available")
def test_the_installed_wheel_runs_an_example_and_a_model_from_an_empty_directory(
        installed, tmp_path):
    from onnx_models import calibration, float_model, quantise

    empty = tmp_path / "empty"
    empty.mkdir()
    env = dict(os.environ, PATH=f"{installed / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               VIRTUAL_ENV=str(installed),
               # The simulator builds the other tests make, so that the SoC's model is reused.
               RVNPU_SIM_BUILD=os.environ.get("RVNPU_SIM_BUILD", str(REPO / "build" / "sim")))
    env.pop("PYTHONPATH", None)

    def run(*command):
        done = subprocess.run(command, cwd=empty, env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, f"{command}:\n{done.stdout}{done.stderr}"
        return done.stdout

    where = run("python", "-c", "import rvnpu.firmware as f, rvnpu.cli as c; "
                "print(f.__file__); print(c.__file__)").splitlines()
    for path in where:
        assert Path(path).resolve().is_relative_to(installed.resolve()), where
    package = Path(where[0]).parent
    before = _installed_files(package.parent)

    listing = run("rvnpu", "examples")
    for name, text in describe_examples().items():
        assert name in listing and text in listing

    # The ONNX models' UART speed, so that both runs share one SoC model with the CLI tests.
    out = run("rvnpu", "sim", "--example", "hello", "--uart-baud", "3000000")
    assert "Hello from rvnpu!" in out and "exit code 0" in out

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    model, shape = float_model("mlp", seed=3)
    path = quantise(model, shape, model_dir / "mlp.onnx", fmt="QDQ", per_channel=True)
    np.save(model_dir / "x.npy", calibration(shape, 5, 1)[0])
    out = run("rvnpu", "run", str(path), "--input", str(model_dir / "x.npy"))
    assert "matches onnxruntime exactly, bit for bit" in out, out
    assert (empty / "build" / "onnx" / "mlp" / "model.bin").is_file()

    # Builds only read the installed package: site-packages may be read-only.
    assert _installed_files(package.parent) == before
