"""Numpy golden model of the matrix engine: the whole command set, sequentially.

The hardware runs its load, execute and store units concurrently, but its front end holds back any
command whose local or main-memory ranges overlap an unfinished command of another unit. So a
program's effects are exactly those of running its commands one at a time, in order, which is
what this model does. It decodes commands with :mod:`rvnpu.spec.commands`, the same spec the HDL
uses, and checks them with :func:`check`, which the HDL's decoder mirrors.
"""

import numpy as np

from rvnpu.spec.config import EngineConfig
from rvnpu.spec.commands import (Funct, Space, ErrorCode, Dataflow, RequantMode, QP_ROWS,
                                 LIST_ENTRY_BYTES, IsaError, Unit, decode, pack_fields,
                                 PostConstant, STATUS_FIELDS, STORE_ADD_FUNCTS, unpack_list)
from rvnpu.spec.requant import mode_coded, reset_mode
from rvnpu.sim.golden.eltwise import qlinear_add_scaled
from rvnpu.sim.golden.post import PostRegisters, check_post, execute_post, float_of_bits
from rvnpu.sim.golden.requant import qp_values, requantize


__all__ = ["EngineModel", "element_range", "output_range", "clamp_ok"]


def element_range(in_width, signed):
    """Values an operand element (and its zero point) can take."""
    if signed:
        return -(1 << (in_width - 1)), (1 << (in_width - 1)) - 1
    return 0, (1 << in_width) - 1


def output_range(in_width, signed=True):
    """Values a requantised output element can take, signed or unsigned, within the 16-bit
    clamp fields."""
    lo, hi = element_range(in_width, signed)
    return lo, min(hi, (1 << 15) - 1)


def clamp_ok(in_width, clamp_min, clamp_max):
    """A clamp range must fit the signed or the unsigned output element, so that the stored
    bytes read back unambiguously."""
    return clamp_min <= clamp_max and any(
        lo <= clamp_min and clamp_max <= hi
        for lo, hi in (output_range(in_width, True), output_range(in_width, False)))


#: The post-processing unit's commands (run by :mod:`.post`).
_POST_FUNCTS = frozenset(f for f in Funct if decode(f, 0, 0)[0].unit == Unit.POST)


def _wrap(values, width):
    """Two's complement wrap of integers to ``width`` bits (as the accumulators do)."""
    values = np.asarray(values, dtype=np.int64)
    mask = (1 << width) - 1
    values = values & mask
    return np.where(values >> (width - 1), values - (1 << width), values)


