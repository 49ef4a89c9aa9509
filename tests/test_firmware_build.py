"""Firmware builds with zig cc, and the firmware agrees with the Python side by construction.

* The examples build for the default SoC and for a different one (no M extension, another
  engine shape); an image too big for the RAM and a compiler error are clear errors that leave
  no output behind.
* The generated ``rvnpu_soc.h`` says what :mod:`rvnpu.spec.memory_map` says (a host program
  prints every address and mask), and ``docs/memory_map.md`` is up to date.
* The firmware GEMM issues exactly the command stream of ``compile_gemm`` (built for the host
  with ``-DRVNPU_HOST``, which records commands instead of executing custom instructions), so
  its results are those the engine tests check against ``gemm_reference``.
* printf formats as C's printf does, for the conversions it supports.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rvnpu.compiler.gemm import compile_gemm
from rvnpu.firmware.build import (EXAMPLES, FIRMWARE_DIR, FirmwareError, build_firmware,
                                  library_opt,
                                  write_generated_headers)
from rvnpu.gen.docs import REGENERATE_DOCS as REGENERATE_DOC, memory_map_markdown
from rvnpu.sim.golden.gemm import Requant
from rvnpu.spec import commands as isa
from rvnpu.spec.config import EngineConfig
from rvnpu.spec.memory_map import PERIPHERALS, RAM_BASE, SocConfig


REPO = Path(__file__).resolve().parents[1]

#: Differs from the default everywhere the firmware looks: no M, a 4x4 int16 engine with small
#: memories, 32 KiB of RAM, a 32-bit bus.
OTHER = SocConfig(engine=EngineConfig(rows=4, cols=4, in_width=16, spad_depth=256,
                                      acc_depth=64, qp_depth=16, bus_width=32,
                                      mem_bytes=1 << 15),
                  clock_hz=12_000_000, uart_baud=9600, with_m=False, timer_width=40)


def host_cc():
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return [path]
    return [sys.executable, "-m", "ziglang", "cc"]


def build_host(tmp_path, config, sources, body=None, flags=()):
    """Compile C for the host against the firmware headers of ``config``; returns the
    executable."""
    include = tmp_path / "include"
    write_generated_headers(include, config)
    files = [str(s) for s in sources]
    if body is not None:
        main = tmp_path / "main.c"
        main.write_text(body)
        files.append(str(main))
    exe = tmp_path / "host"
    done = subprocess.run([*host_cc(), "-std=c11", "-Wall", "-Werror", "-DRVNPU_HOST",
                           "-I", str(FIRMWARE_DIR / "include"), "-I", str(include), *flags,
                           *files, "-o", str(exe)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return exe


# -- Builds -------------------------------------------------------------------------------------

@pytest.mark.parametrize("config", [SocConfig(), OTHER], ids=["default", "other"])
@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_examples_build(tmp_path, example, config):
    defines = {"M": 16, "N": 16, "K": 16} if example == "matmul" and config is OTHER else None
    image = build_firmware(EXAMPLES[example], tmp_path, config, defines=defines)
    data = image.image
    assert image.bin.is_file() and image.elf.is_file() and len(data) == image.image_bytes
    assert 0 < image.image_bytes < image.ram_bytes_used <= config.ram_bytes
    # The image starts with _start: `auipc sp, ...` setting the stack pointer.
    assert int.from_bytes(data[:4], "little") & 0xFFF == 0x117
    assert not list(tmp_path.glob(".*"))     # no staging directories left over


@pytest.mark.parametrize("config", [SocConfig(), OTHER], ids=["default", "other"])
def test_commands_issue_inline(tmp_path, config):
    """Every command the library issues is its one custom instruction: rvnpu_issue is never
    a function of its own (at -Os the switch over the full command set was too big to inline,
    and each command then cost a call, the operands spilled and a jump table: the ULX3S-25F's
    32x32x32 GEMM went from 48,864 to 63,128 cycles)."""
    image = build_firmware(EXAMPLES["board_demo"], tmp_path, config)
    assert "rvnpu_issue" not in image.elf.with_suffix(".map").read_text()


def test_gemm_scheduler_is_compiled_for_speed():
    """The GEMM scheduler, which the core runs once a command, is built -O2 whatever the
    firmware's flag but -O0 (for a debugger); the rest of the library follows the flag.
    (What it buys is measured by ``python -m rvnpu.bench.boards``: the demo's GEMM on the
    4x4 boards, 48,880 core cycles at -Os, 30,479 so.)"""
    lib = FIRMWARE_DIR / "lib"
    assert (lib / "gemm.c").is_file()
    assert library_opt(lib / "gemm.c", "-Os") == "-O2"
    assert library_opt(lib / "gemm.c", "-Oz") == "-O2"
    assert library_opt(lib / "gemm.c", "-O0") == "-O0"
    assert library_opt(lib / "uart.c", "-Os") == "-Os"
    assert library_opt(FIRMWARE_DIR / "crt0.S", "-O1") == "-O1"


def test_program_defines_do_not_reach_the_library(tmp_path):
    """-DM=.. must not rename the library's variables."""
    image = build_firmware(EXAMPLES["matmul"], tmp_path,
                           defines={"M": 8, "N": 8, "K": 8, "R": 1, "C": 2, "EB": 3})
    assert image.image_bytes > 0


