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
    "PostConstant",
    "LIST_ENTRY", "LIST_ENTRY_BYTES", "pack_list", "unpack_list", "is_built",
    "STORE_ADD_FUNCTS",
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
    CONFIG_STORE_POOL = 0x1A
    STORE_POOL     = 0x1B
    CONFIG_STORE_ADD  = 0x1C
    CONFIG_STORE_SKIP = 0x1D
    STORE_ADD      = 0x1E
    FENCE          = 0x20
    STATUS         = 0x21
    RUN            = 0x22
    # The post-processing unit (pooling and element-wise operations in main memory).
    CONFIG_POST     = 0x28
    CONFIG_POST_ADD = 0x29
    CONFIG_POST_OUT = 0x2A
    MAXPOOL         = 0x2B
    QLINEAR_ADD     = 0x2C


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
    FRONT = 3   #: answered by the front end itself (FENCE, STATUS, RUN)
    POST  = 4   #: the post-processing unit (MAXPOOL, QLINEAR_ADD)


class ErrorCode(enum.IntEnum):
    NONE       = 0
    BAD_FUNCT  = 1   #: unknown function code
    BAD_LOCAL  = 2   #: local rows out of range of their memory
    BAD_SIZE   = 3   #: a row wider than its memory's row
    BAD_MEMORY = 4   #: main-memory bytes outside the engine's window
    BAD_CONFIG = 5   #: a configuration value the engine cannot take
    BAD_IN_LIST = 6  #: RUN, FENCE or STATUS inside a command list (skipped)


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
    Command(Funct.CONFIG_STORE_POOL, Unit.STORE, (
        _f("kernel_h", 1, 0, 4, doc="window rows (at least 1)"),
        _f("kernel_w", 1, 4, 4, doc="window columns (at least 1)"),
        _f("step", 1, 8, 8, doc="ACC rows from one window to the next"),
        _f("pitch", 1, 16, ROW_BITS, doc="ACC rows from one window row to the next"),
    ), "Set the max-pool window of later STORE_POOLs, as ACC row offsets: a weight-stationary "
       "tile holds output pixels in ACC rows, so a window of conv output pixels is kernel_h "
       "runs of kernel_w consecutive rows, pitch rows apart. A zero kernel is refused "
       "(BAD_CONFIG). Reset: 1 x 1, step 1, pitch 0 (STORE_POOL is then STORE). An engine "
       "built without store_pool refuses it and STORE_POOL as unknown commands."),
    Command(Funct.STORE_POOL, Unit.STORE, (
        _f("dram_addr", 1, 0, 32, doc="byte address of the first output element"),
        _f("acc_row", 2, 0, ROW_BITS, doc="first ACC row of the first window"),
    ) + _LOCAL_TRANSFER,
        "A max-pool fused into the store: output row j (j < rows, written like STORE's) is "
        "the lane-wise max of the requantised ACC rows acc_row + j * step + y * pitch + x "
        "for y < kernel_h, x < kernel_w, so the pooled tensor is written and the conv output "
        "never is. The window's last row must lie in ACC (BAD_LOCAL). An engine built "
        "without requantisation refuses it as an unknown command."),
    Command(Funct.CONFIG_STORE_ADD, Unit.STORE, (
        _f("value", 1, 0, 32, doc="the constant's float32 bit pattern (finite when a STORE_ADD "
                                  "runs)"),
        _f("index", 2, 0, 2, doc="0: ratio_a, 1: ratio_b, 2: fixed (as CONFIG_POST_ADD's)"),
    ), "Set one float32 constant of later STORE_ADDs (index 3 is refused, BAD_CONFIG). Reset: "
       "all three 0. An engine built without store_add refuses CONFIG_STORE_ADD, "
       "CONFIG_STORE_SKIP and STORE_ADD as unknown commands."),
    Command(Funct.CONFIG_STORE_SKIP, Unit.STORE, (
        _f("offset", 1, 0, 32, doc="bytes from a STORE_ADD's dram_addr to its skip tensor "
                                   "(modulo 2**32); skip row j is at dram_addr + offset + j * "
                                   "stride, stride being CONFIG_STORE's"),
        _f("clamp_min", 2, 0, 9, True, doc="lowest output value"),
        _f("clamp_max", 2, 9, 9, True, doc="highest output value"),
        _f("elem_signed", 2, 18, 1, doc="skip elements and outputs are int8 (else uint8)"),
        _f("skip_first", 2, 19, 1, doc="the skip tensor is QLinearAdd's a and the requantised "
                                       "values its b (else the other way round)"),
    ), "Set where later STORE_ADDs read their skip tensor, its element type, the operand "
       "order and the output clamp (a ReLU after the Add). Reset: all 0."),
    Command(Funct.STORE_ADD, Unit.STORE, (
        _f("dram_addr", 1, 0, 32, doc="byte address of the first output element"),
        _f("acc_row", 2, 0, ROW_BITS, doc="first ACC row read"),
    ) + _LOCAL_TRANSFER,
        "A QLinearAdd fused into the store: ACC rows are requantised as by STORE (to the "
        "convolution's output, never written), then each element is added to the skip "
        "tensor's with QLINEAR_ADD's arithmetic, c = clamp(rint(fma(a, ratio_a, fma(b, "
        "ratio_b, fixed)))), and c is written like STORE's output. Elements are 8-bit. "
        "Refused: a constant that is not finite or a clamp outside elem_signed's element "
        "type or min > max (BAD_CONFIG), skip rows outside the window (BAD_MEMORY). The "
        "output may be the skip tensor itself (offset 0) if its rows do not overlap one "
        "another (stride >= cols, or one row), but must not overlap it otherwise. "
        "An engine built without requantisation or store_add refuses it as an unknown "
        "command."),
    Command(Funct.FENCE, Unit.FRONT, (),
        "Wait until every earlier command has finished, then answer the status word. Issue it "
        "with an rd other than x0: the engine holds its answer until the core takes it, and "
        "later commands wait behind it (with rd = x0 nothing ever takes it).",
        response=True),
    Command(Funct.STATUS, Unit.FRONT, (
        _f("clear", 1, 0, 1, doc="clear the sticky error after reading it"),
        _f("clear_done", 1, 1, 1, doc="clear list_done (acknowledge the interrupt) after "
                                      "reading it"),
    ), "Answer the status word at once, also while a command list runs. Like FENCE, issue it "
       "with an rd other than x0.", response=True),
    Command(Funct.RUN, Unit.FRONT, (
        _f("list_addr", 1, 0, 32, doc="byte address of the command list in main memory, a "
                                      "multiple of LIST_ENTRY_BYTES"),
        _f("count", 2, 0, 32, doc="entries in the list; 0 runs nothing but sets list_done"),
    ), "Run a command list from main memory: the engine fetches its entries (LIST_ENTRY) "
       "and runs them in order, as if the core had issued them. RUN first waits until every "
       "earlier command has finished; the list must not be written by its own commands (the "
       "engine reads ahead). While the list runs, commands from the core wait, except "
       "STATUS; list_busy is set until the list and everything it issued finished, then the "
       "sticky list_done (the engine's interrupt) is set. RUN, FENCE and STATUS inside a list "
       "are refused (BAD_IN_LIST) and skipped, and a refused entry does not stop the list. "
       "A list that is misaligned or reaches outside the main-memory window is refused "
       "(BAD_MEMORY) and nothing of it runs. An engine built without command_fetch refuses "
       "RUN as an unknown command."),
]}


