"""The engine's front end against the command set's rules, written again from the spec.

:func:`frontend_harness` feeds :class:`~rvnpu.hdl.engine.frontend.Frontend` any command stream
(every function code and operand, held until taken), any unit and answer back-pressure, and
retire pulses from units that finish only commands they were given, in order. A reference
(:class:`_Reference`) recomputes from :mod:`rvnpu.spec.commands` what the command being
handled must do: its error code in the configuration the earlier commands left, the unit it
goes to, the local rows and main-memory bytes it reads and writes. It keeps its own copy of
the configuration registers and of the sticky error, updated when the next command is taken
(the front end holds one command at a time and takes the next only once it is done).

Groups (each proved on its own, a smaller problem for the solver):

``hazards``
    A dispatched command never conflicts with an unfinished command of another unit (writes
    what it reads or writes, or reads what it writes): the solver picks any command of any
    unit to track, from its dispatch to its retire.
``refusal``
    An illegal command is never run, leaves the configuration as it was, and sets the sticky
    error, as every later FENCE or STATUS answer shows; a legal one does not.
``order``
    No command is lost or run twice: each dispatch or answer belongs to the command taken,
    once, on the unit its function names, with its fields and the configuration before it;
    a legal command is dispatched or answered before the next is taken; FENCE waits for all.
``serial``
    With ``hazards="serial"``: a command is dispatched only while the other units have
    nothing unfinished.
``window``
    No LOAD or STORE reaching outside ``[0, mem_bytes)`` is dispatched, whether reckoned from
    the command's fields or from the narrowed payload the unit runs; nor a STORE_ADD whose
    skip tensor does.
"""

from dataclasses import replace

from amaranth.asserts import AnyConst, AnySeq
from amaranth.hdl import Assume, Cat, Const, Module, Mux, ResetSignal, Signal, Value, signed
from amaranth.lib import data

from rvnpu.formal.properties import Properties
from rvnpu.formal.streams import _drive_stream
from rvnpu.hdl.command_port import CommandLayout
from rvnpu.hdl.engine import frontend
from rvnpu.spec.commands import (Dataflow, ErrorCode, Funct, PostConstant, QP_ROWS,
                                 STATUS_FIELDS, Space, field_of)
from rvnpu.spec.config import EngineConfig
from rvnpu.spec.requant import reset_mode


__all__ = ["FRONTEND_ENGINE", "FRONTEND_SERIAL_ENGINE", "GROUPS", "drive_units", "free_frontend",
           "frontend_harness", "range_ring_harness", "status_field"]

#: A small engine, so that the solver's problem stays small: 2x2, shallow memories, two
#: commands in flight per unit, one requantisation mode, no command fetcher, no post unit.
FRONTEND_ENGINE = EngineConfig(rows=2, cols=2, spad_depth=16, acc_depth=16, qp_depth=4,
                               bus_width=32, mem_bytes=1024, queue_depth=2,
                               requant_modes="tflite", command_fetch=False, post_unit=False)

#: The same with ``hazards="serial"``: a command waits until the other units are idle.
FRONTEND_SERIAL_ENGINE = replace(FRONTEND_ENGINE, hazards="serial")

GROUPS = ("hazards", "refusal", "order", "window", "serial")
UNITS = ("load", "exec", "store")

_LOCAL = data.StructLayout({"space": 2, "lo": 16, "hi": 16})
_BYTES = data.StructLayout({"lo": 42, "hi": 42})
#: What a command touches: local rows written and read (two ranges), main-memory bytes read
#: and written. An empty range has lo >= hi.
_RANGES = data.StructLayout({"lw": _LOCAL, "lr1": _LOCAL, "lr2": _LOCAL,
                             "mr": _BYTES, "mw": _BYTES})


def _field(cmd, funct, name):
    f = field_of(funct, name)
    value = (cmd.op1 if f.operand == 1 else cmd.op2)[f.lsb:f.lsb + f.width]
    return value.as_signed() if f.signed else value


def _nonempty(r):
    return r.lo < r.hi


def _bytes_overlap(a, b):
    return _nonempty(a) & _nonempty(b) & (a.lo < b.hi) & (b.lo < a.hi)


def _local_overlap(a, b):
    return (a.space == b.space) & _bytes_overlap(a, b)


def _conflict(a, b):
    """``a`` writes what ``b`` reads or writes, or reads what ``b`` writes."""
    local = [_local_overlap(a.lw, x) for x in (b.lw, b.lr1, b.lr2)]
    local += [_local_overlap(x, b.lw) for x in (a.lr1, a.lr2)]
    memory = [_bytes_overlap(a.mw, b.mw), _bytes_overlap(a.mw, b.mr),
              _bytes_overlap(a.mr, b.mw)]
    return Cat(*local, *memory).any()