def test_image_too_big_is_a_clear_error(tmp_path):
    built = build_firmware(EXAMPLES["matmul"], tmp_path, name="big",
                           defines={"M": 16, "N": 16, "K": 16})
    assert built.bin.is_file()
    with pytest.raises(FirmwareError) as info:
        build_firmware(EXAMPLES["matmul"], tmp_path, name="big",
                       defines={"M": 160, "N": 160, "K": 160})
    message = str(info.value)
    assert "\n" not in message
    assert "does not fit in RAM" in message and "ram_bytes is 65536" in message
    need = int(message.split("needs ")[1].split()[0])
    assert need > 3 * 160 * 160
    # No half-written output, and no stale image from the earlier build either.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["include"]


def test_stack_reserve_counts(tmp_path):
    with pytest.raises(FirmwareError, match="32768-byte stack"):
        build_firmware(EXAMPLES["hello"], tmp_path, stack_bytes=32768,
                       soc_config=SocConfig(engine=EngineConfig(mem_bytes=1 << 15)))


def test_compiler_error_shows_the_compiler_output(tmp_path):
    source = tmp_path / "broken.c"
    source.write_text('#include "rvnpu.h"\nint main(void) { return undefined_name; }\n')
    with pytest.raises(FirmwareError) as info:
        build_firmware(source, tmp_path / "out")
    first, *rest = str(info.value).splitlines()
    assert first == "compiling firmware broken failed:"
    assert any("broken.c:2" in line and "undefined_name" in line for line in rest)
    assert not (tmp_path / "out" / "broken.bin").exists()


def test_bad_sources_are_refused(tmp_path):
    with pytest.raises(FirmwareError, match="not found"):
        build_firmware(tmp_path / "missing.c", tmp_path)
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(FirmwareError, match="C or assembly"):
        build_firmware(tmp_path / "notes.txt", tmp_path)



def _tree(folder):
    return sorted((p.relative_to(folder).as_posix(), p.stat().st_mtime_ns)
                  for p in Path(folder).rglob("*") if "__pycache__" not in p.parts)


def test_a_build_only_reads_the_firmware_folder(tmp_path, monkeypatch):
    """In an installed wheel the firmware folder is site-packages, which may be read-only:
    everything a build makes goes to its output directory, none to the sources or the
    working directory."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = _tree(FIRMWARE_DIR)
    build_firmware(EXAMPLES["hello"], tmp_path / "out", OTHER)
    assert _tree(FIRMWARE_DIR) == before
    assert list(cwd.iterdir()) == []


def test_generated_headers_are_rewritten_only_when_they_change(tmp_path):
    """An unchanged header keeps its modification time, so zig's cache stays valid."""
    paths = write_generated_headers(tmp_path)
    assert sorted(p.name for p in paths) == ["rvnpu_engine.h", "rvnpu_memory.ld", "rvnpu_soc.h"]
    for path in paths:
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    write_generated_headers(tmp_path)
    assert all(p.stat().st_mtime_ns == 1_000_000_000 for p in paths)
    write_generated_headers(tmp_path, OTHER)
    assert all(p.stat().st_mtime_ns != 1_000_000_000 for p in paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)


# -- The generated header and docs --------------------------------------------------------------