class PostConstant(enum.IntEnum):
    """The float32 constants of QLINEAR_ADD, set by CONFIG_POST_ADD's ``index``."""
    RATIO_A = 0   #: scale of a over scale of c
    RATIO_B = 1   #: scale of b over scale of c
    FIXED   = 2   #: c's zero point less the scaled zero points of a and b


COMMANDS.update({c.funct: c for c in [
    Command(Funct.CONFIG_POST, Unit.POST, (
        _f("height", 1, 0, 12, doc="rows H of the (H, W, C) input tensor"),
        _f("width", 1, 12, 12, doc="columns W of the input tensor"),
        _f("kernel_h", 1, 24, 4, doc="MAXPOOL window rows (1..height)"),
        _f("kernel_w", 1, 28, 4, doc="MAXPOOL window columns (1..width)"),
        _f("channels", 2, 0, 16, doc="channels C of the input tensor"),
        _f("stride_h", 2, 16, 4, doc="MAXPOOL rows between windows (at least 1)"),
        _f("stride_w", 2, 20, 4, doc="MAXPOOL columns between windows (at least 1)"),
        _f("elem_signed", 2, 24, 1, doc="elements are int8 (else uint8), inputs and output"),
    ), "Set the tensor shape, pooling window and element type of later MAXPOOLs and "
       "QLINEAR_ADDs. A QLINEAR_ADD adds height * width * channels elements. An engine built "
       "without post_unit refuses the five post-processing commands as unknown commands."),
    Command(Funct.CONFIG_POST_ADD, Unit.POST, (
        _f("value", 1, 0, 32, doc="the constant's float32 bit pattern (finite)"),
        _f("index", 2, 0, 2, doc=", ".join(f"{int(k)}: {k.name.lower()}"
                                           for k in PostConstant)),
    ), "Set one float32 constant of later QLINEAR_ADDs (index 3 is refused)."),
    Command(Funct.CONFIG_POST_OUT, Unit.POST, (
        _f("out_addr", 1, 0, 32, doc="byte address of the first output element"),
        _f("clamp_min", 2, 0, 16, True, doc="lowest output value"),
        _f("clamp_max", 2, 16, 16, True, doc="highest output value"),
    ), "Set the output address and the output clamp (a fused ReLU) of later MAXPOOLs and "
       "QLINEAR_ADDs. When one runs, clamp_min must not exceed clamp_max and both must fit "
       "the element type."),
    Command(Funct.MAXPOOL, Unit.POST, (
        _f("in_addr", 1, 0, 32, doc="byte address of the (H, W, C) input tensor"),
    ), "Max-pool an NHWC tensor without padding: out[oy][ox][c] = clamp(max over the "
       "kernel_h x kernel_w window at (oy * stride_h, ox * stride_w)), windows crossing the "
       "far edge dropped, written at out_addr as an (OH, OW, C) tensor. Input and output "
       "must not overlap."),
    Command(Funct.QLINEAR_ADD, Unit.POST, (
        _f("a_addr", 1, 0, 32, doc="byte address of the first operand"),
        _f("b_addr", 2, 0, 32, doc="byte address of the second operand"),
    ), "ONNX QLinearAdd of height * width * channels elements: c = clamp(rint(fma(a, "
       "ratio_a, fma(b, ratio_b, fixed)))) in float32, rounded half to even, written at "
       "out_addr. The output may be either input exactly, but must not overlap them "
       "otherwise."),
]})