#: CONFIG_STORE_SKIP's fields under the names of the registers (and store payload members)
#: that hold them: its clamp is the addition's, beside CONFIG_REQUANT's.
_SKIP_KEYS = {"offset": "skip_offset", "clamp_min": "add_clamp_min",
              "clamp_max": "add_clamp_max", "elem_signed": "elem_signed",
              "skip_first": "skip_first"}


class _Configuration:
    """The configuration registers, full width, at their reset values (as the golden model's).
    With STORE_ADD built, also its registers: ``add_constants`` (CONFIG_STORE_ADD's three
    float32 bit patterns, by index) and those of :data:`_SKIP_KEYS`."""

    NAMES = {Funct.CONFIG_EXEC: ("dataflow", "a_signed", "b_signed", "a_zero", "b_zero"),
             Funct.CONFIG_LOAD: ("stride",),
             Funct.CONFIG_STORE: ("stride", "qp_row"),
             Funct.CONFIG_STORE_POOL: ("kernel_h", "kernel_w", "step", "pitch"),
             Funct.CONFIG_REQUANT: ("out_zero", "mode", "clamp_min", "clamp_max")}

    def __init__(self, c):
        self._store_add = c.with_store_add
        w = c.in_width
        init = {"dataflow": Dataflow.OS if c.with_os else Dataflow.WS, "a_signed": 1,
                "b_signed": 1, "mode": reset_mode(c.built_requant_modes).code,
                "clamp_min": -(1 << (w - 1)), "clamp_max": (1 << (w - 1)) - 1,
                "kernel_h": 1, "kernel_w": 1, "step": 1}
        self.regs = {}
        for funct, names in self.NAMES.items():
            for name in names:
                f = field_of(funct, name)
                key = "load_stride" if funct == Funct.CONFIG_LOAD else (
                    "store_stride" if name == "stride" else name)
                self.regs[key] = Signal(signed(f.width) if f.signed else f.width,
                                        init=int(init.get(name, 0)), name=f"ref_{key}")
        if self._store_add:
            # All 0 at reset.
            for name, key in _SKIP_KEYS.items():
                f = field_of(Funct.CONFIG_STORE_SKIP, name)
                self.regs[key] = Signal(signed(f.width) if f.signed else f.width,
                                        name=f"ref_{key}")
            self.regs["add_constants"] = [Signal(32, name=f"ref_add_{k.name.lower()}")
                                          for k in PostConstant]

    def __getattr__(self, name):
        return self.__dict__["regs"][name]

    def update(self, m, cmd):
        """Take the legal configuration command ``cmd`` into the registers."""
        for funct, names in self.NAMES.items():
            with m.If(cmd.funct == funct):
                for name in names:
                    key = "load_stride" if funct == Funct.CONFIG_LOAD else (
                        "store_stride" if name == "stride" else name)
                    m.d.sync += self.regs[key].eq(_field(cmd, funct, name))
        if self._store_add:
            with m.If(cmd.funct == Funct.CONFIG_STORE_SKIP):
                m.d.sync += [self.regs[key].eq(_field(cmd, Funct.CONFIG_STORE_SKIP, name))
                             for name, key in _SKIP_KEYS.items()]
            with m.If(cmd.funct == Funct.CONFIG_STORE_ADD):
                index = _field(cmd, Funct.CONFIG_STORE_ADD, "index")
                for k, reg in zip(PostConstant, self.add_constants):
                    with m.If(index == k):
                        m.d.sync += reg.eq(_field(cmd, Funct.CONFIG_STORE_ADD, "value"))

    def add_ok(self):
        """A STORE_ADD may run: its constants are finite (exponent not all ones) and its clamp
        is ordered and inside its element type (``EngineModel._add_config_ok``)."""
        lo = Mux(self.elem_signed, -128, 0)
        hi = Mux(self.elem_signed, 127, 255)
        finite = Cat(*(reg[23:31] != 0xFF for reg in self.add_constants)).all()
        return (finite & (lo <= self.add_clamp_min) & (self.add_clamp_min <= self.add_clamp_max)
                & (self.add_clamp_max <= hi))


