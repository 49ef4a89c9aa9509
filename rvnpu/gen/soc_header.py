"""The SoC's C header ``rvnpu_soc.h`` and linker-script fragment ``rvnpu_memory.ld``, written
from :mod:`rvnpu.spec.memory_map` so that firmware addresses every register where the address
decoder puts it."""

import textwrap

from rvnpu.gen.engine_header import HEADER_NAME as ENGINE_HEADER
from rvnpu.gen.provenance import generated_notice
from rvnpu.spec import commands as isa
from rvnpu.spec import memory_map
from rvnpu.spec.memory_map import (CUSTOM0_OPCODE, PERIPHERAL_BASE, PERIPHERAL_SPAN, PERIPHERALS,
                                   RAM_BASE, SocConfig)


__all__ = ["HEADER_NAME", "LINKER_NAME", "memory_map_header", "linker_memory"]


#: Name of the generated C header (it includes the engine's header).
HEADER_NAME = "rvnpu_soc.h"

#: Name of the generated linker-script fragment holding the MEMORY region.
LINKER_NAME = "rvnpu_memory.ld"

_WIDTH = 100   # line length of generated text, as for the Python sources


def _comment(text, indent=""):
    lines = textwrap.wrap(text.replace("*/", "* /"), _WIDTH - 3 - len(indent),
                          break_on_hyphens=False)
    if len(lines) == 1 and len(indent) + len(lines[0]) <= _WIDTH - 6:
        return [f"{indent}/* {lines[0]} */"]
    return [f"{indent}/*"] + [f"{indent} * {line}" for line in lines] + [f"{indent} */"]


def _hex(value):
    return f"RVNPU_U(0x{value:08X})"


def memory_map_header(soc_config=None):
    """The C header ``rvnpu_soc.h``: the memory map, register fields and SoC parameters.

    C code includes it (it includes ``rvnpu_engine.h``); assembly may include it too, and sees
    only the ``#define`` s.
    """
    c = SocConfig() if soc_config is None else soc_config
    if not isinstance(c, SocConfig):
        raise TypeError(f"soc_config must be a SocConfig, not {c!r}")
    lines = _comment(f"{HEADER_NAME}: memory map and parameters of the rvnpu SoC. "
                     + generated_notice(memory_map_header, memory_map))
    lines += ["#ifndef RVNPU_SOC_H", "#define RVNPU_SOC_H", ""]
    lines += _comment("An unsigned 32-bit constant, in C and in assembly (which has no 'u').")
    lines += ["#ifdef __ASSEMBLER__", "#define RVNPU_U(x) x", "#else", "#define RVNPU_U(x) x##u",
              "#endif", ""]
    lines += _comment("SoC parameters (SocConfig).")
    lines += [
        f"#define RVNPU_CLOCK_HZ RVNPU_U({c.clock_hz})",
        f"#define RVNPU_UART_BAUD RVNPU_U({c.uart_baud})",
        f"#define RVNPU_UART_RESET_DIVISOR RVNPU_U({c.uart_divisor})",
        f"#define RVNPU_WITH_M {int(c.with_m)}",
        "/* Bits the TIMER's counters keep: they wrap at 2**RVNPU_TIMER_WIDTH. */",
        f"#define RVNPU_TIMER_WIDTH {c.timer_width}",
        "",
    ]
    lines += _comment("RAM: code, data, stack and the engine's operands (DMA addresses are "
                      "RAM addresses).")
    lines += [
        f"#define RVNPU_RAM_BASE {_hex(RAM_BASE)}",
        f"#define RVNPU_RAM_BYTES RVNPU_U({c.ram_bytes})",
        f"#define RVNPU_PERIPHERAL_BASE {_hex(PERIPHERAL_BASE)}",
        f"#define RVNPU_PERIPHERAL_SPAN {_hex(PERIPHERAL_SPAN)}",
        "",
        "#ifdef __ASSEMBLER__",
        "#define RVNPU_REG(addr) (addr)",
        "#else",
        "#include <stdint.h>",
        f'#include "{ENGINE_HEADER}"',
        "/* A memory-mapped register, read and written as one 32-bit word. */",
        "#define RVNPU_REG(addr) (*(volatile uint32_t *)(uintptr_t)(addr))",
        "#endif",
        "",
    ]
    lines += _comment("Every command this engine was built with, as the custom-0 instruction "
                      "carries it: X(NAME, funct7, answers), answers being 1 when the "
                      "instruction writes the engine's answer to rd. Firmware expands it into "
                      "one instruction a function code (the funct7 field must be a constant); "
                      "leaving out the units not built keeps small firmware small.")
    lines.append("#define RVNPU_FOR_EACH_COMMAND(X) \\")
    commands = [cmd for cmd in isa.COMMANDS.values() if isa.is_built(cmd.funct, c.engine)]
    for i, cmd in enumerate(commands):
        tail = " \\" if i + 1 < len(commands) else ""
        lines.append(f"    X({cmd.name}, 0x{int(cmd.funct):02X}, {int(cmd.response)}){tail}")
    lines += ["", f"#define RVNPU_CUSTOM0_OPCODE 0x{CUSTOM0_OPCODE:02X}", ""]
    for p in PERIPHERALS:
        prefix = f"RVNPU_{p.name}"
        lines += _comment(f"{p.name}: {p.doc}")
        lines.append(f"#define {prefix}_BASE {_hex(p.base)}")
        for r in p.registers:
            name = f"{prefix}_{r.name}"
            lines += _comment(f"{r.name} ({r.access.value}, {r.width} bits, reset {r.reset}): "
                              f"{r.doc}")
            lines += [f"#define {name}_OFFSET 0x{r.offset:03X}",
                      f"#define {name}_ADDR {_hex(p.base + r.offset)}",
                      f"#define {name} RVNPU_REG({name}_ADDR)"]
            for b in r.bits:
                lines += [f"#define {name}_{b.name}_SHIFT {b.lsb}",
                          f"#define {name}_{b.name}_MASK {_hex(b.mask)}"]
        lines.append("")
    lines += ["#endif /* RVNPU_SOC_H */", ""]
    return "\n".join(lines)


def linker_memory(soc_config=None, *, stack_bytes=2048):
    """The linker-script fragment ``rvnpu_memory.ld`` that ``firmware/link.ld`` includes: the
    RAM region, and the bytes kept free for the stack."""
    c = SocConfig() if soc_config is None else soc_config
    return "\n".join([
        *_comment(f"{LINKER_NAME}: {generated_notice(linker_memory, memory_map)}"),
        "MEMORY",
        "{",
        f"    RAM (rwx) : ORIGIN = 0x{RAM_BASE:08X}, LENGTH = 0x{c.ram_bytes:X}",
        "}",
        f"__stack_size = {stack_bytes};",
        "",
    ])
