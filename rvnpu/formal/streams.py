"""Stream and bus handshakes: the command slice, the load and store units' bus requests, and
the SRAM's read responses.

Each harness drives its block's inputs from the solver, within the protocol the block may
count on (an upstream stream holds ``valid`` and its payload until ``ready``; a memory answers
only reads it was asked), and checks the block's outputs against shadow counters.
"""

from amaranth.asserts import AnyConst, AnySeq
from amaranth.hdl import Assume, Module, ResetSignal, Signal, Value

from rvnpu.formal.properties import Properties
from rvnpu.hdl.engine import command_slice, load, store
from rvnpu.hdl.soc import sram
from rvnpu.spec.config import EngineConfig


__all__ = ["FORMAL_ENGINE", "slice_harness", "load_request_harness", "store_request_harness",
           "sram_harness"]

#: The smallest engine the units build for, so that the solver's problem stays small.
FORMAL_ENGINE = EngineConfig(rows=2, cols=2, spad_depth=16, acc_depth=16, qp_depth=8,
                             bus_width=32, mem_bytes=1024, requant_modes="none")


def _drive_stream(m, stream_, width):
    """Drive ``stream_`` (valid, payload) from the solver, holding both until ``ready``."""
    valid, payload = Signal(), Signal(width)
    m.d.comb += [valid.eq(AnySeq(1)), payload.eq(AnySeq(width)),
                 stream_.valid.eq(valid), stream_.payload.eq(payload)]
    waited, held = Signal(), Signal(width)
    m.d.sync += [waited.eq(valid & ~stream_.ready), held.eq(payload)]
    m.d.comb += Assume(~waited | (valid & (payload == held)))


def _check_stream_out(p, m, name, stream_):
    """An output stream holds ``valid`` and its payload until ``ready``."""
    waited = Signal(name=f"{name}_waited")
    held = Signal.like(stream_.payload, name=f"{name}_held")
    m.d.sync += [waited.eq(stream_.valid & ~stream_.ready), held.eq(stream_.payload)]
    p.check(f"{name}_valid_held", waited, stream_.valid)
    p.check(f"{name}_payload_stable", waited, Value.cast(stream_.payload) == Value.cast(held))
    p.reach(f"{name}_accepted_after_wait", waited & stream_.valid & stream_.ready)


def slice_harness(slice_class=None):
    """:class:`~rvnpu.hdl.engine.command_slice.CommandSlice`: no command lost, duplicated or
    reordered. The solver picks a token index ``k``; the payload of the ``k``-th input is
    remembered and must be the ``k``-th output."""
    m = Module()
    m.d.comb += Assume(~_reset())
    dut = (slice_class or command_slice.CommandSlice)(8)
    m.submodules.dut = dut
    _drive_stream(m, dut.i, 8)
    m.d.comb += dut.o.ready.eq(AnySeq(1))
    p = Properties(m)
    _check_stream_out(p, m, "o", dut.o)

    taken_in, taken_out = dut.i.valid & dut.i.ready, dut.o.valid & dut.o.ready
    ins, outs = Signal(6), Signal(6)
    m.d.sync += [ins.eq(ins + taken_in), outs.eq(outs + taken_out)]
    k = Signal(6)
    m.d.comb += k.eq(AnyConst(6))
    token = Signal(8)
    with m.If(taken_in & (ins == k)):
        m.d.sync += token.eq(dut.i.payload)
    p.check("no_output_without_input", taken_out, outs < ins)
    p.check("holds_at_most_one", dut.o.valid | (ins == outs), ins - outs <= 1)
    p.check("kth_out_is_kth_in", taken_out & (outs == k), dut.o.payload == token)
    p.check("no_loss", taken_in, (ins == outs) | taken_out)
    return m


def _reset():
    return ResetSignal()


def load_request_harness(unit_class=None):
    """:class:`~rvnpu.hdl.engine.load.LoadUnit`'s bus requests under any command stream, any
    bus waits and any response timing (answers only to reads it made)."""
    m = Module()
    m.d.comb += Assume(~_reset())
    c = FORMAL_ENGINE
    dut = (unit_class or load.LoadUnit)(c)
    m.submodules.dut = dut
    _drive_stream(m, dut.cmd, len(Value.cast(dut.cmd.payload)))
    outstanding = Signal(8)
    answered = Signal()
    m.d.comb += [dut.req.ready.eq(AnySeq(1)), answered.eq(AnySeq(1)),
                 dut.rsp.valid.eq(answered & (outstanding != 0)),
                 dut.rsp.payload.eq(AnySeq(c.bus_width)), dut.w.ready.eq(AnySeq(1))]
    m.d.sync += outstanding.eq(outstanding + (dut.req.valid & dut.req.ready) - dut.rsp.valid)
    p = Properties(m)
    _check_stream_out(p, m, "req", dut.req)
    p.check("reads_only", dut.req.valid, ~dut.req.payload.write)
    return m