class _Reference:
    """What command ``cmd`` must do in configuration ``cfg``: ``code`` (its ErrorCode),
    ``to`` (the unit it goes to, if any), ``answers`` (FENCE, STATUS), ``configures``,
    ``ranges`` (what it touches), ``end`` (LOAD/STORE: past the last byte), ``skip_end``
    (STORE_ADD: past the last byte of its skip tensor, which starts at ``skip_addr``,
    ``dram_addr + offset`` modulo 2**32) and ``acc_rows`` (a store's ACC rows from its first
    to past the last it reads: a STORE_POOL's windows reach past its rows, as
    ``EngineModel.store_extent`` says)."""

    def __init__(self, m, c, cmd, cfg):
        self.code = Signal(4, name="ref_code")
        self.to = {u: Signal(name=f"ref_to_{u}") for u in UNITS}
        self.answers = Signal(name="ref_answers")
        self.configures = Signal(name="ref_configures")
        self.ranges = Signal(_RANGES, name="ref_ranges")
        self.end = Signal(42, name="ref_end")
        self.skip_addr = Signal(32, name="ref_skip_addr")
        self.skip_end = Signal(42, name="ref_skip_end")
        self.transfer = Signal(name="ref_transfer")     # LOAD/STORE moving some bytes
        self.acc_rows = Signal(20, name="ref_acc_rows")
        fld = lambda funct, name: _field(cmd, funct, name)
        code, ranges = self.code, self.ranges
        w = c.in_width

        def element_ok(value, is_signed):
            return Mux(is_signed, (value >= -(1 << (w - 1))) & (value < (1 << (w - 1))),
                       (value >= 0) & (value < (1 << w)))

        # A stride of 2 * mem_bytes or more counts as 2 * mem_bytes: with two rows or more the
        # transfer leaves the window either way, and the solver multiplies narrow numbers.
        far = 2 * c.mem_bytes

        def transfer(rows, cols, addr, stride, row_bytes):
            short = Mux(stride >= far, far, stride[:far.bit_length()])
            span = Mux(rows > 1, (rows - 1) * short, 0) + row_bytes
            m.d.comb += [self.end.eq(addr + span),
                         self.transfer.eq((rows != 0) & (cols != 0))]
            if c.with_store_add:
                m.d.comb += self.skip_end.eq(self.skip_addr + span)

        with m.Switch(cmd.funct):
            with m.Case(Funct.LOAD):
                m.d.comb += self.to["load"].eq(1)
                space, row = fld(Funct.LOAD, "space"), fld(Funct.LOAD, "local_row")
                rows, cols = fld(Funct.LOAD, "rows"), fld(Funct.LOAD, "cols")
                addr = fld(Funct.LOAD, "dram_addr")
                depth, cap, es = Signal(16), Signal(8), Signal(3)
                for s, (d, k, e) in {Space.SPAD_A: (c.spad_depth, c.rows, c.elem_bytes),
                                     Space.SPAD_B: (c.spad_depth, c.cols, c.elem_bytes),
                                     Space.ACC: (c.acc_depth, c.cols, 4),
                                     Space.QP: (c.qp_depth, c.cols, 4)}.items():
                    with m.If(space == s):
                        m.d.comb += [depth.eq(d), cap.eq(k), es.eq(e)]
                transfer(rows, cols, addr, cfg.load_stride, cols * es)
                with m.If(self.transfer):
                    with m.If(row + rows > depth):
                        m.d.comb += code.eq(ErrorCode.BAD_LOCAL)
                    with m.Elif(cols > cap):
                        m.d.comb += code.eq(ErrorCode.BAD_SIZE)
                    with m.Elif(self.end > c.mem_bytes):
                        m.d.comb += code.eq(ErrorCode.BAD_MEMORY)
                    m.d.comb += [ranges.lw.space.eq(space), ranges.lw.lo.eq(row),
                                 ranges.lw.hi.eq(row + rows),
                                 ranges.mr.lo.eq(addr), ranges.mr.hi.eq(self.end)]
            with m.Case(Funct.STORE, Funct.STORE_ACC, Funct.STORE_POOL,
                        *((Funct.STORE_ADD,) if c.with_store_add else ())):
                m.d.comb += self.to["store"].eq(1)
                raw = cmd.funct == Funct.STORE_ACC
                add = (cmd.funct == Funct.STORE_ADD) if c.with_store_add else Const(0)
                row = fld(Funct.STORE, "acc_row")
                rows, cols = fld(Funct.STORE, "rows"), fld(Funct.STORE, "cols")
                addr = fld(Funct.STORE, "dram_addr")
                if c.with_store_add:
                    m.d.comb += self.skip_addr.eq((addr + cfg.skip_offset)[:32])
                transfer(rows, cols, addr, cfg.store_stride, cols * Mux(raw, 4, c.elem_bytes))
                # Output row j's window reads rows row + j * step + y * pitch + x.
                window = ((rows - 1) * cfg.step + (cfg.kernel_h - 1) * cfg.pitch
                          + cfg.kernel_w)
                acc_rows = self.acc_rows
                m.d.comb += acc_rows.eq(Mux(cmd.funct == Funct.STORE_POOL, window, rows))
                with m.If(~raw & int(not c.with_requant)):
                    m.d.comb += code.eq(ErrorCode.BAD_FUNCT)
                with m.Elif(self.transfer):
                    with m.If(row + acc_rows > c.acc_depth):
                        m.d.comb += code.eq(ErrorCode.BAD_LOCAL)
                    with m.Elif(cols > c.cols):
                        m.d.comb += code.eq(ErrorCode.BAD_SIZE)
                    if c.with_store_add:
                        with m.Elif(add & ~cfg.add_ok()):
                            m.d.comb += code.eq(ErrorCode.BAD_CONFIG)
                        with m.Elif(add & (self.skip_end > c.mem_bytes)):
                            m.d.comb += code.eq(ErrorCode.BAD_MEMORY)
                    with m.Elif(self.end > c.mem_bytes):
                        m.d.comb += code.eq(ErrorCode.BAD_MEMORY)
                with m.If(self.transfer):
                    m.d.comb += [ranges.lr1.space.eq(Space.ACC), ranges.lr1.lo.eq(row),
                                 ranges.lr1.hi.eq(row + acc_rows),
                                 ranges.mw.lo.eq(addr), ranges.mw.hi.eq(self.end)]
                    with m.If(add):
                        # The skip tensor: main memory the store unit reads.
                        m.d.comb += [ranges.mr.lo.eq(self.skip_addr),
                                     ranges.mr.hi.eq(self.skip_end)]
                    with m.If(~raw):
                        m.d.comb += [ranges.lr2.space.eq(Space.QP), ranges.lr2.lo.eq(cfg.qp_row),
                                     ranges.lr2.hi.eq(cfg.qp_row + QP_ROWS)]
            with m.Case(Funct.COMPUTE):
                m.d.comb += self.to["exec"].eq(1)
                R = c.rows
                is_os = cfg.dataflow == Dataflow.OS
                steps, k_valid = fld(Funct.COMPUTE, "steps"), fld(Funct.COMPUTE, "k_valid")
                a, b, cr = (fld(Funct.COMPUTE, n) for n in ("a_row", "b_row", "c_row"))
                if R & (R - 1) == 0:    # whole blocks of R rows, without a divider
                    log = R.bit_length() - 1
                    whole = ((steps + R - 1) >> log) << log
                else:
                    whole = (steps + R - 1) // R * R
                a_n = Mux(is_os, whole, steps)
                b_n = Mux(is_os, steps, k_valid)
                c_n = Mux(is_os, R, steps)
                with m.If(steps != 0):
                    with m.If((a + a_n > c.spad_depth) | (b + b_n > c.spad_depth) |
                              (cr + c_n > c.acc_depth)):
                        m.d.comb += code.eq(ErrorCode.BAD_LOCAL)
                    with m.Elif(~is_os & (k_valid > R)):
                        m.d.comb += code.eq(ErrorCode.BAD_SIZE)
                    m.d.comb += [ranges.lr1.space.eq(Space.SPAD_A), ranges.lr1.lo.eq(a),
                                 ranges.lr1.hi.eq(a + a_n),
                                 ranges.lr2.space.eq(Space.SPAD_B), ranges.lr2.lo.eq(b),
                                 ranges.lr2.hi.eq(b + b_n),
                                 ranges.lw.space.eq(Space.ACC), ranges.lw.lo.eq(cr),
                                 ranges.lw.hi.eq(cr + c_n)]
            with m.Case(Funct.CONFIG_EXEC):
                df = fld(Funct.CONFIG_EXEC, "dataflow")
                supported = Mux(df == Dataflow.OS, int(c.with_os), int(c.with_ws))
                ok = (supported &
                      element_ok(fld(Funct.CONFIG_EXEC, "a_zero"),
                                 fld(Funct.CONFIG_EXEC, "a_signed")) &
                      element_ok(fld(Funct.CONFIG_EXEC, "b_zero"),
                                 fld(Funct.CONFIG_EXEC, "b_signed")))
                m.d.comb += [self.configures.eq(1),
                             code.eq(Mux(ok, 0, ErrorCode.BAD_CONFIG))]
            with m.Case(Funct.CONFIG_LOAD):
                m.d.comb += self.configures.eq(1)
            with m.Case(Funct.CONFIG_STORE_POOL):
                empty = ((fld(Funct.CONFIG_STORE_POOL, "kernel_h") == 0) |
                         (fld(Funct.CONFIG_STORE_POOL, "kernel_w") == 0))
                m.d.comb += [self.configures.eq(1),
                             code.eq(Mux(empty, ErrorCode.BAD_CONFIG, 0))]
            if c.with_store_add:
                with m.Case(Funct.CONFIG_STORE_ADD):
                    bad = fld(Funct.CONFIG_STORE_ADD, "index") >= len(PostConstant)
                    m.d.comb += [self.configures.eq(1),
                                 code.eq(Mux(bad, ErrorCode.BAD_CONFIG, 0))]
                with m.Case(Funct.CONFIG_STORE_SKIP):
                    m.d.comb += self.configures.eq(1)
            with m.Case(Funct.CONFIG_STORE):
                bad = fld(Funct.CONFIG_STORE, "qp_row") + QP_ROWS > c.qp_depth
                m.d.comb += [self.configures.eq(1),
                             code.eq(Mux(bad, ErrorCode.BAD_LOCAL, 0))]
            with m.Case(Funct.CONFIG_REQUANT):
                lo = fld(Funct.CONFIG_REQUANT, "clamp_min")
                hi = fld(Funct.CONFIG_REQUANT, "clamp_max")
                mode = fld(Funct.CONFIG_REQUANT, "mode")
                built = Cat(Const(0, 1), *(mode == b.code for b in c.built_requant_modes)).any()
                fits = (((lo >= -(1 << (w - 1))) & (hi < (1 << (w - 1)))) |
                        ((lo >= 0) & (hi <= min((1 << w) - 1, (1 << 15) - 1))))
                m.d.comb += [self.configures.eq(1),
                             code.eq(Mux(built & (lo <= hi) & fits, 0, ErrorCode.BAD_CONFIG))]
            with m.Case(Funct.FENCE, Funct.STATUS):
                m.d.comb += self.answers.eq(1)
            with m.Default():
                m.d.comb += code.eq(ErrorCode.BAD_FUNCT)


