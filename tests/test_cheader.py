"""The generated C headers and docs agree with the spec (rvnpu/spec/), and name it.

The header is compiled and run on the host, so the encoders are checked by a C compiler against
:func:`isa.encode` rather than by reading the generated text, and it is compiled for the RISC-V
control core the firmware runs on. Every generated file names the source file its facts come
from; that file must exist, and the checked-in docs must be what the generators write now.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from rvnpu.gen import docs, provenance, soc_header
from rvnpu.gen.engine_header import HEADER_NAME, c_header, commands_markdown, write_header
from rvnpu.gen.provenance import REGENERATE_DOCS, source_path
from rvnpu.spec import commands as isa
from rvnpu.spec import memory_map
from rvnpu.spec.config import EngineConfig


REPO = Path(__file__).resolve().parents[1]

#: Strict enough that a header firmware includes never adds a warning of its own.
C_FLAGS = ["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Wconversion", "-Wsign-conversion",
           "-Werror"]

#: Differs from the default in every parameter; 2 GiB needs an unsigned C constant.
ODD_CONFIG = EngineConfig(rows=3, cols=5, in_width=4, acc_width=20, dataflow="ws",
                          spad_depth=256, acc_depth=64, qp_depth=8, bus_width=128,
                          mem_bytes=1 << 31, queue_depth=2)


# -- Helpers --------------------------------------------------------------------------------------

def _host_cc():
    for name, prefix in (("cc", []), ("gcc", []), ("clang", []), ("g++", ["-x", "c"])):
        path = shutil.which(name)
        if path:
            return [path, *prefix]
    pytest.skip("no host C compiler (cc, gcc, clang or g++)")


def _run_c(tmp_path, header, body, includes=("inttypes.h", "stdio.h")):
    """Compile ``body`` (the inside of ``main``) against ``header`` and return its stdout lines."""
    (tmp_path / HEADER_NAME).write_text(header)
    source = tmp_path / "main.c"
    source.write_text("".join(f"#include <{name}>\n" for name in includes)
                      + f'#include "{HEADER_NAME}"\n\nint main(void)\n{{\n{body}\n'
                      f"    return 0;\n}}\n")
    exe = tmp_path / "main"
    built = subprocess.run([*_host_cc(), *C_FLAGS, "-I", str(tmp_path), str(source),
                            "-o", str(exe)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    ran = subprocess.run([str(exe)], capture_output=True, text=True, check=True)
    return ran.stdout.splitlines()


def _c_arg(field, value):
    if not field.signed:
        return f"{value}u"
    # -2147483648 is not a C constant (2147483648 does not fit an int), so spell negatives as -x-1.
    return f"(-{-value - 1} - 1)" if value < 0 else str(value)


def _cases(cmd, rng, n_random=16):
    """Field values: extremes (signed fields at both ends against the others) then random."""
    lo = {f.name: f.lo for f in cmd.fields}
    hi = {f.name: f.hi for f in cmd.fields}
    cases = [lo, hi, {name: 0 for name in lo},
             {f.name: f.lo if f.signed else f.hi for f in cmd.fields},
             {f.name: -1 if f.signed else f.lo for f in cmd.fields}]
    for _ in range(n_random):
        cases.append({f.name: int(rng.integers(f.lo, f.hi, endpoint=True)) for f in cmd.fields})
    return cases


def _print_u32(expr):
    return f'    printf("%" PRIu32 "\\n", (uint32_t)({expr}));'


# -- Encoders -------------------------------------------------------------------------------------

def test_encoders_match_isa_encode(tmp_path):
    rng = np.random.default_rng(20240611)
    body, expected = [], []
    for cmd in isa.COMMANDS.values():
        for values in _cases(cmd, rng):
            args = ", ".join(_c_arg(f, values[f.name]) for f in cmd.fields)
            body += [
                "    {",
                f"        rvnpu_cmd_t cmd = rvnpu_encode_{cmd.name.lower()}({args});",
                f'        printf("{cmd.name} %" PRIu32 " %" PRIu32 " %" PRIu32 "\\n", '
                f"cmd.funct, cmd.op1, cmd.op2);",
                "    }",
            ]
            expected.append((cmd.name, values, isa.encode(cmd.funct, **values)))
    lines = _run_c(tmp_path, c_header(EngineConfig()), "\n".join(body))
    assert len(lines) == len(expected)
    for line, (name, values, encoded) in zip(lines, expected):
        got_name, *got = line.split()
        assert got_name == name
        assert tuple(int(x) for x in got) == encoded, f"{name} {values}"


def test_status_decoder_matches_isa(tmp_path):
    rng = np.random.default_rng(7)
    words = [0, 0xFFFF_FFFF, 0x5555_5555, 0xAAAA_AAAA]
    words += [int(w) for w in rng.integers(0, 1 << 32, 16)]
    names = [f.name for f in isa.STATUS_FIELDS]
    body = []
    for word in words:
        fmt = " ".join(['%" PRIu32 "'] * len(names))
        fields = ", ".join(f"status.{name}" for name in names)
        body += ["    {", f"        rvnpu_status_t status = rvnpu_status_decode({word}u);",
                 f'        printf("{fmt}\\n", {fields});', "    }"]
        for f in isa.STATUS_FIELDS:
            shifted = f"RVNPU_STATUS_WORD_{f.name.upper()}"
            body.append(_print_u32(f"({word}u & {shifted}_MASK) >> {shifted}_SHIFT"))
    lines = iter(_run_c(tmp_path, c_header(EngineConfig()), "\n".join(body)))
    for word in words:
        want = [isa.unpack_status(word)[name] for name in names]
        assert [int(x) for x in next(lines).split()] == want, hex(word)
        assert [int(next(lines)) for _ in names] == want, hex(word)


def test_constants_match_isa(tmp_path):
    body, expected = [], []
    for cmd in isa.COMMANDS.values():
        body.append(_print_u32(f"RVNPU_{cmd.name}_RESPONSE"))
        expected.append(int(cmd.response))
        for f in cmd.fields:
            for part, value in (("OPERAND", f.operand), ("LSB", f.lsb), ("WIDTH", f.width)):
                body.append(_print_u32(f"RVNPU_{cmd.name}_{f.name.upper()}_{part}"))
                expected.append(value)
    for enum_name, cls in (("FUNCT", isa.Funct), ("SPACE", isa.Space), ("UNIT", isa.Unit),
                           ("ERROR_CODE", isa.ErrorCode), ("DATAFLOW", isa.Dataflow),
                           ("REQUANT_MODE", isa.RequantMode)):
        for member in cls:
            body.append(_print_u32(f"RVNPU_{enum_name}_{member.name}"))
            expected.append(member.value)
    for name in ("QP_ROWS", "ROW_BITS", "LIST_ENTRY_BYTES"):
        body.append(_print_u32(f"RVNPU_{name}"))
        expected.append(getattr(isa, name))
    lines = _run_c(tmp_path, c_header(EngineConfig()), "\n".join(body))
    assert [int(x) for x in lines] == expected


def test_list_entry_matches_isa_pack_list(tmp_path):
    """rvnpu_list_entry() lays a command out in memory as isa.pack_list does, byte for byte."""
    commands = [isa.encode(isa.Funct.LOAD, dram_addr=0x89abcdef, local_row=77, space=2,
                           rows=3, cols=200), (isa.Funct.RUN, 0xfffffff0, 0x12345678)]
    body = [f"    rvnpu_cmd_t cmd{i} = {{{f}u, {o1}u, {o2}u}};\n"
            f"    rvnpu_list_entry_t e{i} = rvnpu_list_entry(cmd{i});\n"
            f"    for (unsigned b = 0; b < sizeof e{i}; b++)\n"
            f"        printf(\"%u\\n\", ((const unsigned char *)&e{i})[b]);"
            for i, (f, o1, o2) in enumerate(commands)]
    lines = _run_c(tmp_path, c_header(EngineConfig()), "\n".join(body))
    assert bytes(int(x) for x in lines) == isa.pack_list(commands)


@pytest.mark.parametrize("config", [EngineConfig(), ODD_CONFIG], ids=["default", "odd"])
def test_config_macros_match_config(tmp_path, config):
    derived = [name for name, attr in vars(EngineConfig).items() if isinstance(attr, property)
               and isinstance(getattr(config, name), (bool, int, str))]
    expected = config.to_dict() | {name: getattr(config, name) for name in derived}
    body = []
    for name, value in expected.items():
        macro = f"RVNPU_ENGINE_{name.upper()}"
        if isinstance(value, str):
            body.append(f'    printf("%s\\n", {macro});')
        else:
            body.append(f'    printf("%llu\\n", (unsigned long long)({macro}));')
    lines = _run_c(tmp_path, c_header(config), "\n".join(body))
    got = dict(zip(expected, lines))
    assert got == {name: value if isinstance(value, str) else str(int(value))
                   for name, value in expected.items()}


def test_header_compiles_for_riscv(tmp_path):
    """The control core's compiler (zig's clang, rv32im, no libc) takes the header cleanly."""
    (tmp_path / HEADER_NAME).write_text(c_header(ODD_CONFIG))
    uses = []
    for cmd in isa.COMMANDS.values():
        args = ", ".join(_c_arg(f, f.hi) for f in cmd.fields)
        uses.append(f"rvnpu_cmd_t use_{cmd.name.lower()}(void);\n"
                    f"rvnpu_cmd_t use_{cmd.name.lower()}(void) "
                    f"{{ return rvnpu_encode_{cmd.name.lower()}({args}); }}\n")
    uses.append("uint32_t decode_status(uint32_t word);\n"
                "uint32_t decode_status(uint32_t word) "
                "{ return rvnpu_status_decode(word).error_code; }\n")
    source = tmp_path / "firmware.c"
    source.write_text(f'#include "{HEADER_NAME}"\n\n' + "".join(uses))
    obj = tmp_path / "firmware.o"
    env = dict(os.environ, ZIG_GLOBAL_CACHE_DIR=str(tmp_path / "zig-global"),
               ZIG_LOCAL_CACHE_DIR=str(tmp_path / "zig-local"))
    built = subprocess.run(
        [sys.executable, "-m", "ziglang", "cc", "-target", "riscv32-freestanding-none",
         "-mcpu=generic_rv32+m", "-ffreestanding", *C_FLAGS, "-I", str(tmp_path),
         "-c", str(source), "-o", str(obj)], capture_output=True, text=True, env=env)
    assert built.returncode == 0, built.stderr
    elf = obj.read_bytes()
    assert elf[:4] == b"\x7fELF"
    assert elf[4] == 1, "not a 32-bit object"
    assert int.from_bytes(elf[18:20], "little") == 243, "not a RISC-V object (EM_RISCV)"


# -- Files ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(docs.DOCS))
def test_docs_are_up_to_date(name):
    doc = REPO / name
    assert doc.is_file() and doc.read_text() == docs.DOCS[name](), (
        f"{name} is out of date with the spec; regenerate it from the repository root with:\n"
        f"    {REGENERATE_DOCS}")


def _generated_files():
    """``{name: text}`` of every generated header, linker fragment and doc."""
    return {
        HEADER_NAME: c_header(EngineConfig()),
        soc_header.HEADER_NAME: soc_header.memory_map_header(),
        soc_header.LINKER_NAME: soc_header.linker_memory(),
        **{name: generate() for name, generate in docs.DOCS.items()},
    }


@pytest.mark.parametrize("name", list(_generated_files()))
def test_generated_files_name_sources_that_exist(name):
    text = re.sub(r"\s*\n\s*\*?\s*", " ", _generated_files()[name])   # C comments on one line
    notice = re.search(r"Generated by ([\w.]+) from (\S+\.py)", text)
    assert notice, f"{name} does not say what generated it from which source"
    generator, source = notice.groups()
    assert (REPO / source).is_file(), f"{name} names {source}, which is not in the repository"
    module_name, _, function = generator.rpartition(".")
    module = __import__(module_name, fromlist=[function])
    assert callable(getattr(module, function)), f"{name} names {generator}, which does not exist"


def test_source_path_follows_the_package_dirs():
    assert source_path(isa) == "rvnpu/spec/commands.py"
    assert source_path(memory_map.SocConfig) == "rvnpu/spec/memory_map.py"
    assert source_path(soc_header.linker_memory) == "rvnpu/gen/soc_header.py"
    from rvnpu.hdl.engine import engine
    import rvnpu.sim
    assert source_path(engine) == "hdl/engine/engine.py"
    assert source_path(rvnpu.sim) == "sim/__init__.py"
    with pytest.raises(ValueError, match="not a module of rvnpu"):
        source_path(np)
    for module in (isa, memory_map, engine, rvnpu.sim, provenance):
        assert (REPO / source_path(module)).is_file()


def test_package_dirs_are_pyprojects():
    """source_path's folder map is pyproject.toml's package-dir, which a wheel does not ship."""
    with open(REPO / "pyproject.toml", "rb") as f:
        package_dirs = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    assert provenance.PACKAGE_DIRS == package_dirs


def test_regenerate_command_writes_the_docs(tmp_path):
    """The command the docs print works: run from a repository root, it writes every doc."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "memory_map.md").write_text("stale\n")
    command = shlex.split(REGENERATE_DOCS)
    assert command[0] == "python"
    done = subprocess.run([sys.executable, *command[1:]], cwd=tmp_path, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    for name, generate in docs.DOCS.items():
        assert (tmp_path / name).read_text() == generate(), name
    before = {name: (tmp_path / name).stat().st_mtime_ns for name in docs.DOCS}
    os.utime(tmp_path / "docs" / "commands.md", ns=(1, 1))
    assert docs.main([str(tmp_path)]) == 0
    assert (tmp_path / "docs" / "commands.md").stat().st_mtime_ns == 1, "rewritten unchanged"
    assert (tmp_path / "docs" / "memory_map.md").stat().st_mtime_ns == before[
        "docs/memory_map.md"]


def test_regenerate_command_refuses_a_folder_without_docs(tmp_path, capsys):
    assert docs.main([str(tmp_path)]) == 1
    assert "repository root" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_commands_markdown_covers_every_field():
    text = commands_markdown(ODD_CONFIG)
    for cmd in isa.COMMANDS.values():
        assert f"### {cmd.name}\n" in text
        for f in cmd.fields:
            assert f"| `{f.name}` | op{f.operand} (rs{f.operand}) |" in text
    for code in isa.ErrorCode:
        assert f"| `{code.name}` | {code.value} |" in text
    assert "| `mem_bytes` | 2147483648 |" in text


def test_write_header_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / HEADER_NAME
    assert write_header(ODD_CONFIG, path) == path
    assert path.read_text() == c_header(ODD_CONFIG)

    def fail(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_header(EngineConfig(), path)
    assert path.read_text() == c_header(ODD_CONFIG)
    assert [p.name for p in tmp_path.iterdir()] == [HEADER_NAME]


def test_c_header_refuses_other_configs():
    with pytest.raises(TypeError, match="EngineConfig"):
        c_header(ODD_CONFIG.to_dict())