#: Words of one command-list entry, in order, each a little-endian 32-bit word: the function
#: code (its low 7 bits; the rest are ignored), op1, op2 and a reserved word (write 0).
LIST_ENTRY = ("funct", "op1", "op2", "reserved")

#: Bytes of one command-list entry; RUN's list_addr is a multiple of it.
LIST_ENTRY_BYTES = 4 * len(LIST_ENTRY)


#: Layout of the 32-bit status word answered by FENCE and STATUS.
STATUS_FIELDS = (
    _f("busy", 1, 0, 1, doc="some command is still in flight"),
    _f("error", 1, 1, 1, doc="sticky: a command was refused since the last clear"),
    _f("list_busy", 1, 2, 1, doc="a command list (RUN) is running"),
    _f("list_done", 1, 3, 1, doc="sticky: a command list finished since the last "
                                 "clear_done; the engine's interrupt line"),
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


def pack_list(commands):
    """The bytes of a command list holding ``(funct, op1, op2)`` commands, for RUN."""
    out = bytearray()
    for funct, op1, op2 in commands:
        words = {"funct": int(funct) & 0x7f, "op1": int(op1), "op2": int(op2), "reserved": 0}
        for name in LIST_ENTRY:
            out += (words[name] & 0xffffffff).to_bytes(4, "little")
    return bytes(out)


def unpack_list(data):
    """The ``(funct, op1, op2)`` commands of command-list bytes (whole entries only)."""
    commands = []
    for at in range(0, len(data) - LIST_ENTRY_BYTES + 1, LIST_ENTRY_BYTES):
        words = {name: int.from_bytes(data[at + 4 * i:at + 4 * i + 4], "little")
                 for i, name in enumerate(LIST_ENTRY)}
        commands.append((words["funct"] & 0x7f, words["op1"], words["op2"]))
    return commands


def unpack_status(word):
    return {f.name: _unpack(f, (word, 0)) for f in STATUS_FIELDS}


#: The commands an engine built with ``store_add`` adds.
STORE_ADD_FUNCTS = (Funct.CONFIG_STORE_ADD, Funct.CONFIG_STORE_SKIP, Funct.STORE_ADD)


def is_built(funct, config):
    """Whether an engine built with ``config`` (an ``EngineConfig``) has the unit that runs
    command ``funct``: without it the command is refused as an unknown function."""
    cmd = _command(funct)
    if cmd.unit == Unit.POST:
        return bool(config.post_unit)
    if cmd.funct == Funct.RUN:
        return bool(config.command_fetch)
    if cmd.funct in (Funct.CONFIG_STORE_POOL, Funct.STORE_POOL):
        return bool(config.store_pool)
    if cmd.funct in STORE_ADD_FUNCTS:
        return config.with_store_add
    return True


def field_of(funct, name):
    """The :class:`Field` called ``name`` of command ``funct`` (for the HDL decoder)."""
    for f in _command(funct).fields:
        if f.name == name:
            return f
    raise IsaError(f"{Funct(funct).name} has no field {name!r}")
