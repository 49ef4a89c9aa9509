"""Generator parameters of the matrix engine.

One frozen dataclass is the single source of every size in the engine: the HDL, the golden model,
the generated C header and the documentation all read it, so they cannot disagree. Variants are
made with :func:`dataclasses.replace`, which re-runs the checks.
"""

from dataclasses import dataclass, asdict, field, fields

from rvnpu.spec import requant


__all__ = ["EngineConfig", "ConfigError", "DATAFLOWS", "REQUANT_MODES", "HAZARDS",
           "check_choice", "check_int", "reject_unknown"]


DATAFLOWS = ("os", "ws", "both")
REQUANT_MODES = requant.CHOICES      # each mode's name, "both" (all of them) or "none"
HAZARDS = ("ranges", "serial")


class ConfigError(ValueError):
    """A generator parameter is out of range; the message names the parameter and its value."""


def check_int(name, value, lo, hi):
    """Refuse ``value`` unless it is an integer from ``lo`` to ``hi``, naming ``name``."""
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigError(f"{name} must be an integer from {lo} to {hi}, not {value!r}")


def check_choice(name, value, choices):
    """Refuse ``value`` unless it is one of ``choices``, naming ``name`` and listing them."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {value!r}")


def _check_pow2(name, value, lo, hi):
    check_int(name, value, lo, hi)
    if value & (value - 1):
        raise ConfigError(f"{name} must be a power of two, not {value!r}")


def reject_unknown(cls, data, what):
    """Refuse a parameter dictionary naming a field ``cls`` (a dataclass) does not have."""
    unknown = set(data) - {f.name for f in fields(cls)}
    if unknown:
        raise ConfigError(f"unknown {what} parameter {sorted(unknown)[0]!r}")


def _param(default, text, choices=None):
    """A parameter with its one-line help ``text`` and, for a word, the words allowed: the
    command line's options are made from these (:mod:`rvnpu.cli.options`)."""
    return field(default=default, metadata={"help": text, "choices": choices})


