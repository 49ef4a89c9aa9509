"""The UART: an 8N1 transmitter with a one-byte buffer and a receiver with a small FIFO."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from rvnpu.spec.memory_map import UART
from rvnpu.hdl.soc.regbus import RegisterSignature


__all__ = ["UartTx", "UartRx", "Uart", "MIN_DIVISOR"]


#: Shortest bit, in clock cycles: the receiver needs a few samples a bit to find its middle.
MIN_DIVISOR = 4

_DATA, _STATUS, _DIVISOR = (UART.register(n) for n in ("DATA", "STATUS", "DIVISOR"))
_DIVISOR_WIDTH = _DIVISOR.width


class UartTx(wiring.Component):
    """Sends each byte of ``data`` as a start bit, 8 data bits (LSB first) and a stop bit, each
    ``divisor`` cycles long.

    Members
    -------
    divisor : In
        Cycles a bit, at least :data:`MIN_DIVISOR`; read when a byte starts.
    data : In(stream)
        Bytes to send; taken when the previous stop bit has ended.
    tx : Out
        The line; idles high.
    idle : Out
        Nothing is being sent.
    """

    divisor: In(_DIVISOR_WIDTH)
    data: In(stream.Signature(8))
    tx: Out(1, init=1)
    idle: Out(1)

    def elaborate(self, platform):
        m = Module()
        busy = Signal()
        bits = Signal(9)            # data bits then the stop bit, shifted out LSB first
        left = Signal(range(10))    # bits still to send after the current one
        count = Signal(_DIVISOR_WIDTH)

        # A byte starts when the line is idle or as the previous stop bit ends, so
        # back-to-back bytes leave no gap.
        m.d.comb += [self.data.ready.eq(~busy | ((count == 0) & (left == 0))),
                     self.idle.eq(~busy)]
        with m.If(busy & (count != 0)):
            m.d.sync += count.eq(count - 1)
        with m.Elif(busy & (left != 0)):
            m.d.sync += [self.tx.eq(bits[0]), bits.eq(bits >> 1), left.eq(left - 1),
                         count.eq(self.divisor - 1)]
        with m.Elif(self.data.valid):
            m.d.sync += [busy.eq(1), self.tx.eq(0), bits.eq(Cat(self.data.payload, 1)),
                         left.eq(9), count.eq(self.divisor - 1)]
        with m.Else():
            m.d.sync += busy.eq(0)
        return m


class UartRx(wiring.Component):
    """Receives 8N1 bytes, sampling each bit in its middle.

    A byte is offered for one cycle only (the line cannot wait), so ``valid`` is a strobe
    rather than a stream: whoever takes it must have room or count it lost.

    Members
    -------
    divisor : In
        Cycles a bit, at least :data:`MIN_DIVISOR`.
    rx : In
        The line, asynchronous to the clock; idles high.
    valid : Out
        ``data`` holds a byte received with its stop bit, this cycle only.
    data : Out
    frame_error : Out
        A byte ended without a stop bit (dropped), this cycle only.
    """

    divisor: In(_DIVISOR_WIDTH)
    rx: In(1, init=1)
    valid: Out(1)
    data: Out(8)
    frame_error: Out(1)

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)
        count = Signal(_DIVISOR_WIDTH)
        left = Signal(range(9))

        with m.FSM():
            with m.State("Idle"):
                with m.If(~line):
                    # Half a bit on, the middle of the start bit.
                    m.d.sync += count.eq((self.divisor >> 1) - 1)
                    m.next = "Start"
            with m.State("Start"):
                with m.If(count != 0):
                    m.d.sync += count.eq(count - 1)
                with m.Elif(line):
                    m.next = "Idle"     # a glitch, not a start bit
                with m.Else():
                    m.d.sync += [count.eq(self.divisor - 1), left.eq(8)]
                    m.next = "Data"
            with m.State("Data"):
                with m.If(count != 0):
                    m.d.sync += count.eq(count - 1)
                with m.Else():
                    m.d.sync += [self.data.eq(Cat(self.data[1:], line)), left.eq(left - 1),
                                 count.eq(self.divisor - 1)]
                    with m.If(left == 1):
                        m.next = "Stop"
            with m.State("Stop"):
                with m.If(count != 0):
                    m.d.sync += count.eq(count - 1)
                with m.Else():
                    m.d.comb += [self.valid.eq(line), self.frame_error.eq(~line)]
                    m.next = "Idle"
        return m


class Uart(wiring.Component):
    """The UART peripheral: registers ``DATA``, ``STATUS`` and ``DIVISOR`` of
    :data:`.memory_map.UART` over a register port.

    Parameters
    ----------
    divisor : int
        Reset value of ``DIVISOR`` (``SocConfig.uart_divisor``).
    rx_depth : int
        Bytes the receive FIFO holds.

    Members
    -------
    bus : In(RegisterSignature)
    tx : Out
    rx : In
    """

    bus: In(RegisterSignature())
    tx: Out(1, init=1)
    rx: In(1, init=1)

    def __init__(self, *, divisor, rx_depth=4):
        if not isinstance(divisor, int) or not MIN_DIVISOR <= divisor < 1 << _DIVISOR_WIDTH:
            raise ValueError(f"UART divisor must be an integer from {MIN_DIVISOR} to "
                             f"{(1 << _DIVISOR_WIDTH) - 1}, not {divisor!r}")
        if not isinstance(rx_depth, int) or rx_depth < 1:
            raise ValueError(f"UART rx_depth must be a positive integer, not {rx_depth!r}")
        self._divisor = divisor
        self._rx_depth = rx_depth
        super().__init__()

    @property
    def rx_depth(self):
        return self._rx_depth

    def elaborate(self, platform):
        m = Module()
        m.submodules.tx = tx = UartTx()
        m.submodules.rx = rx = UartRx()
        m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFO(width=8, depth=self._rx_depth)

        bus = self.bus
        divisor = Signal(_DIVISOR_WIDTH, init=self._divisor)
        effective = Mux(divisor < MIN_DIVISOR, MIN_DIVISOR, divisor)
        m.d.comb += [tx.divisor.eq(effective), rx.divisor.eq(effective),
                     self.tx.eq(tx.tx), rx.rx.eq(self.rx)]

        # Transmit buffer: one byte, so a byte can be written while the previous one shifts.
        tx_full = Signal()
        tx_byte = Signal(8)
        m.d.comb += [tx.data.valid.eq(tx_full), tx.data.payload.eq(tx_byte)]
        with m.If(tx.data.valid & tx.data.ready):
            m.d.sync += tx_full.eq(0)
        with m.If(bus.w_en & (bus.addr == _DATA.word) & ~tx_full):
            m.d.sync += [tx_full.eq(1), tx_byte.eq(bus.w_data[:8])]

        # Receive FIFO and its sticky errors.
        overrun = Signal()
        frame_error = Signal()
        m.d.comb += [rx_fifo.w_data.eq(rx.data), rx_fifo.w_en.eq(rx.valid)]
        clear = Signal(32)
        m.d.comb += clear.eq(Mux(bus.w_en & (bus.addr == _STATUS.word), bus.w_data, 0))
        with m.If(rx.valid & ~rx_fifo.w_rdy):
            m.d.sync += overrun.eq(1)
        with m.Elif(clear[_STATUS.field("RX_OVERRUN").lsb]):
            m.d.sync += overrun.eq(0)
        with m.If(rx.frame_error):
            m.d.sync += frame_error.eq(1)
        with m.Elif(clear[_STATUS.field("RX_FRAME_ERROR").lsb]):
            m.d.sync += frame_error.eq(0)

        with m.If(bus.w_en & (bus.addr == _DIVISOR.word)):
            m.d.sync += divisor.eq(bus.w_data)

        status = Signal(_STATUS.width)
        for name, value in (("TX_READY", ~tx_full), ("TX_IDLE", ~tx_full & tx.idle),
                            ("RX_VALID", rx_fifo.r_rdy), ("RX_OVERRUN", overrun),
                            ("RX_FRAME_ERROR", frame_error)):
            m.d.comb += status[_STATUS.field(name).lsb].eq(value)

        empty_bit = Const(1 << _DATA.field("EMPTY").lsb, 32)
        m.d.sync += bus.r_data.eq(0)
        with m.If(bus.r_en):
            with m.Switch(bus.addr):
                with m.Case(_DATA.word):
                    m.d.sync += bus.r_data.eq(Mux(rx_fifo.r_rdy, rx_fifo.r_data, empty_bit))
                    m.d.comb += rx_fifo.r_en.eq(1)
                with m.Case(_STATUS.word):
                    m.d.sync += bus.r_data.eq(status)
                with m.Case(_DIVISOR.word):
                    m.d.sync += bus.r_data.eq(divisor)
        return m
