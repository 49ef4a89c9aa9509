"""The engine's C header and Markdown command reference, generated from the command set
(:mod:`rvnpu.spec.commands`, imported as ``isa``) and the config.

Firmware and documentation read the same Python data as the HDL and the golden model, so a field
moved in the command set moves everywhere at once. Nothing below spells a function code, an
offset or a width: every number comes from :data:`.isa.COMMANDS`, the enums,
:data:`.isa.STATUS_FIELDS` or :class:`.config.EngineConfig`.
"""

import inspect
import re
import textwrap

from rvnpu.gen.files import write_file
from rvnpu.gen.provenance import REGENERATE_DOCS, generated_notice, generator_name
from rvnpu.spec import commands as isa
from rvnpu.spec.config import EngineConfig


__all__ = ["HEADER_NAME", "c_header", "commands_markdown", "write_header"]


HEADER_NAME = "rvnpu_engine.h"

#: Enums exported as C constants and documented as code tables, in that order.
_ENUMS = (isa.Funct, isa.Space, isa.Unit, isa.ErrorCode, isa.Dataflow, isa.RequantMode,
          isa.PostConstant)

#: Module constants of the command set the header and the reference carry.
_CONSTANTS = ("ROW_BITS", "QP_ROWS", "LIST_ENTRY_BYTES")

_WIDTH = 100   # line length of generated text, as for the Python sources


# -- Reading the command set -----------------------------------------------------------------------

def _attribute_docs(obj):
    """``{name: doc}`` from the ``#:`` comments of ``obj``'s source.

    Python drops these comments at run time, so they are read from the source the way Sphinx
    does: a ``#:`` after an assignment on its line, or a block of ``#:`` lines just above it.
    """
    docs, pending = {}, []
    for line in inspect.getsource(obj).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        assignment = re.match(r"([A-Za-z_]\w*)\s*=(?!=)", stripped)
        if assignment:
            trailing = re.search(r"#:\s*(.*?)\s*$", stripped)
            text = trailing.group(1) if trailing else " ".join(pending)
            if text:
                docs[assignment.group(1)] = text
        pending = []
    return docs


def _snake(name):
    """``ErrorCode`` -> ``ERROR_CODE``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).upper()


def _rst_to(text, quote):
    """Turn reST literals and roles (````x````, ``:func:`x```) into ``quote + x + quote``."""
    text = re.sub(r":\w+:`~?\.?([^`]+)`", lambda m: quote + m.group(1) + quote, text)
    return re.sub(r"``([^`]+)``", lambda m: quote + m.group(1) + quote, text)


def _bits(field):
    msb = field.lsb + field.width - 1
    return str(field.lsb) if field.width == 1 else f"{msb}:{field.lsb}"


def _mask(field):
    return (1 << field.width) - 1


def _config_values(config):
    """Every parameter of ``config`` (``to_dict``) followed by its derived sizes and flags: the
    properties whose value is one number, flag or word (a C constant can hold nothing else)."""
    values = dict(config.to_dict())
    for name, attr in vars(type(config)).items():
        if isinstance(attr, property):
            value = getattr(config, name)
            if isinstance(value, (bool, int, str)):
                values[name] = value
    return values


# -- C header --------------------------------------------------------------------------------------

def _c_wrap(text, hang=0):
    """Comment text wrapped to the line length; ``*/`` inside it cannot end the comment early."""
    text = _rst_to(text, "").replace("*/", "* /")
    return textwrap.wrap(text, _WIDTH - 3, subsequent_indent=" " * hang,
                         break_on_hyphens=False) or [""]


def _c_comment(*paragraphs):
    """A one-line comment if it fits, else a block with a blank line between paragraphs."""
    lines = []
    for paragraph in paragraphs:
        lines += ([""] if lines else []) + (
            _c_wrap(paragraph) if isinstance(paragraph, str) else paragraph)
    if len(lines) == 1 and len(lines[0]) <= _WIDTH - 6:
        return [f"/* {lines[0]} */"]
    return ["/*"] + [f" * {line}".rstrip() for line in lines] + [" */"]


def _c_literal(name, value):
    """A C99 literal for one config value; 32-bit unsigned where ``int`` may be too small."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        if 0 <= value <= 0x7FFF_FFFF:
            return str(value)
        if 0 <= value <= 0xFFFF_FFFF:
            return f"{value}u"
        raise ValueError(f"config value {name}={value!r} does not fit a 32-bit C constant")
    if isinstance(value, str) and re.fullmatch(r"[\w .+-]*", value):
        return f'"{value}"'
    raise ValueError(f"config value {name}={value!r} has no C form")


