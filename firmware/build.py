"""Build firmware for the rvnpu SoC with ``zig cc`` from the ``ziglang`` wheel.

Why zig: it is a complete clang/lld toolchain with a RISC-V compiler-rt in one PyPI wheel, so no
cross toolchain is installed by hand. The build is one compiler call (start-up code, the
firmware library and the user's sources, linked with ``firmware/link.ld``) and one objcopy.

The headers the firmware sees are generated into the build directory from the configuration
(``rvnpu_soc.h`` from the memory map, ``rvnpu_engine.h`` from the command set), as is the RAM
region of the linker script, so an image always matches the SoC it is built for.

compiler-rt is linked (no ``-nostdlib``): without the M extension it provides ``__mulsi3`` and
``__divsi3``, and in either case the 64-bit helpers and ``memcpy``/``memset`` that clang may call
even in freestanding code.
"""

import dataclasses
import os
import re
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

from rvnpu.gen.engine_header import HEADER_NAME as ENGINE_HEADER, c_header
from rvnpu.gen.files import write_file
from rvnpu.gen.soc_header import (HEADER_NAME as SOC_HEADER, LINKER_NAME, linker_memory,
                                  memory_map_header)
from rvnpu.spec.memory_map import SocConfig


__all__ = ["FIRMWARE_DIR", "EXAMPLES", "FirmwareError", "FirmwareImage", "build_firmware",
           "compiler_command", "describe_examples", "find_example", "write_generated_headers"]


#: The firmware tree: start-up code, linker script, headers, library and examples. It is this
#: file's folder, in a checkout and in an installed wheel alike; builds only read from it
#: (site-packages may be read-only), everything they make goes to their output directory.
FIRMWARE_DIR = Path(__file__).resolve().parent

#: The example programs, by name.
EXAMPLES = {p.stem: p for p in sorted((FIRMWARE_DIR / "examples").glob("*.c"))}

_SOURCE_SUFFIXES = (".c", ".S", ".s")

#: Flags every firmware is built with. Unwind tables only cost RAM in firmware without
#: exceptions; separate sections let the linker drop unused library functions.
_CFLAGS = ("-ffreestanding", "-fno-unwind-tables", "-fno-asynchronous-unwind-tables",
           "-ffunction-sections", "-fdata-sections", "-g", "-Wall")


class FirmwareError(Exception):
    """The firmware could not be built; the first line of the message says why."""


def find_example(name):
    """The source of the shipped example ``name``, so that a user can name one without knowing
    where pip put it."""
    try:
        return EXAMPLES[name]
    except KeyError:
        raise FirmwareError(f"unknown example {name!r}; the shipped examples are: "
                            f"{', '.join(EXAMPLES)}") from None


def _summary(source):
    """The first line of the comment a C file starts with ("" if it starts with none)."""
    text = Path(source).read_text().lstrip()
    if not text.startswith("/*") or "*/" not in text:
        return ""
    for line in text[2:text.index("*/")].splitlines():
        line = line.strip().lstrip("*").strip()
        if line:
            return line
    return ""


def describe_examples():
    """``{name: one-line description}`` of the shipped examples, from the first line of each
    one's leading comment, for ``rvnpu examples``."""
    return {name: _summary(path) for name, path in EXAMPLES.items()}


@dataclasses.dataclass(frozen=True)
class FirmwareImage:
    """A built firmware.

    Members
    -------
    name : str
    elf, bin : pathlib.Path
        The linked program (with debug information) and the raw RAM image from address 0.
    config : SocConfig
        The SoC it was built for.
    image_bytes : int
        Bytes loaded into RAM (code, read-only data, data).
    ram_bytes_used : int
        Bytes of RAM taken by the image, ``.bss`` and the reserved stack.
    """

    name: str
    elf: Path
    bin: Path
    config: SocConfig
    image_bytes: int
    ram_bytes_used: int

    @property
    def image(self):
        """The RAM image, from address 0."""
        return self.bin.read_bytes()


def write_generated_headers(directory, soc_config=SocConfig(), *, stack_bytes=2048):
    """Write ``rvnpu_soc.h``, ``rvnpu_engine.h`` and ``rvnpu_memory.ld`` for ``soc_config``
    into ``directory``; returns their paths."""
    directory = Path(directory)
    files = {
        SOC_HEADER: memory_map_header(soc_config),
        ENGINE_HEADER: c_header(soc_config.engine),
        LINKER_NAME: linker_memory(soc_config, stack_bytes=stack_bytes),
    }
    # Rewriting identical text would only bump the mtime and defeat zig's cache.
    return [write_file(directory / name, text, only_if_changed=True)
            for name, text in files.items()]