@dataclass(frozen=True)
class EngineConfig:
    """Sizes of one matrix engine.

    Parameters
    ----------
    rows, cols : int
        Shape of the systolic array (1..32 each). ``rows`` runs along the reduction dimension in
        weight-stationary mode and along M in output-stationary mode; ``cols`` runs along N.
    in_width : int
        Width of operand elements: 4, 8 (default) or 16 bits. Elements occupy one byte in main
        memory (two for 16-bit).
    acc_width : int
        Width of the accumulators (default 32), at least ``2 * in_width``. Sums wrap modulo
        ``2**acc_width`` (as int32 arithmetic in the frameworks does); products of
        zero-point-corrected operands, which need up to ``2 * in_width + 2`` bits, wrap the
        same way, which changes nothing modulo ``2**acc_width``.
    dataflow : str
        ``"os"`` (output-stationary), ``"ws"`` (weight-stationary) or ``"both"``, chosen at run
        time by ``CONFIG_EXEC``.
    spad_depth : int
        Rows in each of the two scratchpads (A: ``rows`` elements a row, B: ``cols`` elements).
    acc_depth : int
        Rows of the accumulator memory (``cols`` int32 values a row).
    qp_depth : int
        Rows of the requantisation-parameter memory (``cols`` 32-bit values a row).
    bus_width : int
        Data width of the main-memory port in bits (32, 64 or 128).
    mem_bytes : int
        Size of the main-memory window the DMA may touch; transfers outside it are errors.
    queue_depth : int
        Commands each unit (load, execute, store) may hold in flight.
    requant_lanes : int
        Requantisation lanes in the store unit, a divisor of ``cols``; 0 (the default) means one
        a column. Each lane is a 32x32 multiplier (a 24x24 one too for ONNX Runtime rounding),
        the largest block of the engine after the array; with fewer lanes a stored row takes
        ``cols / requant_lanes`` cycles, which small FPGAs need and which costs little, as
        requantised stores are a small part of a GEMM's time.
    requant_modes : str
        Requantisation conventions built: ``"tflite"`` (gemmlowp fixed point), ``"ort"``
        (ONNX Runtime float32) or ``"both"`` (the default). ``CONFIG_REQUANT`` with a mode not
        built is refused. ``"none"`` builds no lane at all, for FPGAs too small for one:
        STORE is then an unknown command and the core requantises the int32 sums STORE_ACC
        writes (the C library's ``rvnpu_gemm`` does so), as CFU Playground's and VTA's
        designs leave requantisation to software.
    hazards : str
        How the front end keeps commands of different units in program order. ``"ranges"``
        (the default): a command waits only for unfinished commands whose memory ranges
        overlap its own, so loads, computes and stores of independent tiles run at once.
        ``"serial"``: it waits until the other units are idle. That needs no range tracking,
        which is most of the front end's area, and suits the smallest FPGAs, where the core
        issuing commands is slower than the engine anyway. Results are the same either way.
    command_fetch : bool
        Build the command fetcher (default True): RUN makes the engine read a list of commands
        from main memory and run it while the core sleeps or works on. Without it RUN is an
        unknown command and the core issues every command itself; the smallest FPGAs lack
        the room.
    post_unit : bool
        Build the post-processing unit (default True): MAXPOOL and QLINEAR_ADD run on int8/uint8
        tensors in main memory instead of on the core. Without it the five post-processing
        commands (CONFIG_POST, CONFIG_POST_ADD, CONFIG_POST_OUT, MAXPOOL, QLINEAR_ADD) are
        unknown commands.
    store_pool : bool
        Build STORE_POOL (default True): the store unit max-pools the requantised rows of a
        window, so a max-pool after a convolution never writes the convolution's output.
        Without it CONFIG_STORE_POOL and STORE_POOL are unknown commands and the compiler
        pools separately; the window's counters and range arithmetic cost about 600 logic
        cells, which the iCE40 UP5K lacks.
    store_add : bool
        Build STORE_ADD (default True): the store unit adds a skip tensor read from main memory
        to the requantised rows with QLinearAdd's arithmetic, so a residual Add after a
        convolution never writes the convolution's output nor reads it back. It takes a
        QLinearAdd pipeline a requantisation lane and a bus reader in the store. Only 8-bit
        elements with requantisation have it: otherwise, as without it, CONFIG_STORE_ADD,
        CONFIG_STORE_SKIP and STORE_ADD are unknown commands (see :attr:`with_store_add`).
    logic_macs : int
        Processing elements (of ``rows * cols``, the last in row order) whose multiplier is
        built from LUTs and adders instead of a DSP block (default 0: none). An array may then
        hold more MACs than the FPGA has multipliers, as a 16x16 array on an LFE5U-85F (156
        MULT18X18D) must. Results are the same either way.
    mac_latency : int
        Registers around each cell's multiplier, and so the cycles from its operands to its
        product: 2 (the default) registers the operands and the product, so that the
        multiplier, a DSP block where the part has them, is a path of its own, which the
        engine's clock needs at 50 MHz and more; 1 registers the operands only, the product
        going straight into the adder (on Gowin parts every register fed by anything but its
        own LUT takes a logic cell); 0 registers neither (the iCE40 UP5K lacks the room for
        the flip-flops). Every result of the array comes that many cycles later.
    range_stage : bool
        Work out a command's address ranges (``rows * stride``, the transfer's end, the local
        rows it touches) in two cycles of its own, from the front end's input register, rather
        than as the command is taken (default False): the products in the first, the sums in
        the second. The multipliers are then paths between registers, not behind the
        multiplexer that picks the command's source and ahead of the sums: they set the
        engine's clock on the ECP5 boards. Every command takes two cycles more in the front
        end.
    deep_lane : bool
        Requantisation lanes two stages deeper (default False): the accumulator and the
        parameters registered as they enter, and each wide product (TFLite's 32x32, ONNX
        Runtime's 24x24) in DSP-sized pieces summed a stage later. Both had been the engine's
        longest paths on the ECP5 boards once the range stage was in; a STORE's rows then
        finish two cycles later.
    load_stage : bool
        A register between the load unit and each local memory (default False): a row is
        written a cycle after the load unit assembles it, from a copy of its data kept for
        that memory alone, and the LOAD retires a cycle later. On a large part the memories
        sit far apart, and the one net from the load unit's assembled row to all of them was
        the ULX3S-85F's engine path.
    acc_stage : bool
        The accumulator row an added result needs read a cycle earlier and held in a
        register before the sum (default False), a write to the same row in between
        forwarded: the block RAM's output, then the 32-bit sum into the write, are paths of
        their own rather than one, which was the LFE5U-25F's engine path. The results are
        written when they were, so no command takes longer.
    unit_slices : bool
        A register slice between the front end and each unit (default True), so that a
        unit's readiness, and its work on the command it takes, are not in the front end's
        cycle; with ``queue_depth`` above 1 the execute unit's slice also holds one more
        COMPUTE. False connects the units to the front end directly, for the slices'
        flip-flops (about 140 logic cells on the iCE40 UP5K's design) where logic cells run
        out and the front end does not set the clock.
    zero_point_sums : bool
        The cells multiply the elements as they are, ``in_width`` bits each, and the zero
        points come off below the array with sums (default False; weight-stationary engines
        only). For the products of a tile's weights and one row of A::

            sum((a - za) * (w - zw)) = sum(a * w) - za * sum(w) - zw * sum(a - za)

        the array works out the middle term as one more step of each COMPUTE (every lane's
        ``a`` being ``za``), kept in a register a column, and the last term is one sum and
        one product a row, on a line beside the array. Unsigned elements enter the array
        with their top bit flipped, their zero point less ``2**(in_width - 1)``, so a cell is
        one signed ``in_width`` x ``in_width`` multiply-accumulate: the operand a DSP block's
        narrow multipliers take (two 8x8 products in an iCE40's SB_MAC16), and a smaller
        multiplier in logic. Results are the same; each COMPUTE takes a cycle more.
    sb_mac16_pairs : bool
        Two neighbouring cells of a row share one iCE40 SB_MAC16, each taking one of its two
        8x8 multipliers (default False; needs ``zero_point_sums`` and 8-bit elements). Yosys
        infers one product a block, so an array otherwise takes a block a cell. The Verilog
        then instantiates the primitive, which only iCE40 synthesis and a simulator given
        its model (Yosys's ``ice40/cells_sim.v``) understand; Amaranth's simulator does not.
    """

    # Each field's one-line help (and allowed words) is what `rvnpu` shows for its option.
    rows: int = _param(8, "systolic array rows (1..32)")
    cols: int = _param(8, "systolic array columns (1..32)")
    in_width: int = _param(8, "operand width in bits: 4, 8 or 16")
    acc_width: int = _param(32, "accumulator width in bits")
    dataflow: str = _param("both", "os, ws or both (chosen at run time)", DATAFLOWS)
    spad_depth: int = _param(4096, "rows of each scratchpad")
    acc_depth: int = _param(1024, "rows of the accumulator memory")
    qp_depth: int = _param(64, "rows of the requantisation-parameter memory")
    bus_width: int = _param(64, "main-memory port width in bits: 32, 64 or 128")
    mem_bytes: int = _param(1 << 16, "main-memory window of the DMA in bytes")
    queue_depth: int = _param(4, "commands in flight per unit")
    requant_lanes: int = _param(0, "requantisation lanes, a divisor of cols; 0: one a column")
    requant_modes: str = _param(
        "both", "requantisation built: tflite, ort, both or none (the core does it)",
        REQUANT_MODES)
    hazards: str = _param("ranges", "ranges (units overlap) or serial (smaller front end)",
                          HAZARDS)
    logic_macs: int = _param(0, "array cells that multiply in logic, not DSP blocks "
                                "(0..rows*cols)")
    command_fetch: bool = _param(True, "build the command fetcher (RUN runs command lists "
                                       "from main memory): 1 or 0")
    post_unit: bool = _param(True, "build the post-processing unit (MAXPOOL, QLINEAR_ADD in "
                                   "main memory): 1 or 0")
    store_pool: bool = _param(True, "build STORE_POOL (a max-pool fused into the store): "
                                    "1 or 0")
    store_add: bool = _param(True, "build STORE_ADD (a QLinearAdd fused into the store, 8-bit "
                                   "elements only): 1 or 0")
    mac_latency: int = _param(2, "registers around each cell's multiplier: 2 (operands and "
                                 "product), 1 (operands) or 0")
    range_stage: bool = _param(False, "front-end cycles of their own for a command's range "
                                      "arithmetic (two more a command): 1 or 0")
    deep_lane: bool = _param(False, "requantisation lanes two stages deeper (inputs "
                                    "registered, wide products in pieces): 1 or 0")
    load_stage: bool = _param(False, "a register between the load unit and each local "
                                     "memory (a LOAD retires a cycle later): 1 or 0")
    acc_stage: bool = _param(False, "the accumulator row an added result needs read a cycle "
                                    "earlier and held in a register: 1 or 0")
    unit_slices: bool = _param(True, "register slices between the front end and the units: "
                                     "1 or 0")
    zero_point_sums: bool = _param(False, "cells multiply raw elements, zero points taken off "
                                          "with sums below the array (dataflow ws): 1 or 0")
    sb_mac16_pairs: bool = _param(False, "two cells share one iCE40 SB_MAC16 (8x8 products; "
                                         "needs zero_point_sums): 1 or 0")

    def __post_init__(self):
        check_int("rows", self.rows, 1, 32)
        check_int("cols", self.cols, 1, 32)
        if self.in_width not in (4, 8, 16):
            raise ConfigError(f"in_width must be 4, 8 or 16, not {self.in_width!r}")
        check_int("acc_width", self.acc_width, 1, 32)
        if self.acc_width < 2 * self.in_width:
            raise ConfigError(
                f"acc_width must be at least {2 * self.in_width} to hold one "
                f"{self.in_width}-bit product, not {self.acc_width!r}")
        check_choice("dataflow", self.dataflow, DATAFLOWS)
        _check_pow2("spad_depth", self.spad_depth, 16, 1 << 14)
        _check_pow2("acc_depth", self.acc_depth, 16, 1 << 14)
        if self.acc_depth < self.rows:
            raise ConfigError(f"acc_depth must hold one {self.rows}-row tile, "
                              f"not {self.acc_depth!r}")
        _check_pow2("qp_depth", self.qp_depth, 4, 1 << 14)
        if self.bus_width not in (32, 64, 128):
            raise ConfigError(f"bus_width must be 32, 64 or 128, not {self.bus_width!r}")
        _check_pow2("mem_bytes", self.mem_bytes, 1 << 10, 1 << 31)
        check_int("queue_depth", self.queue_depth, 1, 16)
        check_int("requant_lanes", self.requant_lanes, 0, self.cols)
        if self.requant_lanes and self.cols % self.requant_lanes:
            raise ConfigError(f"requant_lanes must be 0 or divide cols ({self.cols}), "
                              f"not {self.requant_lanes!r}")
        check_choice("requant_modes", self.requant_modes, REQUANT_MODES)
        check_choice("hazards", self.hazards, HAZARDS)
        check_int("logic_macs", self.logic_macs, 0, self.rows * self.cols)
        check_int("mac_latency", self.mac_latency, 0, 2)
        for name in ("command_fetch", "post_unit", "store_pool", "store_add", "range_stage",
                     "deep_lane", "load_stage", "acc_stage", "unit_slices", "zero_point_sums",
                     "sb_mac16_pairs"):
            value = getattr(self, name)
            if isinstance(value, bool):
                continue
            if value in (0, 1) and isinstance(value, int):
                object.__setattr__(self, name, bool(value))
            else:
                raise ConfigError(f"{name} must be true or false (1 or 0), not {value!r}")
        if self.zero_point_sums and self.dataflow != "ws":
            raise ConfigError(f"zero_point_sums needs dataflow ws (an output-stationary cell "
                              f"keeps its sum in the array), not {self.dataflow!r}")
        if self.sb_mac16_pairs and not (self.zero_point_sums and self.in_width == 8):
            raise ConfigError("sb_mac16_pairs needs zero_point_sums and in_width 8 (an "
                              "SB_MAC16's halves multiply 8-bit operands)")

    # Derived sizes: properties, so that nothing derivable is stored twice.

    @property
    def elem_bytes(self):
        """Bytes an operand element takes in main memory."""
        return 2 if self.in_width == 16 else 1

    @property
    def bus_bytes(self):
        return self.bus_width // 8

    @property
    def with_os(self):
        return self.dataflow in ("os", "both")

    @property
    def with_ws(self):
        return self.dataflow in ("ws", "both")

    @property
    def with_store_add(self):
        """STORE_ADD is built: asked for, with 8-bit elements and requantisation."""
        return self.store_add and self.in_width == 8 and self.with_requant

    @property
    def lanes(self):
        """Requantisation lanes actually built."""
        return self.requant_lanes or self.cols

    @property
    def built_requant_modes(self):
        """Requantisation modes built (:class:`~rvnpu.spec.requant.Mode`), in code order."""
        return requant.modes_built(self.requant_modes)

    def with_requant_mode(self, name):
        """The requantisation mode called ``name`` is built."""
        return any(mode.name == name for mode in self.built_requant_modes)

    # Shorthands for the two modes there are; code that serves every mode reads the set.

    @property
    def with_tflite(self):
        return self.with_requant_mode("tflite")

    @property
    def with_ort(self):
        return self.with_requant_mode("ort")

    @property
    def with_requant(self):
        """The engine requantises (STORE exists)."""
        return bool(self.built_requant_modes)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        reject_unknown(cls, data, "engine")
        return cls(**data)