def _c_signature(name, params):
    head = f"static inline rvnpu_cmd_t {name}("
    one_line = head + (", ".join(params) or "void") + ")"
    if len(one_line) <= _WIDTH:
        return [one_line]
    pad = ",\n" + " " * len(head)
    return (head + pad.join(params) + ")").split("\n")


def _c_enums():
    lines = []
    for cls in _ENUMS:
        prefix = f"RVNPU_{_snake(cls.__name__)}"
        member_docs = _attribute_docs(cls)
        lines += _c_comment(f"{cls.__name__}: {cls.__doc__}" if cls.__doc__ else cls.__name__)
        lines.append(f"enum rvnpu_{_snake(cls.__name__).lower()} {{")
        for member in cls:
            value = f"0x{member.value:02X}" if cls is isa.Funct else str(member.value)
            line = f"    {prefix}_{member.name} = {value},"
            if member.name in member_docs:
                line = f"{line:<35} " + _c_comment(member_docs[member.name])[0]
            lines.append(line)
        lines += ["};", ""]
    return lines


def _c_status():
    lines = _c_comment("Status word answered by FENCE and STATUS. *_MASK selects the field in "
                       "place; rvnpu_status_decode() unpacks every field.")
    for f in isa.STATUS_FIELDS:
        if f.signed:
            raise ValueError(f"status field {f.name} is signed, which the C decoder lacks")
        name = f"RVNPU_STATUS_WORD_{f.name.upper()}"
        lines += [
            f"#define {name}_SHIFT {f.lsb}",
            f"#define {name}_WIDTH {f.width}",
            f"#define {name}_MASK 0x{_mask(f) << f.lsb:08X}u",
        ]
    lines += ["", "typedef struct {"]
    for f in isa.STATUS_FIELDS:
        lines.append(f"    {'uint32_t ' + f.name + ';':<24}" + _c_comment(f.doc)[0])
    lines += [
        "} rvnpu_status_t;",
        "",
        "static inline rvnpu_status_t rvnpu_status_decode(uint32_t word)",
        "{",
        "    rvnpu_status_t status;",
    ]
    for f in isa.STATUS_FIELDS:
        lines.append(f"    status.{f.name} = (word >> {f.lsb}) & 0x{_mask(f):X}u;")
    lines += ["    return status;", "}", ""]
    return lines


def _c_command(cmd):
    macro = f"RVNPU_{cmd.name}"
    unit = cmd.unit.name.lower()
    answer = "; answers with the status word" if cmd.response else ""
    field_lines = []
    for f in cmd.fields:
        kind = f"signed {f.width}-bit" if f.signed else f"{f.width}-bit"
        field_lines += _c_wrap(f"{f.name}: op{f.operand}[{_bits(f)}], {kind}, {f.lo}..{f.hi}: "
                               f"{f.doc}", hang=4)
    lines = _c_comment(f"{cmd.name} (funct 0x{cmd.funct:02X}, {unit} unit{answer}): {cmd.doc}",
                       *([field_lines] if field_lines else []))
    lines.append(f"#define {macro}_RESPONSE {int(cmd.response)}")
    for f in cmd.fields:
        name = f"{macro}_{f.name.upper()}"
        lines += [
            f"#define {name}_OPERAND {f.operand}",
            f"#define {name}_LSB {f.lsb}",
            f"#define {name}_WIDTH {f.width}",
        ]
    params = [f"{'int32_t' if f.signed else 'uint32_t'} {f.name}" for f in cmd.fields]
    lines += _c_signature(f"rvnpu_encode_{cmd.name.lower()}", params)
    lines += ["{", f"    rvnpu_cmd_t cmd = {{(uint32_t)RVNPU_FUNCT_{cmd.name}, 0u, 0u}};"]
    for f in cmd.fields:
        value = f"(uint32_t){f.name}" if f.signed else f.name
        shift = f" << {f.lsb}" if f.lsb else ""
        lines.append(f"    cmd.op{f.operand} |= ({value} & 0x{_mask(f):X}u){shift};")
    lines += ["    return cmd;", "}", ""]
    return lines