def store_request_harness(unit_class=None):
    """:class:`~rvnpu.hdl.engine.store.StoreUnit`'s bus requests under any command stream the
    front end may send (a window of at least 1 x 1; a STORE_ACC's 1 x 1 of step 1, as every
    store is here, built without requantisation), any bus waits and any accumulator
    contents."""
    m = Module()
    m.d.comb += Assume(~_reset())
    c = FORMAL_ENGINE
    dut = (unit_class or store.StoreUnit)(c)
    m.submodules.dut = dut
    _drive_stream(m, dut.cmd, len(Value.cast(dut.cmd.payload)))
    op = dut.cmd.payload
    one_by_one = (op.kernel_h == 1) & (op.kernel_w == 1) & (op.step == 1)
    m.d.comb += Assume((op.kernel_h != 0) & (op.kernel_w != 0) & (~op.raw | one_by_one))
    m.d.comb += [dut.req.ready.eq(AnySeq(1)),
                 Value.cast(dut.acc_data).eq(AnySeq(len(Value.cast(dut.acc_data)))),
                 Value.cast(dut.qp_data).eq(AnySeq(len(Value.cast(dut.qp_data))))]
    p = Properties(m)
    _check_stream_out(p, m, "req", dut.req)
    p.check("writes_only", dut.req.valid, dut.req.payload.write)
    return m


def sram_harness(sram_class=None, *, with_host=False):
    """:class:`~rvnpu.hdl.soc.sram.BusSram`: one response per read, in order, the cycle after
    it, carrying the word as it was when read (for a tracked address the solver picks)."""
    m = Module()
    m.d.comb += Assume(~_reset())
    depth = 4
    dut = (sram_class or sram.BusSram)(depth=depth, data_width=32, addr_width=4,
                                       with_host=with_host)
    m.submodules.dut = dut
    req = dut.bus.req
    request = Value.cast(req.payload)
    m.d.comb += [req.valid.eq(AnySeq(1)), request.eq(AnySeq(len(request))),
                 dut.bus.rsp.ready.eq(1)]
    m.d.comb += Assume(req.payload.addr < depth)
    if with_host:
        m.d.comb += [dut.host_addr.eq(AnySeq(2)), dut.host_we.eq(AnySeq(4)),
                     dut.host_wdata.eq(AnySeq(32))]
    tracked = Signal(2)
    m.d.comb += tracked.eq(AnyConst(2))
    word = Signal(32)       # the tracked word: zero at reset, as the memory is

    def written(addr, data, mask):
        new = Signal(32)
        m.d.comb += new.eq(word)
        for lane in range(4):
            with m.If(mask[lane] & (addr == tracked)):
                m.d.comb += new.word_select(lane, 8).eq(data.word_select(lane, 8))
        return new

    bus_write = req.valid & req.payload.write
    after = written(req.payload.addr, req.payload.data, req.payload.mask & bus_write.replicate(4))
    if with_host:
        after = written(dut.host_addr, dut.host_wdata,
                        dut.host_we & (~dut.host_busy).replicate(4) & (~bus_write).replicate(4))
    m.d.sync += word.eq(after)

    read = req.valid & req.ready & ~req.payload.write
    was_read, was_tracked, expected = Signal(), Signal(), Signal(32)
    m.d.sync += [was_read.eq(read), was_tracked.eq(req.payload.addr == tracked),
                 expected.eq(word)]
    p = Properties(m)
    p.check("always_ready", req.valid, req.ready)
    p.check("one_response_per_read", was_read | dut.bus.rsp.valid,
            was_read == dut.bus.rsp.valid)
    p.check("response_is_the_word_read", was_read & was_tracked,
            dut.bus.rsp.payload == expected)
    p.reach("read_after_write", was_read & was_tracked & (expected != 0))
    return m