def _store_add_configuration(c, sp, cfg):
    """The store payload carries STORE_ADD's registers, whatever the command (none without
    STORE_ADD built)."""
    if not c.with_store_add:
        return []
    return [*(getattr(sp, key) == getattr(cfg, key) for key in _SKIP_KEYS.values()
              if key != "skip_offset"),
            *(sp.constants[i] == reg for i, reg in enumerate(cfg.add_constants))]


def _store_add_payload(c, sp, cur, cfg, ref):
    """What a store payload must say about STORE_ADD: whether the command is one, where its
    skip tensor starts (all of it where it moves bytes) and its registers."""
    if not c.with_store_add:
        return []
    add = cur.funct == Funct.STORE_ADD
    return [sp.add == add, _same(sp.skip_addr, ref.skip_addr, add & ref.transfer),
            *_store_add_configuration(c, sp, cfg)]


def status_field(word, name):
    """Field ``name`` of the status word ``word``, as :data:`STATUS_FIELDS` places it."""
    f = next(f for f in STATUS_FIELDS if f.name == name)
    return word[f.lsb:f.lsb + f.width]


def _same(narrow, value, matters):
    """A narrowed payload field holds ``value``: its low bits always, all of it where the
    unit uses it (a checked command's used fields fit the narrow field)."""
    return Mux(matters, narrow == value, narrow == value[:len(narrow)])