def test_header_matches_memory_map(tmp_path):
    config = OTHER
    lines = []
    expected = [f"RAM {RAM_BASE:x} {config.ram_bytes:x}", f"CLOCK {config.clock_hz}",
                f"DIVISOR {config.uart_divisor}", f"M {int(config.with_m)}",
                f"TIMER_WIDTH {config.timer_width}"]
    for p in PERIPHERALS:
        for r in p.registers:
            name = f"RVNPU_{p.name}_{r.name}"
            lines.append(f'    printf("{name} %x\\n", (unsigned){name}_ADDR);')
            expected.append(f"{name} {p.base + r.offset:x}")
            for b in r.bits:
                lines.append(f'    printf("{name}_{b.name} %x %d\\n", '
                             f'(unsigned){name}_{b.name}_MASK, {name}_{b.name}_SHIFT);')
                expected.append(f"{name}_{b.name} {b.mask:x} {b.lsb}")
    for cmd in isa.COMMANDS.values():
        if isa.is_built(cmd.funct, config.engine):
            expected.append(f"CMD {cmd.name} {int(cmd.funct)} {int(cmd.response)}")
    body = "\n".join([
        "#include <stdio.h>", '#include "rvnpu_soc.h"', "int main(void)", "{",
        '    printf("RAM %x %x\\n", (unsigned)RVNPU_RAM_BASE, (unsigned)RVNPU_RAM_BYTES);',
        '    printf("CLOCK %u\\n", (unsigned)RVNPU_CLOCK_HZ);',
        '    printf("DIVISOR %u\\n", (unsigned)RVNPU_UART_RESET_DIVISOR);',
        '    printf("M %d\\n", RVNPU_WITH_M);',
        '    printf("TIMER_WIDTH %d\\n", RVNPU_TIMER_WIDTH);',
        *lines,
        '#define X(name, funct, answers) printf("CMD %s %d %d\\n", #name, funct, answers);',
        "    RVNPU_FOR_EACH_COMMAND(X)",
        "    return 0;", "}", ""])
    exe = build_host(tmp_path, config, [], body)
    got = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    assert got.splitlines() == expected