class EngineModel:
    """Golden model of one engine.

    Parameters
    ----------
    config : EngineConfig
    memory : numpy.ndarray of uint8, optional
        Main memory (``config.mem_bytes`` bytes). Shared, not copied, so a test can place
        operands and read results.

    Members
    -------
    spad_a, spad_b : numpy arrays of raw ``in_width``-bit elements
    acc : numpy array of ``acc_width``-bit signed values
    qp : numpy array of uint32 words
    """

    def __init__(self, config=EngineConfig(), memory=None):
        self.config = c = config
        self.memory = (np.zeros(c.mem_bytes, np.uint8) if memory is None else memory)
        assert self.memory.dtype == np.uint8 and self.memory.size == c.mem_bytes
        self.spad_a = np.zeros((c.spad_depth, c.rows), np.int64)
        self.spad_b = np.zeros((c.spad_depth, c.cols), np.int64)
        self.acc = np.zeros((c.acc_depth, c.cols), np.int64)
        self.qp = np.zeros((c.qp_depth, c.cols), np.uint32)
        # Configuration registers, at their reset values.
        self.dataflow = Dataflow.OS if c.with_os else Dataflow.WS
        self.a_signed = self.b_signed = 1
        self.a_zero = self.b_zero = 0
        self.load_stride = 0
        self.store_stride = 0
        self.qp_row = 0
        self.out_zero = 0
        # The reset convention is the first one built (TFLite, unless built without it).
        self.mode = reset_mode(c.built_requant_modes).code
        self.clamp_min, self.clamp_max = output_range(c.in_width)
        #: STORE_POOL's window (CONFIG_STORE_POOL): a 1 x 1 window at reset
        self.pool_kernel_h, self.pool_kernel_w, self.pool_step, self.pool_pitch = 1, 1, 1, 0
        #: STORE_ADD's settings (CONFIG_STORE_ADD, CONFIG_STORE_SKIP), all 0 at reset
        self.add_constants = [0] * len(PostConstant)        # float32 bit patterns
        self.skip_offset = 0
        self.add_clamp_min = self.add_clamp_max = 0
        self.add_elem_signed = self.add_skip_first = 0
        #: the post-processing unit's registers (CONFIG_POST, CONFIG_POST_ADD, CONFIG_POST_OUT)
        self.post = PostRegisters()
        # Status.
        self.error_code = ErrorCode.NONE
        self.error_funct = 0
        self.error_count = 0
        self.list_done = 0
        #: multiply-accumulate steps of useful work, for utilisation figures
        self.macs = 0

    # -- Memories --------------------------------------------------------------------------------

    def _space(self, space):
        return {Space.SPAD_A: self.spad_a, Space.SPAD_B: self.spad_b,
                Space.ACC: self.acc, Space.QP: self.qp}[Space(space)]

    def _elem_bytes(self, space):
        return self.config.elem_bytes if space in (Space.SPAD_A, Space.SPAD_B) else 4

    # -- Checking --------------------------------------------------------------------------------

    def check(self, funct, f):
        """The :class:`ErrorCode` a decoded command gets in the current configuration."""
        c = self.config
        if Funct(funct) in _POST_FUNCTS:
            if not c.post_unit:
                return ErrorCode.BAD_FUNCT      # built without the post-processing unit
            return check_post(self.post, funct, f, c.mem_bytes)
        if funct == Funct.LOAD:
            if f["rows"] == 0 or f["cols"] == 0:
                return ErrorCode.NONE
            mem = self._space(f["space"])
            if f["local_row"] + f["rows"] > mem.shape[0]:
                return ErrorCode.BAD_LOCAL
            if f["cols"] > mem.shape[1]:
                return ErrorCode.BAD_SIZE
            return self._check_dram(f["dram_addr"], f["rows"], self.load_stride,
                                    f["cols"] * self._elem_bytes(f["space"]))
        if funct in (Funct.CONFIG_STORE_POOL, Funct.STORE_POOL) and not c.store_pool:
            return ErrorCode.BAD_FUNCT          # built without STORE_POOL
        if funct in STORE_ADD_FUNCTS and not c.with_store_add:
            return ErrorCode.BAD_FUNCT          # built without STORE_ADD
        if funct == Funct.CONFIG_STORE_ADD:
            return ErrorCode.BAD_CONFIG if f["index"] >= len(PostConstant) else ErrorCode.NONE
        if funct in (Funct.STORE, Funct.STORE_ACC, Funct.STORE_POOL, Funct.STORE_ADD):
            if funct != Funct.STORE_ACC and not c.with_requant:
                return ErrorCode.BAD_FUNCT      # built without requantisation
            if f["rows"] == 0 or f["cols"] == 0:
                return ErrorCode.NONE
            if f["acc_row"] + self.store_extent(funct, f["rows"]) > c.acc_depth:
                return ErrorCode.BAD_LOCAL
            if f["cols"] > c.cols:
                return ErrorCode.BAD_SIZE
            if funct == Funct.STORE_ADD and not self._add_config_ok():
                return ErrorCode.BAD_CONFIG
            es = 4 if funct == Funct.STORE_ACC else c.elem_bytes
            code = self._check_dram(f["dram_addr"], f["rows"], self.store_stride,
                                    f["cols"] * es)
            if funct == Funct.STORE_ADD and code == ErrorCode.NONE:
                code = self._check_dram(self.skip_addr(f["dram_addr"]), f["rows"],
                                        self.store_stride, f["cols"] * es)
            return code
        if funct == Funct.COMPUTE:
            if f["steps"] == 0:
                return ErrorCode.NONE
            a_rows, b_rows, c_rows = self.compute_extent(f)
            if (f["a_row"] + a_rows > c.spad_depth or f["b_row"] + b_rows > c.spad_depth
                    or f["c_row"] + c_rows > c.acc_depth):
                return ErrorCode.BAD_LOCAL
            if self.dataflow == Dataflow.WS and f["k_valid"] > c.rows:
                return ErrorCode.BAD_SIZE
            return ErrorCode.NONE
        if funct == Funct.CONFIG_EXEC:
            supported = c.with_os if f["dataflow"] == Dataflow.OS else c.with_ws
            a_lo, a_hi = element_range(c.in_width, f["a_signed"])
            b_lo, b_hi = element_range(c.in_width, f["b_signed"])
            if not (supported and a_lo <= f["a_zero"] <= a_hi and b_lo <= f["b_zero"] <= b_hi):
                return ErrorCode.BAD_CONFIG
            return ErrorCode.NONE
        if funct == Funct.CONFIG_REQUANT:
            built = any(mode.code == f["mode"] for mode in c.built_requant_modes)
            if not (built and clamp_ok(c.in_width, f["clamp_min"], f["clamp_max"])):
                return ErrorCode.BAD_CONFIG
            return ErrorCode.NONE
        if funct == Funct.CONFIG_STORE_POOL:
            if f["kernel_h"] == 0 or f["kernel_w"] == 0:
                return ErrorCode.BAD_CONFIG
            return ErrorCode.NONE
        if funct == Funct.CONFIG_STORE:
            if f["qp_row"] + QP_ROWS > c.qp_depth:
                return ErrorCode.BAD_LOCAL
            return ErrorCode.NONE
        if funct == Funct.RUN:
            if not c.command_fetch:
                return ErrorCode.BAD_FUNCT      # built without the command fetcher
            if f["count"] == 0:
                return ErrorCode.NONE
            if (f["list_addr"] % LIST_ENTRY_BYTES
                    or f["list_addr"] + f["count"] * LIST_ENTRY_BYTES > c.mem_bytes):
                return ErrorCode.BAD_MEMORY
            return ErrorCode.NONE
        return ErrorCode.NONE

    def _add_config_ok(self):
        """STORE_ADD's constants are finite and its clamp fits its element type."""
        lo, hi = element_range(8, self.add_elem_signed)
        finite = all((bits >> 23) & 0xFF != 0xFF for bits in self.add_constants)
        return finite and lo <= self.add_clamp_min <= self.add_clamp_max <= hi

    def skip_addr(self, dram_addr):
        """Where the skip tensor of a STORE_ADD writing at ``dram_addr`` starts."""
        return (dram_addr + self.skip_offset) & 0xFFFFFFFF

    def _check_dram(self, addr, rows, stride, row_bytes):
        end = addr + (rows - 1) * stride + row_bytes
        return ErrorCode.NONE if end <= self.config.mem_bytes else ErrorCode.BAD_MEMORY

    def store_extent(self, funct, rows):
        """ACC rows from a store's first row to past the last it reads (``rows`` > 0)."""
        if funct != Funct.STORE_POOL:
            return rows
        return ((rows - 1) * self.pool_step + (self.pool_kernel_h - 1) * self.pool_pitch
                + self.pool_kernel_w)

    def compute_extent(self, f):
        """Rows of SPAD_A, SPAD_B and ACC a COMPUTE touches, from its first rows."""
        r = self.config.rows
        if self.dataflow == Dataflow.OS:
            return -(-f["steps"] // r) * r, f["steps"], r
        return f["steps"], f["k_valid"], f["steps"]

    # -- Status ----------------------------------------------------------------------------------

    def status_word(self):
        values = {"busy": 0, "list_busy": 0, "list_done": self.list_done,
                  "error": int(self.error_code != ErrorCode.NONE),
                  "error_code": int(self.error_code), "error_funct": self.error_funct,
                  "error_count": self.error_count}
        return pack_fields(STATUS_FIELDS, values, "status")[0]

    def _refuse(self, funct, code):
        if self.error_code == ErrorCode.NONE:
            self.error_code, self.error_funct = code, funct & 0x7f
        self.error_count = min(self.error_count + 1, 0xffff)

    # -- Execution -------------------------------------------------------------------------------

    def execute(self, funct, op1, op2, *, in_list=False):
        """Run one command; returns its 32-bit response, or None if it has none. With
        ``in_list`` it is an entry of a command list, where RUN, FENCE and STATUS are refused."""
        try:
            cmd, f = decode(funct, op1, op2)
        except IsaError:
            self._refuse(funct, ErrorCode.BAD_FUNCT)
            return None
        code = self.check(cmd.funct, f)
        if in_list and cmd.funct in (Funct.RUN, Funct.FENCE, Funct.STATUS):
            code = ErrorCode.BAD_IN_LIST
        if code != ErrorCode.NONE:
            self._refuse(cmd.funct, code)
            return None
        if cmd.unit == Unit.POST:
            execute_post(self.post, cmd.funct, f, self.memory.data)
        else:
            getattr(self, "_" + cmd.name.lower())(**f)
        if cmd.response:
            word = self.status_word()
            if cmd.funct == Funct.STATUS and f["clear"]:
                self.error_code, self.error_funct, self.error_count = ErrorCode.NONE, 0, 0
            if cmd.funct == Funct.STATUS and f["clear_done"]:
                self.list_done = 0
            return word
        return None

    def run(self, program):
        """Run ``(funct, op1, op2)`` commands; returns the responses."""
        responses = []
        for command in program:
            rsp = self.execute(*command)
            if rsp is not None:
                responses.append(rsp)
        return responses

    def _config_exec(self, dataflow, a_signed, b_signed, a_zero, b_zero):
        self.dataflow = Dataflow(dataflow)
        self.a_signed, self.b_signed = a_signed, b_signed
        self.a_zero, self.b_zero = a_zero, b_zero

    def _config_load(self, stride):
        self.load_stride = stride

    def _config_store(self, stride, qp_row):
        self.store_stride, self.qp_row = stride, qp_row

    def _config_store_pool(self, kernel_h, kernel_w, step, pitch):
        self.pool_kernel_h, self.pool_kernel_w = kernel_h, kernel_w
        self.pool_step, self.pool_pitch = step, pitch

    def _config_store_add(self, value, index):
        self.add_constants[index] = value

    def _config_store_skip(self, offset, clamp_min, clamp_max, elem_signed, skip_first):
        self.skip_offset = offset
        self.add_clamp_min, self.add_clamp_max = clamp_min, clamp_max
        self.add_elem_signed, self.add_skip_first = elem_signed, skip_first

    def _config_requant(self, out_zero, mode, clamp_min, clamp_max):
        self.out_zero, self.mode = out_zero, RequantMode(mode)
        self.clamp_min, self.clamp_max = clamp_min, clamp_max

    def _fence(self):
        pass

    def _status(self, clear, clear_done):
        pass

    def _run(self, list_addr, count):
        """The entries of a checked list, each as the core would issue it but refused where a
        list forbids it; then the list is done."""
        data = self.memory[list_addr:list_addr + count * LIST_ENTRY_BYTES].tobytes()
        for entry in unpack_list(data):
            self.execute(*entry, in_list=True)
        self.list_done = 1

    def _rows_of_bytes(self, addr, rows, stride, row_bytes):
        offsets = addr + np.arange(rows, dtype=np.int64)[:, None] * stride
        return self.memory[offsets + np.arange(row_bytes)]

    def _load(self, dram_addr, local_row, space, rows, cols):
        if rows == 0 or cols == 0:
            return
        mem = self._space(space)
        es = self._elem_bytes(space)
        raw = self._rows_of_bytes(dram_addr, rows, self.load_stride, cols * es)
        words = raw.reshape(rows, cols, es).astype(np.int64)
        values = np.zeros((rows, cols), np.int64)
        for i in range(es):
            values |= words[:, :, i] << (8 * i)
        if space in (Space.SPAD_A, Space.SPAD_B):
            values &= (1 << self.config.in_width) - 1
        elif space == Space.ACC:
            values = _wrap(values, self.config.acc_width)
        block = np.zeros((rows, mem.shape[1]), mem.dtype)
        block[:, :cols] = values
        mem[local_row:local_row + rows] = block

    def _operand(self, raw, signed, zero):
        """Raw scratchpad bits to zero-point-corrected values."""
        w = self.config.in_width
        values = np.where(signed & (raw >> (w - 1)), raw - (1 << w), raw)
        return values - zero

    def _compute(self, a_row, b_row, c_row, steps, k_valid, accumulate):
        c = self.config
        if steps == 0:
            return
        a_rows, b_rows, c_rows = self.compute_extent(
            {"steps": steps, "k_valid": k_valid})
        a = self._operand(self.spad_a[a_row:a_row + a_rows], self.a_signed, self.a_zero)
        b = self._operand(self.spad_b[b_row:b_row + b_rows], self.b_signed, self.b_zero)
        if self.dataflow == Dataflow.OS:
            # a holds rows x rows blocks: block j, row r is A[r][j*rows : (j+1)*rows].
            blocks = a.reshape(-1, c.rows, c.rows)             # (chunks, r, k%rows)
            lhs = blocks.transpose(1, 0, 2).reshape(c.rows, -1)[:, :steps]
            product = lhs @ b
            self.macs += c.rows * c.cols * steps
        else:
            product = a[:, :k_valid] @ b
            self.macs += steps * k_valid * c.cols
        if accumulate:
            product = product + self.acc[c_row:c_row + c_rows]
        self.acc[c_row:c_row + c_rows] = _wrap(product, c.acc_width)

    def _store_rows(self, dram_addr, rows, cols, es, values):
        values = values.astype(np.int64) & ((1 << (8 * es)) - 1)
        raw = np.zeros((rows, cols * es), np.uint8)
        for i in range(es):
            raw[:, i::es] = (values >> (8 * i)) & 0xff
        offsets = dram_addr + np.arange(rows, dtype=np.int64)[:, None] * self.store_stride
        self.memory[offsets + np.arange(cols * es)] = raw

    def _store_acc(self, dram_addr, acc_row, rows, cols):
        if rows == 0 or cols == 0:
            return
        self._store_rows(dram_addr, rows, cols, 4, self.acc[acc_row:acc_row + rows, :cols])

    def _requantised(self, acc, cols):
        mode = mode_coded(self.mode)
        bias = qp_values(self.qp[self.qp_row, :cols], "int32")
        params = [qp_values(self.qp[self.qp_row + p.row, :cols], p.kind) for p in mode.params]
        return requantize(mode, acc, bias, params, self.out_zero, self.clamp_min, self.clamp_max)

    def _store(self, dram_addr, acc_row, rows, cols):
        if rows == 0 or cols == 0:
            return
        out = self._requantised(self.acc[acc_row:acc_row + rows, :cols], cols)
        self._store_rows(dram_addr, rows, cols, self.config.elem_bytes, out)

    def _store_pool(self, dram_addr, acc_row, rows, cols):
        """Max after requantisation: exactly a max-pool of the requantised outputs."""
        if rows == 0 or cols == 0:
            return
        first = acc_row + np.arange(rows) * self.pool_step
        taps = [first + y * self.pool_pitch + x for y in range(self.pool_kernel_h)
                for x in range(self.pool_kernel_w)]
        out = np.max([self._requantised(self.acc[rows_of_tap, :cols], cols)
                      for rows_of_tap in taps], axis=0)
        self._store_rows(dram_addr, rows, cols, self.config.elem_bytes, out)

    def _store_add(self, dram_addr, acc_row, rows, cols):
        """Requantise, then QLinearAdd with the skip tensor: what a STORE then a QLINEAR_ADD
        would leave, without the STORE's tensor."""
        if rows == 0 or cols == 0:
            return
        q = self._requantised(self.acc[acc_row:acc_row + rows, :cols], cols)
        skip = self._rows_of_bytes(self.skip_addr(dram_addr), rows, self.store_stride,
                                   cols).astype(np.int64)
        if self.add_elem_signed:
            skip = np.where(skip > 127, skip - 256, skip)
        a, b = (skip, q) if self.add_skip_first else (q, skip)
        out = qlinear_add_scaled(a, b, *(float_of_bits(v) for v in self.add_constants),
                                 (self.add_clamp_min, self.add_clamp_max))
        self._store_rows(dram_addr, rows, cols, self.config.elem_bytes, out)
