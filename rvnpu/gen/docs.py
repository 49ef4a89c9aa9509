"""The generated docs: ``docs/memory_map.md`` from :mod:`rvnpu.spec.memory_map`, and the list of
every generated doc with the one command that rewrites them all.

Run ``python -m rvnpu.gen.docs`` from the repository root after changing the spec;
tests/test_cheader.py fails while a checked-in doc differs from what is generated here.
"""

import sys
from pathlib import Path

from rvnpu.gen.engine_header import commands_markdown
from rvnpu.gen.files import write_file
from rvnpu.gen.provenance import REGENERATE_DOCS, generated_notice
from rvnpu.gen.soc_header import HEADER_NAME as SOC_HEADER
from rvnpu.spec import memory_map
from rvnpu.spec.memory_map import PERIPHERAL_SPAN, PERIPHERALS, RAM_BASE, SocConfig


__all__ = ["REGENERATE_DOCS", "DOCS", "memory_map_markdown", "write_docs", "main"]


def memory_map_markdown(soc_config=None):
    """The memory map as Markdown, for ``docs/memory_map.md``."""
    c = SocConfig() if soc_config is None else soc_config
    lines = [
        "# rvnpu SoC memory map",
        "",
        f"<!-- {generated_notice(memory_map_markdown, memory_map)}",
        f"     Regenerate from the repository root with: {REGENERATE_DOCS} -->",
        "",
        f"Firmware reads all of this from the generated `{SOC_HEADER}` "
        f"(`#include \"rvnpu.h\"`). Sizes below are for the default configuration.",
        "",
        "| Region | Base | Size | Notes |",
        "|---|---|---|---|",
        f"| RAM | `0x{RAM_BASE:08X}` | {c.ram_bytes} bytes (`engine.mem_bytes`) | code, data, "
        f"stack; also the engine's DMA window |",
    ]
    for p in PERIPHERALS:
        lines.append(f"| {p.name} | `0x{p.base:08X}` | 0x{PERIPHERAL_SPAN:X} bytes | {p.doc} |")
    lines += ["", "Other addresses read 0 and ignore writes. Every register is one 32-bit "
              "word; bits above a register's width read 0.", ""]
    for p in PERIPHERALS:
        lines += [f"## {p.name} (`0x{p.base:08X}`)", "", p.doc, "",
                  "| Offset | Register | Access | Width | Reset | Meaning |",
                  "|---|---|---|---|---|---|"]
        for r in p.registers:
            lines.append(f"| 0x{r.offset:03X} | `{r.name}` | {r.access.value} | {r.width} | "
                         f"{r.reset} | {r.doc} |")
        lines.append("")
        for r in p.registers:
            if r.bits:
                lines += [f"`{r.name}` fields:", "", "| Bits | Field | Meaning |", "|---|---|---|"]
                for b in r.bits:
                    bits = str(b.lsb) if b.width == 1 else f"{b.lsb + b.width - 1}:{b.lsb}"
                    lines.append(f"| {bits} | `{b.name}` | {b.doc} |")
                lines.append("")
    lines += ["## SoC parameters", "", "| Parameter | Value |", "|---|---|"]
    lines += [f"| `{k}` | {v} |" for k, v in c.to_dict().items() if k != "engine"]
    return "\n".join(lines).rstrip("\n") + "\n"


#: Every doc :data:`REGENERATE_DOCS` rewrites: its path in the repository, and its generator
#: (called with no argument, for the default configuration).
DOCS = {
    "docs/commands.md": commands_markdown,
    "docs/memory_map.md": memory_map_markdown,
}


def write_docs(root="."):
    """Write every doc of :data:`DOCS` under the repository ``root``; returns the paths.

    A doc that is already up to date is left alone, modification time included.
    """
    return [write_file(Path(root) / name, generate(), only_if_changed=True)
            for name, generate in DOCS.items()]


def main(argv=None):
    """``python -m rvnpu.gen.docs [ROOT]``: rewrite the generated docs of the repository at
    ROOT (the current directory by default)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or args[:1] in (["-h"], ["--help"]):
        print(f"usage: {REGENERATE_DOCS} [ROOT]\n\n{main.__doc__}", file=sys.stderr)
        return 2
    root = Path(args[0] if args else ".")
    if not (root / "docs").is_dir():
        print(f"{root.resolve()} has no docs/ folder: run this from the repository root",
              file=sys.stderr)
        return 1
    for path in write_docs(root):
        print(path)
    return 0


if __name__ == "__main__":
    # Run as the imported module, not as __main__, so the docs name their generators by the
    # dotted names a reader can import.
    from rvnpu.gen.docs import main as _main
    sys.exit(_main())