def test_header_is_clean_for_the_firmware_compiler(tmp_path):
    """Strict C and assembly both include it without a warning."""
    include = tmp_path / "include"
    write_generated_headers(include, SocConfig())
    (tmp_path / "c.c").write_text('#include "rvnpu.h"\nint main(void) { return 0; }\n')
    (tmp_path / "s.S").write_text('#include "rvnpu_soc.h"\nli t0, RVNPU_SIM_EXIT_ADDR\n'
                                  'li t1, RVNPU_RAM_BYTES\n')
    for source in ("c.c", "s.S"):
        done = subprocess.run(
            [sys.executable, "-m", "ziglang", "cc", "-target", "riscv32-freestanding-none",
             "-mcpu=generic_rv32", "-std=c11", "-pedantic", "-Wall", "-Wextra", "-Werror",
             "-ffreestanding", "-I", str(FIRMWARE_DIR / "include"), "-I", str(include), "-c",
             str(tmp_path / source), "-o", str(tmp_path / f"{source}.o")],
            capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def test_memory_map_doc_is_up_to_date():
    doc = REPO / "docs" / "memory_map.md"
    assert doc.read_text() == memory_map_markdown(), \
        f"docs/memory_map.md is stale; regenerate it with: {REGENERATE_DOC}"


# -- GEMM: the same commands as compile_gemm ----------------------------------------------------

GEMM_HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include "rvnpu.h"

uint8_t rvnpu_host_ram[RVNPU_RAM_BYTES];

uint32_t rvnpu_host_issue(uint32_t funct, uint32_t op1, uint32_t op2)
{
    printf("%u %u %u\n", funct, op1, op2);
    return 0;
}

static long next(void)
{
    long v;
    if (scanf("%ld", &v) != 1)
        exit(3);
    return v;
}

/* stdin: m n k a b c qp mode a_zero b_zero a_unsigned b_unsigned out_zero clamp_min clamp_max,
 * then n biases, n multipliers, n shifts, n scale bit patterns. */
int main(void)
{
    rvnpu_gemm_t g = {0};
    g.m = next(); g.n = next(); g.k = next();
    g.a = rvnpu_host_ram + next();
    g.b = rvnpu_host_ram + next();
    g.c = rvnpu_host_ram + next();
    g.qp = (uint32_t *)(rvnpu_host_ram + next());
    g.requant.mode = next();
    g.a_zero = next(); g.b_zero = next();
    g.a_unsigned = next(); g.b_unsigned = next();
    g.requant.out_zero = next();
    g.requant.clamp_min = next();
    g.requant.clamp_max = next();
    static int32_t bias[4096], mult[4096], shift[4096];
    static uint32_t scale[4096];
    for (uint32_t i = 0; i < g.n; i++) bias[i] = next();
    for (uint32_t i = 0; i < g.n; i++) mult[i] = next();
    for (uint32_t i = 0; i < g.n; i++) shift[i] = next();
    for (uint32_t i = 0; i < g.n; i++) scale[i] = next();
    g.requant.bias = bias;
    g.requant.multiplier = mult;
    g.requant.shift = shift;
    g.requant.scale = (const float *)scale;
    uint32_t status = 0;
    int result;
    if (RECORD) {
        /* Recorded, then replayed: the same stream must come out. */
        static rvnpu_op_t ops[20000];
        rvnpu_program_t program = {ops, 20000, 0};
        result = rvnpu_gemm_record(&g, &program);
        if (!result)
            rvnpu_program_run(&program);
    } else {
        result = rvnpu_gemm(&g, &status);
    }
    if (result)
        return 10 + result;
    return 0;
}
"""

LIBRARY = [FIRMWARE_DIR / "lib" / "gemm.c", FIRMWARE_DIR / "lib" / "program.c"]

GEMM_CONFIGS = {
    "8x8": EngineConfig(),
    "3x5-small": EngineConfig(rows=3, cols=5, spad_depth=64, acc_depth=16, qp_depth=8,
                              bus_width=32, mem_bytes=1 << 16),
    "4x4-int16": EngineConfig(rows=4, cols=4, in_width=16, spad_depth=128, acc_depth=32,
                              qp_depth=4, mem_bytes=1 << 16),
}

#: (M, N, K, requant mode): one tile, ragged edges, several M blocks (small memories), QP
#: tables that do not stay resident, raw sums and ONNX Runtime scales.
GEMM_SHAPES = [(1, 1, 1, "tflite"), (8, 8, 8, "tflite"), (13, 21, 17, "tflite"),
               (40, 12, 30, "raw"), (9, 70, 5, "ort"), (70, 9, 40, "tflite")]


@pytest.mark.parametrize("record", [False, True], ids=["direct", "recorded"])
@pytest.mark.parametrize("name", sorted(GEMM_CONFIGS))
def test_gemm_issues_the_compiled_program(tmp_path, name, record):
    config = GEMM_CONFIGS[name]
    exe = build_host(tmp_path, SocConfig(engine=config), LIBRARY, GEMM_HARNESS,
                     flags=[f"-DRECORD={int(record)}"])
    rng = np.random.default_rng(7)
    for m, n, k, mode in GEMM_SHAPES:
        a = rng.integers(-100, 100, (m, k))
        b = rng.integers(-100, 100, (k, n))
        bias = rng.integers(-1000, 1000, n)
        mult = rng.integers(1 << 30, 1 << 31, n)
        shift = rng.integers(-12, 3, n)
        scale = rng.uniform(1e-4, 1e-2, n).astype(np.float32)
        requant = {"raw": Requant(mode=None),
                   "tflite": Requant(multiplier=mult, shift=shift, out_zero=3, clamp_min=-100,
                                     clamp_max=120),
                   "ort": Requant(mode="ort", scale=scale, out_zero=-2, clamp_min=0,
                                  clamp_max=127)}[mode]
        job = compile_gemm(a, b, None if mode == "raw" else bias, requant, config=config,
                           dataflow="ws", a_zero=5, b_zero=-3)
        a_addr, b_addr = job.image[0][0], job.image[1][0]
        qp_addr = job.image[2][0] if mode != "raw" else 0
        fields = [m, n, k, a_addr, b_addr, job.out_addr, qp_addr,
                  {"tflite": 0, "ort": 1, "raw": 2}[mode], 5, -3, 0, 0, requant.out_zero,
                  requant.clamp_min, requant.clamp_max, *bias, *mult, *shift,
                  *scale.view(np.uint32)]
        done = subprocess.run([str(exe)], input=" ".join(str(int(v)) for v in fields),
                              capture_output=True, text=True)
        assert done.returncode == 0, (m, n, k, mode, done.returncode)
        program = [tuple(int(v) for v in line.split()) for line in done.stdout.splitlines()]
        assert program == [tuple(c) for c in job.program], (name, m, n, k, mode)


def test_gemm_qp_table_matches_the_compiled_image(tmp_path):
    """The requantisation table the firmware writes is byte for byte the compiler's."""
    config = GEMM_CONFIGS["3x5-small"]
    dump = GEMM_HARNESS.replace("    if (result)\n        return 10 + result;",
                                "    if (result)\n        return 10 + result;\n"
                                "    fwrite(g.qp, 4, rvnpu_gemm_qp_words(g.n), stderr);")
    exe = build_host(tmp_path, SocConfig(engine=config), LIBRARY, dump, flags=["-DRECORD=0"])
    rng = np.random.default_rng(3)
    for mode in ("tflite", "ort"):
        n = 23
        a, b = rng.integers(-9, 9, (4, 6)), rng.integers(-9, 9, (6, n))
        bias = rng.integers(-1000, 1000, n)
        mult, shift = rng.integers(1 << 30, 1 << 31, n), rng.integers(-12, 3, n)
        scale = rng.uniform(1e-4, 1e-2, n).astype(np.float32)
        requant = (Requant(multiplier=mult, shift=shift) if mode == "tflite"
                   else Requant(mode="ort", scale=scale))
        job = compile_gemm(a, b, bias, requant, config=config, dataflow="ws")
        qp_addr, qp_bytes = job.image[2]
        fields = [4, n, 6, job.image[0][0], job.image[1][0], job.out_addr, qp_addr,
                  0 if mode == "tflite" else 1, 0, 0, 0, 0, 0, -128, 127, *bias, *mult, *shift,
                  *scale.view(np.uint32)]
        done = subprocess.run([str(exe)], input=" ".join(str(int(v)) for v in fields).encode(),
                              capture_output=True)
        assert done.returncode == 0
        assert done.stderr == qp_bytes


# -- printf -------------------------------------------------------------------------------------

PRINTF_CASES = [
    '"[%d] [%i] [%u]", -42, 7, 3000000000u',
    '"[%x] [%X] [%08x] [%8x]", 0xbeefu, 0xbeefu, 0x1au, 0x1au',
    '"[%5d] [%-5d] [%05d] [%-3s] [%3c] [%5s]", 42, 42, -42, "ab", 99, "toolong"',
    '"[%lld] [%llu] [%llx] [%lld]", -1234567890123ll, 18446744073709551615ull, '
    '0x123456789abull, 0ll',
    '"[%s] [%c] [%%] [%ld] [%lu] [%x]", "text", 65, -5l, 5ul, 0u',
    '"%d %d %u", -2147483647 - 1, 2147483647, 4294967295u',
]


def test_printf_formats_like_c(tmp_path):
    """The firmware's printf, built for the host under other names, against the host's."""
    include = tmp_path / "include"
    write_generated_headers(include, SocConfig())
    obj = tmp_path / "printf.o"
    renames = ["-Dprintf=rv_printf", "-Dvprintf=rv_vprintf", "-Dputchar=rv_putchar",
               "-Dputs=rv_puts"]
    done = subprocess.run([*host_cc(), "-std=c11", "-Wall", "-Werror", "-DRVNPU_HOST", *renames,
                           "-I", str(FIRMWARE_DIR / "include"), "-I", str(include), "-c",
                           str(FIRMWARE_DIR / "lib" / "printf.c"), "-o", str(obj)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    main = tmp_path / "main.c"
    main.write_text("\n".join([
        "#include <stdio.h>",
        "int rv_printf(const char *format, ...);",
        "int rv_putchar(int c) { return fputc(c, stdout); }",
        "int main(void)", "{", "    int n;",
        *[f'    n = rv_printf({args}); printf("|%d\\n", n);' for args in PRINTF_CASES],
        *[f'    n = printf({args}); printf("|%d\\n", n);' for args in PRINTF_CASES],
        "    return 0;", "}", ""]))
    exe = tmp_path / "printf"
    done = subprocess.run([*host_cc(), "-w", str(main), str(obj), "-o", str(exe)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = subprocess.run([str(exe)], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    ours, theirs = lines[:len(PRINTF_CASES)], lines[len(PRINTF_CASES):]
    assert ours == theirs


def test_commands_of_units_not_built_are_left_out_of_the_issue_list():
    """The firmware's switch over RVNPU_FOR_EACH_COMMAND is code in every image: an engine
    without the fetcher or the post-processing unit (the small boards') lists neither."""
    from rvnpu.gen.soc_header import memory_map_header
    from rvnpu.spec.config import EngineConfig
    full = memory_map_header(SocConfig())
    small = memory_map_header(SocConfig(engine=EngineConfig(command_fetch=False,
                                                            post_unit=False)))
    for name in ("RUN", "MAXPOOL", "QLINEAR_ADD", "CONFIG_POST"):
        assert f"X({name}," in full and f"X({name}," not in small
    assert "X(LOAD," in small and "X(FENCE," in small