def _c_list_entry():
    """The command-list entry RUN reads, a struct of the words :data:`.isa.LIST_ENTRY` names,
    and its encoder from a command."""
    doc = _attribute_docs(isa)["LIST_ENTRY"]
    lines = _c_comment(f"One entry of a command list (RUN): {doc}")
    lines += ["typedef struct {", f"    uint32_t {', '.join(isa.LIST_ENTRY)};",
              "} rvnpu_list_entry_t;", "",
              "typedef char rvnpu_list_entry_size_check["
              "sizeof(rvnpu_list_entry_t) == RVNPU_LIST_ENTRY_BYTES ? 1 : -1];", ""]
    values = {"funct": "cmd.funct", "op1": "cmd.op1", "op2": "cmd.op2"}
    lines += ["static inline rvnpu_list_entry_t rvnpu_list_entry(rvnpu_cmd_t cmd)", "{",
              "    rvnpu_list_entry_t entry;"]
    lines += [f"    entry.{name} = {values.get(name, '0u')};" for name in isa.LIST_ENTRY]
    lines += ["    return entry;", "}", ""]
    return lines


def _check_unique_names(text):
    """Two generated names that collide would make the header silently wrong, so refuse."""
    names = re.findall(r"^#define (\w+)|^    (RVNPU_\w+) =|rvnpu_cmd_t (rvnpu_\w+)\(", text, re.M)
    seen = set()
    for name in ("".join(groups) for groups in names):
        if name in seen:
            raise ValueError(f"generated C name {name} is defined twice")
        seen.add(name)


def c_header(config):
    """The C99 header ``rvnpu_engine.h`` for an engine built with ``config``.

    Encoders mask each value to its field width where :func:`.isa.encode` would raise, so
    firmware checks ranges itself (the ranges are in each encoder's comment).
    """
    if not isinstance(config, EngineConfig):
        raise TypeError(f"config must be an EngineConfig, not {config!r}")
    guard = _snake(HEADER_NAME.replace(".", "_"))
    lines = _c_comment(
        f"{HEADER_NAME}: command encoders and constants of the rvnpu matrix engine. "
        + generated_notice(c_header, isa, repr(config), regenerate=generator_name(write_header)))
    lines += [f"#ifndef {guard}", f"#define {guard}", "", "#include <stdint.h>", ""]

    lines += _c_comment("Engine parameters (EngineConfig), then the sizes derived from them.")
    for name, value in _config_values(config).items():
        lines.append(f"#define RVNPU_ENGINE_{name.upper()} {_c_literal(name, value)}")
    lines.append("")

    constant_docs = _attribute_docs(isa)
    for name in _CONSTANTS:
        lines += _c_comment(constant_docs[name])
        lines += [f"#define RVNPU_{name} {getattr(isa, name)}", ""]

    lines += _c_enums()
    lines += _c_status()
    lines += _c_comment(
        "One engine command: the funct7, rs1 and rs2 of a custom-0 R-type instruction.",
        "The encoders below mask each value to its field's width, where isa.encode refuses a "
        "value out of range: check ranges (listed with each command) before encoding.")
    lines += ["typedef struct {", "    uint32_t funct, op1, op2;", "} rvnpu_cmd_t;", ""]
    for cmd in isa.COMMANDS.values():
        lines += _c_command(cmd)
    lines += _c_list_entry()
    lines += [f"#endif /* {guard} */", ""]
    text = "\n".join(lines)
    _check_unique_names(text)
    return text