def drive_units(m, dut, units):
    """The units behind the front end ``dut``: any back-pressure, and each finishes only
    commands it was given, in order. Returns ``(fire, dispatched, retired)``, dicts by unit
    name: its dispatch handshake this cycle, and how many commands it was given and finished
    (4-bit counters)."""
    fire, dispatched, retired = {}, {}, {}
    for u in units:
        port = getattr(dut, u)
        fire[u] = Signal(name=f"{u}_fire")
        dispatched[u], retired[u] = Signal(4, name=f"{u}_dispatched"), Signal(
            4, name=f"{u}_retired")
        retire = Signal(name=f"{u}_retire")
        m.d.comb += [port.ready.eq(AnySeq(1)), fire[u].eq(port.valid & port.ready),
                     retire.eq(AnySeq(1) & (dispatched[u] != retired[u])),
                     getattr(dut, f"{u}_retire").eq(retire)]
        m.d.sync += [dispatched[u].eq(dispatched[u] + fire[u]),
                     retired[u].eq(retired[u] + retire)]
    return fire, dispatched, retired


def free_frontend(m, config, frontend_class=None):
    """The front end under check (``frontend_class`` replaces it: a mutated copy), out of reset,
    fed any commands the stream rules allow and any answer readiness: the set-up every
    front-end harness shares."""
    m.d.comb += Assume(~ResetSignal())
    dut = (frontend_class or frontend.Frontend)(config)
    m.submodules.dut = dut
    _drive_stream(m, dut.cmd, CommandLayout.size)
    m.d.comb += dut.rsp.ready.eq(AnySeq(1))
    return dut