def _zig():
    return [sys.executable, "-m", "ziglang"]


def compiler_command(soc_config=SocConfig(), *, opt="-Os", defines=None, include_dirs=(),
                     generated_dir, tree=FIRMWARE_DIR):
    """The ``zig cc`` command line (without sources and output) firmware for ``soc_config`` is
    compiled with, for tools that build objects of their own. ``tree`` is the firmware tree
    whose ``include/`` it uses (another one: a course lab's copy of it)."""
    mcpu = "generic_rv32+m" if soc_config.with_m else "generic_rv32"
    command = [*_zig(), "cc", "-target", "riscv32-freestanding-none", f"-mcpu={mcpu}", opt,
               *_CFLAGS, "-I", str(Path(tree) / "include"), "-I", str(generated_dir)]
    for directory in include_dirs:
        command += ["-I", str(Path(directory).resolve())]
    for name, value in (defines or {}).items():
        command.append(f"-D{name}" if value is None else f"-D{name}={value}")
    return command


def _library_sources(tree):
    return [Path(tree) / "crt0.S", *sorted((Path(tree) / "lib").glob("*.c"))]


#: Library sources compiled for speed (``-O2``) whatever the firmware's ``opt`` but ``-O0``
#: (for a debugger): the GEMM scheduler encodes and issues a command on every turn of its
#: loop, and while the core issues a GEMM, the core is what sets its pace. At ``-Os`` the
#: demo's 32x32x32 GEMM on the 4x4 boards took 48,880 cycles; with this file at ``-O2``,
#: 30,479, for 444 bytes of code more.
SPEED_SOURCES = ("gemm.c",)


def library_opt(source, opt):
    """The optimisation flag the library's ``source`` is compiled with."""
    return "-O2" if Path(source).name in SPEED_SOURCES and opt != "-O0" else opt


def _compile_library(soc_config, opt, generated, tmp, tree):
    """Objects of the start-up code and the firmware library, compiled in parallel."""
    jobs = []
    for source in _library_sources(tree):
        command = compiler_command(soc_config, opt=library_opt(source, opt),
                                   generated_dir=generated, tree=tree)
        obj = tmp / f"lib-{source.stem}.o"
        jobs.append((source, obj, subprocess.Popen(
            [*command, "-c", str(source), "-o", str(obj)], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)))
    errors = []
    for source, _, process in jobs:
        output, _ = process.communicate()
        if process.returncode != 0:
            errors.append(output.strip())
    if errors:
        raise FirmwareError("compiling the firmware library failed:\n" + "\n".join(errors))
    return [obj for _, obj, _ in jobs]


