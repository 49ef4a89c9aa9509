"""The engine's command set, written once.

A command is ``(funct, op1, op2)``: a 7-bit function code and two 32-bit operands, the shape of a
RISC-V custom-0 R-type instruction (``funct7``, ``rs1``, ``rs2``). Every field below is read by the
HDL decoder (:func:`field_of`), by the numpy golden model (:func:`decode`), by the generated C
header and by the generated documentation; none of them spells an offset by hand.
"""

import enum
from dataclasses import dataclass

from rvnpu.spec.requant import MODES as _REQUANT_MODES, RequantMode


__all__ = [
    "Funct", "Space", "Unit", "ErrorCode", "Dataflow", "RequantMode",
    "Field", "Command", "COMMANDS", "STATUS_FIELDS", "QP_ROWS",
    "ROW_BITS", "encode", "decode", "field_of", "pack_fields", "IsaError",
]


#: Local row addresses are 14 bits; a space tag of 2 bits sits above them.
ROW_BITS = 14

#: Rows of the requantisation-parameter memory one STORE reads: bias, multiplier (or float32
#: scale), shift.
QP_ROWS = 3


class IsaError(ValueError):
    """A command cannot be encoded: unknown function or a field value that does not fit."""


class Funct(enum.IntEnum):
    CONFIG_EXEC    = 0x00
    CONFIG_LOAD    = 0x01
    CONFIG_STORE   = 0x02
    CONFIG_REQUANT = 0x03
    LOAD           = 0x08
    COMPUTE        = 0x10
    STORE          = 0x18
    STORE_ACC      = 0x19
    FENCE          = 0x20
    STATUS         = 0x21


class Space(enum.IntEnum):
    """Local memories a LOAD can write."""
    SPAD_A = 0   #: left operand scratchpad, ``rows`` elements a row
    SPAD_B = 1   #: top operand (weight) scratchpad, ``cols`` elements a row
    ACC    = 2   #: accumulators, ``cols`` values of ``acc_width`` bits a row
    QP     = 3   #: requantisation parameters, ``cols`` 32-bit values a row


class Unit(enum.IntEnum):
    """Which queue a command goes to; commands of one unit run in order."""
    LOAD  = 0
    EXEC  = 1
    STORE = 2
    FRONT = 3   #: answered by the front end itself (FENCE, STATUS)


class ErrorCode(enum.IntEnum):
    NONE       = 0
    BAD_FUNCT  = 1   #: unknown function code
    BAD_LOCAL  = 2   #: local rows out of range of their memory
    BAD_SIZE   = 3   #: a row wider than its memory's row
    BAD_MEMORY = 4   #: main-memory bytes outside the engine's window
    BAD_CONFIG = 5   #: a configuration value the engine cannot take


class Dataflow(enum.IntEnum):
    OS = 0
    WS = 1


@dataclass(frozen=True)
class Field:
    name: str
    operand: int     # 1 or 2
    lsb: int
    width: int
    signed: bool = False
    doc: str = ""

    @property
    def lo(self):
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def hi(self):
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1


@dataclass(frozen=True)
class Command:
    funct: Funct
    unit: Unit
    fields: tuple
    doc: str
    response: bool = False

    @property
    def name(self):
        return self.funct.name


def _f(name, operand, lsb, width, signed=False, doc=""):
    return Field(name, operand, lsb, width, signed, doc)


_LOCAL_TRANSFER = (
    _f("rows", 2, 16, 8, doc="rows to move; 0 makes the command a no-op"),
    _f("cols", 2, 24, 8, doc="elements a row; 0 makes the command a no-op"),
)