# -- Markdown reference ----------------------------------------------------------------------------

def _md(text):
    """Prose from the command set as Markdown: reST literals become code; table and emphasis
    marks stay text."""
    parts = re.split(r"(`[^`]*`)", _rst_to(text, "`"))
    return "".join(part if part.startswith("`") else re.sub(r"([\\*|<])", r"\\\1", part)
                   for part in parts)


def _md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines + [""]


def _md_fields(fields, with_operand=True):
    header = ("Field", "Operand", "Bits", "Signed", "Range", "Meaning")
    rows = [(f"`{f.name}`", f"op{f.operand} (rs{f.operand})", _bits(f),
             "yes" if f.signed else "no", f"{f.lo}..{f.hi}", _md(f.doc)) for f in fields]
    if not with_operand:
        header, rows = header[:1] + header[2:], [row[:1] + row[2:] for row in rows]
    return _md_table(header, rows)


def commands_markdown(config=None):
    """The Markdown reference of the command set; with ``config``, also its engine parameters."""
    if config is not None and not isinstance(config, EngineConfig):
        raise TypeError(f"config must be an EngineConfig or None, not {config!r}")
    lines = [
        "# rvnpu command reference",
        "",
        f"<!-- {generated_notice(commands_markdown, isa)}",
        f"     Regenerate from the repository root with: {REGENERATE_DOCS} -->",
        "",
    ]
    lines += [_md(paragraph.replace("\n", " ")) + "\n"
              for paragraph in inspect.cleandoc(isa.__doc__).split("\n\n")]

    summary = [(f"[{c.name}](#{c.name.lower()})", f"0x{c.funct:02X}", c.unit.name,
                "yes" if c.response else "no") for c in isa.COMMANDS.values()]
    lines += ["## Commands", ""]
    lines += _md_table(("Command", "funct", "Unit", "Answers status"), summary)
    for cmd in isa.COMMANDS.values():
        lines += [f"### {cmd.name}", "",
                  f"`funct` 0x{cmd.funct:02X}, {cmd.unit.name} unit"
                  + (", answers with the status word." if cmd.response else "."), "",
                  _md(cmd.doc), ""]
        lines += _md_fields(cmd.fields) if cmd.fields else ["No fields; both operands are 0.", ""]

    constant_docs = _attribute_docs(isa)
    lines += ["## Status word", "", _md(constant_docs["STATUS_FIELDS"]), ""]
    lines += _md_fields(isa.STATUS_FIELDS, with_operand=False)

    lines += ["## Codes", ""]
    for cls in _ENUMS:
        if cls is isa.Funct:
            continue   # listed with the commands above
        member_docs = _attribute_docs(cls)
        lines += [f"### {cls.__name__}", ""]
        if cls.__doc__:
            lines += [_md(cls.__doc__), ""]
        rows = [(f"`{m.name}`", m.value, _md(member_docs.get(m.name, ""))) for m in cls]
        lines += _md_table(("Name", "Value", "Meaning"), rows)

    lines += ["## Constants", ""]
    rows = [(f"`{name}`", getattr(isa, name), _md(constant_docs[name])) for name in _CONSTANTS]
    lines += _md_table(("Name", "Value", "Meaning"), rows)

    if config is not None:
        lines += ["## Engine parameters", ""]
        rows = [(f"`{name}`", value) for name, value in _config_values(config).items()]
        lines += _md_table(("Parameter", "Value"), rows)
    return "\n".join(lines).rstrip("\n") + "\n"


# -- Writing files ---------------------------------------------------------------------------------

def write_header(config, path):
    """Write :func:`c_header` of ``config`` to ``path`` atomically; returns the path."""
    return write_file(path, c_header(config))