def frontend_harness(groups=GROUPS[:4], *, frontend_class=None, config=FRONTEND_ENGINE):
    """A :class:`~rvnpu.hdl.engine.frontend.Frontend` for ``config`` with the properties of
    ``groups``; ``frontend_class`` replaces it (a mutated copy, to show they can fail)."""
    if config.command_fetch or config.post_unit:
        raise ValueError("frontend_harness checks engines without command_fetch and post_unit")
    c = config
    m = Module()
    dut = free_frontend(m, c, frontend_class)

    fire, dispatched, retired = drive_units(m, dut, UNITS)
    answered = Signal()
    m.d.comb += answered.eq(dut.rsp.valid & dut.rsp.ready)
    taken = dut.cmd.valid & dut.cmd.ready
    outcome = Cat(*fire.values(), answered)

    # The command being handled, the configuration before it, the sticky error before it.
    cur = Signal(CommandLayout)
    has_cur, open_ = Signal(), Signal()         # a command was taken; it is not yet run
    cfg = _Configuration(c)
    ref = _Reference(m, c, cur, cfg)
    err_code, err_funct, err_count = Signal(4), Signal(7), Signal(16)
    refused_config = Signal()                   # a configuration command was refused
    with m.If(taken):
        m.d.sync += [cur.eq(dut.cmd.payload), has_cur.eq(1), open_.eq(1)]
        with m.If(has_cur & (ref.code != 0)):
            with m.If(err_code == 0):
                m.d.sync += [err_code.eq(ref.code), err_funct.eq(cur.funct)]
            m.d.sync += err_count.eq(Mux(err_count == 0xffff, err_count, err_count + 1))
            with m.If(ref.configures):
                m.d.sync += refused_config.eq(1)
        with m.Elif(has_cur & ref.configures):
            cfg.update(m, cur)
        with m.Elif(has_cur & (cur.funct == Funct.STATUS) & _field(cur, Funct.STATUS, "clear")):
            m.d.sync += [err_code.eq(0), err_funct.eq(0), err_count.eq(0)]
    with m.Elif(outcome.any()):
        m.d.sync += open_.eq(0)

    legal = has_cur & (ref.code == 0)
    runs = Cat(*ref.to.values(), ref.answers).any()
    p = Properties(m)
    groups = set(groups)

    if "order" in groups:
        p.check("one_outcome_a_cycle", outcome.any(), (outcome & (outcome - 1)) == 0)
        p.check("run_once", outcome.any(), open_)
        for u in UNITS:
            p.check(f"{u}_gets_its_commands", fire[u], legal & ref.to[u])
        p.check("answers_fence_and_status", answered, legal & ref.answers)
        p.check("none_lost", taken & has_cur & legal & runs, ~open_)
        p.check("fence_waits_for_all", answered & (cur.funct == Funct.FENCE),
                Cat(dispatched[u] == retired[u] for u in UNITS).all())
        lp, ep, sp = dut.load.payload, dut.exec.payload, dut.store.payload
        fld = lambda funct, name: _field(cur, funct, name)
        load_moves = ref.transfer
        p.check("load_payload", fire["load"], Cat(
            _same(lp.dram_addr, fld(Funct.LOAD, "dram_addr"), load_moves),
            lp.space == fld(Funct.LOAD, "space"),
            _same(lp.row, fld(Funct.LOAD, "local_row"), load_moves),
            lp.rows == fld(Funct.LOAD, "rows"), lp.cols == fld(Funct.LOAD, "cols"),
            _same(lp.stride, cfg.load_stride, load_moves & (lp.rows > 1))).all())
        steps = fld(Funct.COMPUTE, "steps")
        p.check("exec_payload", fire["exec"], Cat(
            _same(ep.a_row, fld(Funct.COMPUTE, "a_row"), steps != 0),
            _same(ep.b_row, fld(Funct.COMPUTE, "b_row"), ref.ranges.lr2.lo < ref.ranges.lr2.hi),
            _same(ep.c_row, fld(Funct.COMPUTE, "c_row"), steps != 0),
            *(getattr(ep, n) == fld(Funct.COMPUTE, n) for n in ("steps", "k_valid",
                                                                 "accumulate")),
            *(getattr(ep, n) == getattr(cfg, n) for n in _Configuration.NAMES[
                Funct.CONFIG_EXEC])).all())
        pool = cur.funct == Funct.STORE_POOL
        p.check("store_payload", fire["store"], Cat(
            sp.raw == (cur.funct == Funct.STORE_ACC),
            _same(sp.dram_addr, fld(Funct.STORE, "dram_addr"), ref.transfer),
            _same(sp.acc_row, fld(Funct.STORE, "acc_row"), ref.transfer),
            sp.rows == fld(Funct.STORE, "rows"), sp.cols == fld(Funct.STORE, "cols"),
            _same(sp.stride, cfg.store_stride, ref.transfer & (sp.rows > 1)),
            sp.qp_row == cfg.qp_row,
            *(getattr(sp, n) == getattr(cfg, n) for n in _Configuration.NAMES[
                Funct.CONFIG_REQUANT]),
            # A STORE or STORE_ACC is a 1 x 1 window of step 1; the pitch matters only
            # between the rows of a taller window.
            *(getattr(sp, n) == Mux(pool, getattr(cfg, n), 1)
              for n in ("kernel_h", "kernel_w", "step")),
            _same(sp.pitch, cfg.pitch, pool & ref.transfer & (cfg.kernel_h > 1)),
            *_store_add_payload(c, sp, cur, cfg, ref)).all())

    if "refusal" in groups:
        word = dut.rsp.payload
        p.check("answer_reports_refusals", answered & (err_count != 0), Cat(
            status_field(word, "error") == (err_code != 0),
            status_field(word, "error_code") == err_code,
            status_field(word, "error_funct") == err_funct,
            status_field(word, "error_count") == err_count).all())
        p.check("answer_reports_no_refusal", answered & (err_count == 0), Cat(
            status_field(word, "error") == 0, status_field(word, "error_count") == 0).all())
        p.check("refused_is_not_run", open_ & has_cur & (ref.code != 0), ~outcome.any())
        dispatch = Cat(*fire.values()).any()
        p.check("dispatch_carries_configuration", dispatch, Cat(
            dut.load.payload.stride == cfg.load_stride[:len(dut.load.payload.stride)],
            *(getattr(dut.exec.payload, n) == getattr(cfg, n)
              for n in _Configuration.NAMES[Funct.CONFIG_EXEC]),
            dut.store.payload.stride == cfg.store_stride[:len(dut.store.payload.stride)],
            dut.store.payload.qp_row == cfg.qp_row,
            *(getattr(dut.store.payload, n) == getattr(cfg, n)
              for n in _Configuration.NAMES[Funct.CONFIG_REQUANT]),
            *(getattr(dut.store.payload, n) == Mux(cur.funct == Funct.STORE_POOL,
                                                   getattr(cfg, n), 1)
              for n in ("kernel_h", "kernel_w", "step")),
            dut.store.payload.pitch == cfg.pitch[:len(dut.store.payload.pitch)],
            *_store_add_configuration(c, dut.store.payload, cfg)).all())
        p.reach("dispatch_after_refused_configuration", dispatch & refused_config)

    if "window" in groups:
        mem = c.mem_bytes
        for u in ("load", "store"):
            pl = getattr(dut, u).payload
            es = Mux(pl.space >= Space.ACC if u == "load" else pl.raw, 4, c.elem_bytes)
            moves = (pl.rows != 0) & (pl.cols != 0)
            payload_end = pl.dram_addr + (pl.rows - 1) * pl.stride + pl.cols * es
            p.check(f"{u}_inside_window", fire[u] & moves,
                    (ref.end <= mem) & (payload_end <= mem))
            p.reach(f"{u}_up_to_the_end", fire[u] & moves & (ref.end == mem))
        if c.with_store_add:
            # A STORE_ADD's skip tensor is read from the same span at skip_addr.
            pl = dut.store.payload
            moves = fire["store"] & pl.add & (pl.rows != 0) & (pl.cols != 0)
            skip_end = pl.skip_addr + (pl.rows - 1) * pl.stride + pl.cols * c.elem_bytes
            p.check("store_skip_inside_window", moves, (ref.skip_end <= mem) & (skip_end <= mem))
            p.reach("store_skip_up_to_the_end", moves & (ref.skip_end == mem))

    if "hazards" in groups:
        # The solver picks one command to track: the k-th dispatched to unit t.
        t, k = Signal(2), Signal(3)
        m.d.comb += [t.eq(AnyConst(2)), k.eq(AnyConst(3)), Assume(t < len(UNITS))]
        tracked = Signal(_RANGES)
        recorded = Signal()
        unfinished = Signal()
        for i, u in enumerate(UNITS):
            with m.If((t == i) & fire[u] & (dispatched[u] == k)):
                m.d.sync += [tracked.eq(ref.ranges), recorded.eq(1)]
            with m.If(t == i):
                m.d.comb += unfinished.eq(recorded & (retired[u] <= k))
        conflict = _conflict(ref.ranges, tracked)
        for i, u in enumerate(UNITS):
            beside = unfinished & (t != i)
            p.check(f"{u}_dispatch_conflicts_with_none", fire[u] & beside, ~conflict)
            p.reach(f"{u}_held_back", open_ & legal & ref.to[u] & beside & conflict &
                    ~fire[u])
    if "serial" in groups:
        for u in UNITS:
            others_busy = Cat(dispatched[o] != retired[o] for o in UNITS if o != u).any()
            p.check(f"{u}_waits_for_the_other_units", fire[u], ~others_busy)
            p.reach(f"{u}_held_back", open_ & legal & ref.to[u] & others_busy & ~fire[u])
    return m