def _elf_sections(path):
    """``{name: (address, size, loaded)}`` of an ELF32 little-endian file's allocated
    sections; a few lines of parsing rather than a dependency."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        raise FirmwareError(f"{path} is not a little-endian ELF32 file")
    shoff, = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
    headers = [struct.unpack_from("<IIIIIIIIII", data, shoff + i * shentsize)
               for i in range(shnum)]
    strtab = headers[shstrndx][4]
    sections = {}
    for name_off, kind, flags, addr, _, size, *_ in headers:
        if flags & 0x2:       # SHF_ALLOC
            name = data[strtab + name_off:data.index(b"\0", strtab + name_off)].decode()
            sections[name] = (addr, size, kind != 8)    # SHT_NOBITS is not loaded
    return sections


_OVERFLOW = re.compile(r"will not fit in region '\w+': overflowed by (\d+) bytes")


def build_firmware(sources, out_dir, soc_config=SocConfig(), *, name=None, defines=None,
                   include_dirs=(), opt="-Os", stack_bytes=2048, tree=FIRMWARE_DIR):
    """Compile and link firmware into ``out_dir/<name>.elf`` and ``out_dir/<name>.bin``.

    Parameters
    ----------
    sources : path-like or list of path-like
        C (``.c``) and assembly (``.S``, ``.s``) files; the start-up code and the firmware
        library are added.
    out_dir : path-like
        Receives the image, the ELF and a link map, and ``include/`` with the generated headers.
    soc_config : SocConfig
        The SoC the firmware is for: RAM size, engine parameters, M extension.
    name : str, optional
        Base name of the outputs; the first source's stem by default.
    defines : dict, optional
        Preprocessor definitions (``{"M": 64}``; a value of ``None`` defines the bare name).
    include_dirs : list of path-like
    opt : str
        Optimisation flag (the library's :data:`SPEED_SOURCES` are compiled with ``-O2``).
    stack_bytes : int
        RAM kept free for the stack; an image leaving less is an error.
    tree : path-like
        The firmware tree (``crt0.S``, ``lib/``, ``include/``, ``link.ld``) to build with: this
        package's, or a copy with a course lab's files in it (``rvnpu.labs``).

    Returns
    -------
    FirmwareImage

    Raises
    ------
    FirmwareError
        A source is missing, the compiler or linker failed (the message ends with its output),
        or the image does not fit the RAM. Nothing is left at the output paths then, not even
        an older build, so a stale image cannot be run by mistake.
    """
    if not isinstance(soc_config, SocConfig):
        raise TypeError(f"soc_config must be a SocConfig, not {soc_config!r}")
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    sources = [Path(s) for s in sources]
    if not sources:
        raise FirmwareError("no firmware sources given")
    for source in sources:
        if not source.is_file():
            raise FirmwareError(f"firmware source not found: {source}")
        if source.suffix not in _SOURCE_SUFFIXES:
            raise FirmwareError(f"firmware source must be C or assembly "
                                f"({', '.join(_SOURCE_SUFFIXES)}), not {source}")
    if not isinstance(stack_bytes, int) or stack_bytes < 256 or stack_bytes % 16:
        raise FirmwareError(f"stack_bytes must be a multiple of 16 of at least 256, "
                            f"not {stack_bytes!r}")
    name = name or sources[0].stem
    out_dir = Path(out_dir).resolve()
    generated = out_dir / "include"
    write_generated_headers(generated, soc_config, stack_bytes=stack_bytes)
    outputs = {suffix: out_dir / f"{name}{suffix}" for suffix in (".elf", ".bin", ".map")}
    for path in outputs.values():
        path.unlink(missing_ok=True)

    with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".{name}-") as tmp:
        tmp = Path(tmp)
        staged = {suffix: tmp / path.name for suffix, path in outputs.items()}
        # The library is compiled on its own, so that the program's definitions (-DM=64)
        # cannot change it; zig caches the objects.
        library = _compile_library(soc_config, opt, generated, tmp, tree)
        command = compiler_command(soc_config, opt=opt, defines=defines,
                                   include_dirs=include_dirs, generated_dir=generated, tree=tree)
        # lld looks for the script's INCLUDE in the working directory (zig does not hand -L
        # to it), so the compiler runs in the directory of the generated fragment.
        command += ["-T", str(Path(tree) / "link.ld"),
                    "-Wl,--gc-sections",
                    "-Wl,--print-map", "-o", str(staged[".elf"]),
                    *(str(s.resolve()) for s in sources), *(str(o) for o in library)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=generated)
        if done.returncode != 0:
            output = done.stderr.strip()
            overflow = [int(n) for n in _OVERFLOW.findall(output)]
            if overflow:
                need = soc_config.ram_bytes + max(overflow)
                raise FirmwareError(
                    f"firmware {name} does not fit in RAM: it needs {need} bytes (code, data, "
                    f".bss and a {stack_bytes}-byte stack) but ram_bytes is "
                    f"{soc_config.ram_bytes}")
            raise FirmwareError(f"compiling firmware {name} failed:\n{output}")
        staged[".map"].write_text(done.stdout)     # zig's lld prints the map; -Map is refused
        done = subprocess.run([*_zig(), "objcopy", "-O", "binary", str(staged[".elf"]),
                               str(staged[".bin"])], capture_output=True, text=True)
        if done.returncode != 0:
            raise FirmwareError(f"objcopy of firmware {name} failed:\n"
                                f"{(done.stderr + done.stdout).strip()}")
        sections = _elf_sections(staged[".elf"])
        image_bytes = staged[".bin"].stat().st_size
        ram_bytes_used = max((addr + size for addr, size, _ in sections.values()), default=0)
        for suffix in (".map", ".elf", ".bin"):     # the image last: it marks a whole build
            os.replace(staged[suffix], outputs[suffix])
    return FirmwareImage(name=name, elf=outputs[".elf"], bin=outputs[".bin"], config=soc_config,
                         image_bytes=image_bytes, ram_bytes_used=ram_bytes_used)