COMMANDS = {c.funct: c for c in [
    Command(Funct.CONFIG_EXEC, Unit.EXEC, (
        _f("dataflow", 1, 0, 1, doc="0: output-stationary, 1: weight-stationary"),
        _f("a_signed", 1, 1, 1, doc="A elements are signed (else unsigned)"),
        _f("b_signed", 1, 2, 1, doc="B elements are signed (else unsigned)"),
        _f("a_zero", 2, 0, 16, True, doc="zero point subtracted from every A element"),
        _f("b_zero", 2, 16, 16, True, doc="zero point subtracted from every B element"),
    ), "Set the dataflow, operand signedness and input zero points for later COMPUTEs. "
       "Waits for the array to drain. Zero points must lie in the element type's range."),
    Command(Funct.CONFIG_LOAD, Unit.LOAD, (
        _f("stride", 1, 0, 32, doc="bytes between rows in main memory"),
    ), "Set the main-memory row stride of later LOADs (0 repeats one row)."),
    Command(Funct.CONFIG_STORE, Unit.STORE, (
        _f("stride", 1, 0, 32, doc="bytes between rows in main memory"),
        _f("qp_row", 2, 0, ROW_BITS, doc="first of the 3 QP rows (bias, multiplier/scale, "
                                          "shift) later STOREs use"),
    ), "Set the main-memory row stride and requantisation-parameter rows of later STOREs."),
    Command(Funct.CONFIG_REQUANT, Unit.STORE, (
        _f("out_zero", 1, 0, 16, True, doc="output zero point"),
        _f("mode", 1, 16, max(1, max(m.code for m in _REQUANT_MODES).bit_length()),
           doc=", ".join(f"{int(m.code)}: {m.doc}" for m in _REQUANT_MODES)),
        _f("clamp_min", 2, 0, 16, True, doc="lowest output value (after the zero point)"),
        _f("clamp_max", 2, 16, 16, True, doc="highest output value (after the zero point)"),
    ), "Set the requantisation of later STOREs. ReLU and ReLU6 are clamps. clamp_min must not "
       "exceed clamp_max and both must fit the output element; the mode must be one the "
       "engine was built with (requant_modes)."),
    Command(Funct.LOAD, Unit.LOAD, (
        _f("dram_addr", 1, 0, 32, doc="byte address of the first element in main memory"),
        _f("local_row", 2, 0, ROW_BITS, doc="first local row written"),
        _f("space", 2, ROW_BITS, 2, doc="local memory: 0 SPAD_A, 1 SPAD_B, 2 ACC, 3 QP"),
    ) + _LOCAL_TRANSFER,
        "Copy rows from main memory into a local memory. Scratchpad elements take elem_bytes "
        "each in main memory, ACC and QP values 4. The rest of each local row is zeroed."),
    Command(Funct.COMPUTE, Unit.EXEC, (
        _f("a_row", 1, 0, ROW_BITS, doc="first SPAD_A row"),
        _f("b_row", 1, ROW_BITS, ROW_BITS, doc="first SPAD_B row"),
        _f("c_row", 2, 0, ROW_BITS, doc="first ACC row written"),
        _f("steps", 2, ROW_BITS, 10, doc="OS: reduction length K; WS: A rows M. 0: no-op"),
        _f("k_valid", 2, 24, 6, doc="WS: weight rows used (<= rows); ignored in OS"),
        _f("accumulate", 2, 30, 1, doc="add to ACC instead of overwriting it"),
    ), "One tile matmul on zero-point-corrected operands. "
       "OS: ACC[c+r][n] (+)= sum_{k<steps} SPAD_A[a + (k//rows)*rows + r][k%rows] * "
       "SPAD_B[b+k][n] for r < rows (A is held as rows x rows blocks, one A row a local row). "
       "WS: ACC[c+m][n] (+)= sum_{r<k_valid} SPAD_A[a+m][r] * SPAD_B[b+r][n] for m < steps."),
    Command(Funct.STORE, Unit.STORE, (
        _f("dram_addr", 1, 0, 32, doc="byte address of the first output element"),
        _f("acc_row", 2, 0, ROW_BITS, doc="first ACC row read"),
    ) + _LOCAL_TRANSFER,
        "Requantise ACC rows (plus bias) and write them to main memory, elem_bytes an element. "
        "An engine built without requantisation (requant_modes none) refuses it as an "
        "unknown command."),
    Command(Funct.STORE_ACC, Unit.STORE, (
        _f("dram_addr", 1, 0, 32, doc="byte address of the first int32 value"),
        _f("acc_row", 2, 0, ROW_BITS, doc="first ACC row read"),
    ) + _LOCAL_TRANSFER,
        "Write ACC rows to main memory as raw int32 (sign-extended), without bias."),
    Command(Funct.FENCE, Unit.FRONT, (),
        "Wait until every earlier command has finished, then answer the status word.",
        response=True),
    Command(Funct.STATUS, Unit.FRONT, (
        _f("clear", 1, 0, 1, doc="clear the sticky error after reading it"),
    ), "Answer the status word at once.", response=True),
]}


#: Layout of the 32-bit status word answered by FENCE and STATUS.
STATUS_FIELDS = (
    _f("busy", 1, 0, 1, doc="some command is still in flight"),
    _f("error", 1, 1, 1, doc="sticky: a command was refused since the last clear"),
    _f("error_code", 1, 4, 4, doc="ErrorCode of the first refused command"),
    _f("error_funct", 1, 8, 7, doc="function code of the first refused command"),
    _f("error_count", 1, 16, 16, doc="refused commands since the last clear (saturates)"),
)


def _command(funct):
    try:
        return COMMANDS[Funct(funct)]
    except ValueError:
        raise IsaError(f"unknown engine function {funct!r}") from None


def pack_fields(fields, values, what="command"):
    """Pack ``values`` (a dict) into operands; returns ``(op1, op2)``."""
    ops = [0, 0]
    names = {f.name for f in fields}
    for name in values:
        if name not in names:
            raise IsaError(f"{what} has no field {name!r}")
    for f in fields:
        v = int(values.get(f.name, 0))
        if not f.lo <= v <= f.hi:
            raise IsaError(f"{what} field {f.name} must be from {f.lo} to {f.hi}, not {v}")
        ops[f.operand - 1] |= (v & ((1 << f.width) - 1)) << f.lsb
    return ops[0], ops[1]


def encode(funct, **values):
    """Encode one command as ``(funct, op1, op2)`` integers."""
    cmd = _command(funct)
    op1, op2 = pack_fields(cmd.fields, values, cmd.name)
    return int(cmd.funct), op1, op2


def _unpack(f, ops):
    v = (ops[f.operand - 1] >> f.lsb) & ((1 << f.width) - 1)
    if f.signed and v >> (f.width - 1):
        v -= 1 << f.width
    return v


def decode(funct, op1, op2):
    """Decode ``(funct, op1, op2)`` into ``(Command, {field: value})``.

    Raises :class:`IsaError` for an unknown function code.
    """
    cmd = _command(funct)
    return cmd, {f.name: _unpack(f, (op1, op2)) for f in cmd.fields}


def unpack_status(word):
    return {f.name: _unpack(f, (word, 0)) for f in STATUS_FIELDS}


def field_of(funct, name):
    """The :class:`Field` called ``name`` of command ``funct`` (for the HDL decoder)."""
    for f in _command(funct).fields:
        if f.name == name:
            return f
    raise IsaError(f"{Funct(funct).name} has no field {name!r}")