def range_ring_harness(queue_class=None, *, depth=3):
    """The front end's ring of unfinished commands and their ranges (``UnitQueue``), alone,
    ``depth`` entries deep: pushes and retires come from the solver (a push only while not
    full, a retire only while some entry is live), one a cycle each, so the ring wraps within
    a few cycles. The solver tracks its ``k``-th push: until retired, any pushed range that
    overlaps it is reported as a conflict (none is forgotten, whichever slot it sits in); the
    count is the pushes less the retires, and the entries read as live are that many from the
    oldest."""
    m = Module()
    m.d.comb += Assume(~ResetSignal())
    # Narrow ranges: the ring's bookkeeping, not the width of what it keeps, is in question.
    layout = data.StructLayout({n: 2 for n in ("w_lo", "w_hi", "r1_lo", "r1_hi",
                                               "d_lo", "d_hi")})
    ranges = Signal(layout)
    retire = Signal()
    live_count = Signal(range(depth + 1))
    m.d.comb += [Value.cast(ranges).eq(AnySeq(layout.size)),
                 retire.eq(AnySeq(1) & (live_count != 0))]
    ring = (queue_class or frontend.UnitQueue)(m, "ring", depth, retire, ranges)
    m.d.comb += [ring.push.eq(AnySeq(1)), Assume(~ring.push | ~ring.full)]
    m.d.sync += live_count.eq(live_count + ring.push - retire)

    pushes, retires = Signal(4), Signal(4)
    m.d.sync += [pushes.eq(pushes + ring.push), retires.eq(retires + retire)]
    k = Signal(4)
    m.d.comb += k.eq(AnyConst(4))
    tracked, recorded = Signal(layout), Signal()
    with m.If(ring.push & (pushes == k)):
        m.d.sync += [tracked.eq(ranges), recorded.eq(1)]
    live = recorded & (retires <= k)
    write, read1, memory = (frontend.RANGE_PAIRS[n] for n in ("write", "read1", "memory"))
    pairs = [(write, write), (memory, memory), (read1, write)]
    p = Properties(m)
    for mine, theirs in pairs:
        overlap = frontend.ranges_overlap(*(getattr(ranges, n) for n in mine),
                                          *(getattr(tracked, n) for n in theirs))
        p.check(f"{mine[0][:-3]}_{theirs[0][:-3]}_kept", live & overlap,
                ring.conflicts([(mine, theirs)]))
    p.check("count", Const(1), ring.count == live_count)
    # The entries the ring reads as live are the count's from the oldest on, however it keeps
    # them: one left live after its retire would hold commands back on stale ranges.
    window = Cat(Mux(i >= ring.head, i - ring.head, i + depth - ring.head) < live_count
                 for i in range(depth))
    p.check("live_entries", Const(1), Cat(*ring.live) == window)
    p.reach("kept_after_wrapping", live & (k >= depth) & ring.conflicts([pairs[0]]))
    return m
