"""The board top level: the board's oscillator turned into the SoC's clock by a PLL, a reset held
until the PLL locks, and the SoC's UART, LEDs and buttons on the board's pins.
"""

from amaranth.build import ResourceError
from amaranth.hdl import ClockDomain, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.vendor import GowinPlatform

from rvnpu.hdl.soc.clock_crossing import ENGINE_DOMAIN
from rvnpu.hdl.soc.soc import Soc


__all__ = ["BoardTop", "add_pll", "pll_frequency", "ice40_pll_params", "ecp5_pll_params",
           "gowin_pll_params", "fpga_family"]


def ice40_pll_params(f_in, f_out):
    """DIVR, DIVF, DIVQ and FILTER_RANGE of an iCE40 PLL (simple feedback) closest to
    ``f_out``, and the frequency they give."""
    best = None
    for divr in range(16):
        f_pfd = f_in / (divr + 1)
        if not 10e6 <= f_pfd <= 133e6:
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not 533e6 <= f_vco <= 1066e6:
                continue
            for divq in range(1, 7):
                f = f_vco / 2 ** divq
                if best is None or abs(f - f_out) < abs(best[-1] - f_out):
                    best = (divr, divf, divq, f_pfd, f)
    if best is None:
        raise ValueError(f"no iCE40 PLL setting makes {f_out} Hz from {f_in} Hz")
    divr, divf, divq, f_pfd, f = best
    filter_range = sum(f_pfd >= edge for edge in (17e6, 26e6, 44e6, 66e6, 101e6)) + 1
    return dict(DIVR=divr, DIVF=divf, DIVQ=divq, FILTER_RANGE=filter_range), f


def ecp5_pll_params(f_in, f_out, f_second=None, *, tolerance=0.001):
    """CLKI_DIV, CLKFB_DIV and CLKOP_DIV of an ECP5 PLL (feedback from CLKOP) closest to
    ``f_out``, and the frequency they give.

    With ``f_second``: also CLKOS_DIV, a second output (CLKOS) of the same VCO, and the result
    is ``(params, f, f_second_made)``. One VCO (400-800 MHz) must serve both outputs, so the
    search runs over every VCO the first output allows and picks the pair whose worse relative
    error is least; a pair neither output of which is within ``tolerance`` of its target is
    refused (:class:`ValueError`, one line).
    """
    if f_second is not None:
        return _ecp5_pll_pair(f_in, f_out, f_second, tolerance)
    best = None
    for clki_div in range(1, 129):
        f_pfd = f_in / clki_div
        if f_pfd < 3.125e6:
            break
        for clkfb_div in range(1, 81):
            f = f_pfd * clkfb_div
            clkop_div = max(1, round(600e6 / f))     # the VCO near the middle of its range
            if not 400e6 <= f * clkop_div <= 800e6 or clkop_div > 128:
                continue
            if best is None or abs(f - f_out) < abs(best[-1] - f_out):
                best = (clki_div, clkfb_div, clkop_div, f)
    if best is None:
        raise ValueError(f"no ECP5 PLL setting makes {f_out} Hz from {f_in} Hz")
    clki_div, clkfb_div, clkop_div, f = best
    return dict(CLKI_DIV=clki_div, CLKFB_DIV=clkfb_div, CLKOP_DIV=clkop_div), f


#: An EHXPLLL output's range (Hz) and its phase detector's lower limit.
_ECP5_OUTPUT = (3.125e6, 400e6)
_ECP5_PFD_MIN = 3.125e6


def _ecp5_pll_pair(f_in, f_op, f_os, tolerance):
    """CLKOP at ``f_op`` and CLKOS at ``f_os`` from one VCO: see :func:`ecp5_pll_params`."""
    best = None
    for clki_div in range(1, 129):
        f_pfd = f_in / clki_div
        if f_pfd < _ECP5_PFD_MIN:
            break
        for clkfb_div in range(1, 81):
            f = f_pfd * clkfb_div
            if not _ECP5_OUTPUT[0] <= f <= _ECP5_OUTPUT[1]:
                continue
            error_op = abs(f - f_op) / f_op
            if best is not None and error_op > best[0][0]:
                continue
            for clkop_div in range(max(1, int(400e6 // f)), min(128, int(800e6 // f)) + 1):
                f_vco = f * clkop_div
                if not 400e6 <= f_vco <= 800e6:
                    continue
                clkos_div = min(128, max(1, round(f_vco / f_os)))
                f2 = f_vco / clkos_div
                if not _ECP5_OUTPUT[0] <= f2 <= _ECP5_OUTPUT[1]:
                    continue
                # The worse error first; then the VCO nearer the middle of its range.
                cost = (max(error_op, abs(f2 - f_os) / f_os), abs(f_vco - 600e6))
                if best is None or cost < best[0]:
                    best = (cost, clki_div, clkfb_div, clkop_div, clkos_div, f, f2)
    if best is None or best[0][0] > tolerance:
        nearest = "" if best is None else (f"; the nearest pair is {best[5] / 1e6:.4g} and "
                                           f"{best[6] / 1e6:.4g} MHz")
        raise ValueError(f"no ECP5 PLL setting makes both {f_op / 1e6:g} MHz and "
                         f"{f_os / 1e6:g} MHz from {f_in / 1e6:g} MHz within "
                         f"{tolerance:.1%} (one VCO of 400-800 MHz serves both outputs, "
                         f"each from 3.125 to 400 MHz){nearest}")
    _, clki_div, clkfb_div, clkop_div, clkos_div, f, f2 = best
    return dict(CLKI_DIV=clki_div, CLKFB_DIV=clkfb_div, CLKOP_DIV=clkop_div,
                CLKOS_DIV=clkos_div), f, f2


#: Output dividers an rPLL offers.
_GOWIN_ODIV = (2, 4, 8, 16, 32, 48, 64, 80, 96, 112, 128)


def gowin_pll_params(f_in, f_out, f_divided=None, *, tolerance=0.001):
    """IDIV_SEL, FBDIV_SEL and ODIV_SEL of a GW1N(R)-9 rPLL (C6/I5 speed grade) closest to
    ``f_out``, and the frequency they give: CLKOUT = f_in * (FBDIV_SEL + 1) / (IDIV_SEL + 1),
    with the phase detector from 3 to 400 MHz and the VCO (CLKOUT * ODIV_SEL) from 400 to
    1200 MHz.

    With ``f_divided`` (slower than ``f_out``): a second clock from the rPLL's divided outputs,
    CLKOUTD (CLKOUT / 2, 4, ..., 128) or CLKOUTD3 (CLKOUT / 3); ``SDIV`` in the parameters is
    the divisor and the result is ``(params, f, f_divided_made)``. Those are the only second
    clocks an rPLL makes, so a pair whose ratio is not near one of those divisors, or with
    either clock not within ``tolerance`` of its target, is refused (:class:`ValueError`).
    """
    if f_divided is not None:
        return _gowin_pll_pair(f_in, f_out, f_divided, tolerance)
    best = None
    for idiv in range(64):
        f_pfd = f_in / (idiv + 1)
        if not 3e6 <= f_pfd <= 400e6:
            continue
        for fbdiv in range(64):
            f = f_pfd * (fbdiv + 1)
            if not 3.125e6 <= f <= 600e6:
                continue
            odivs = [d for d in _GOWIN_ODIV if 400e6 <= f * d <= 1200e6]
            if odivs and (best is None or abs(f - f_out) < abs(best[-1] - f_out)):
                best = (idiv, fbdiv, odivs[len(odivs) // 2], f)
    if best is None:
        raise ValueError(f"no Gowin rPLL setting makes {f_out} Hz from {f_in} Hz")
    idiv, fbdiv, odiv, f = best
    return dict(IDIV_SEL=idiv, FBDIV_SEL=fbdiv, ODIV_SEL=odiv), f


#: What an rPLL's divided outputs divide CLKOUT by: CLKOUTD3, and CLKOUTD's DYN_SDIV_SEL.
GOWIN_SECOND_DIVISORS = (3, *range(2, 129, 2))


def _gowin_pll_pair(f_in, f_out, f_divided, tolerance):
    """CLKOUT at ``f_out`` and a divided output at ``f_divided``: see :func:`gowin_pll_params`."""
    best = None
    for sdiv in GOWIN_SECOND_DIVISORS:
        try:
            params, f = gowin_pll_params(f_in, f_divided * sdiv)
        except ValueError:
            continue
        cost = max(abs(f - f_out) / f_out, abs(f / sdiv - f_divided) / f_divided)
        if best is None or cost < best[0]:
            best = (cost, dict(params, SDIV=sdiv), f, f / sdiv)
    if best is None or best[0] > tolerance:
        raise ValueError(f"a Gowin rPLL makes a second clock only as its first divided by 2, "
                         f"3, 4, 6, ..., 128 (CLKOUTD, CLKOUTD3): it cannot make both "
                         f"{f_out / 1e6:g} MHz and {f_divided / 1e6:g} MHz from "
                         f"{f_in / 1e6:g} MHz within {tolerance:.1%}")
    return best[1:]


def fpga_family(platform):
    """``"ice40"``, ``"ecp5"`` or ``"gowin"``."""
    if isinstance(platform, GowinPlatform):
        return "gowin"
    return platform.family.lower()


def pll_frequency(platform, f_out, f_second=None):
    """The clock nearest ``f_out`` the board's PLL can make from its oscillator; with
    ``f_second``, the pair ``(f, f_second_made)`` it makes for two clock domains, or a
    :class:`ValueError` (one line) if it cannot make both."""
    f_in = platform.default_clk_frequency
    if f_second is not None:
        return _pll_pair(platform, f_out, f_second)[1:]
    if f_out == f_in:
        return f_in
    params = {"ice40": ice40_pll_params, "ecp5": ecp5_pll_params,
              "gowin": gowin_pll_params}[fpga_family(platform)]
    return params(f_in, f_out)[1]


def _pll_pair(platform, f_out, f_second):
    """``(params, f, f_second_made)`` of the board's PLL making both clocks. On Gowin the
    faster clock is CLKOUT and the slower a divided output (``params["SECOND"]`` says which
    output ``f_second`` comes from: ``"CLKOS"``, ``"CLKOUT"``, ``"CLKOUTD"``, ``"CLKOUTD3"``)."""
    f_in = platform.default_clk_frequency
    family = fpga_family(platform)
    if family == "ecp5":
        params, f, f2 = ecp5_pll_params(f_in, f_out, f_second)
        return dict(params, SECOND="CLKOS"), f, f2
    if family == "gowin":
        if f_second > f_out:
            params, f2, f = gowin_pll_params(f_in, f_second, f_out)
            return dict(params, SECOND="CLKOUT"), f, f2
        params, f, f2 = gowin_pll_params(f_in, f_out, f_second)
        return dict(params, SECOND="CLKOUTD3" if params["SDIV"] == 3 else "CLKOUTD"), f, f2
    raise ValueError(f"the {platform.family} PLL here makes one clock: the engine cannot have "
                     f"a clock of its own on this board")


def _buffer(m, name, direction, port):
    m.submodules[name] = buffer = io.Buffer(direction, port)
    return buffer


def add_pll(m, platform, clk_port, f_in, f_out, clk_out, locked, *, f_second=None,
            clk_second=None):
    """A PLL making ``clk_out`` from the oscillator on ``clk_port``; with ``f_second``, also
    ``clk_second`` at that frequency from a second output of the same PLL (ECP5: CLKOS;
    Gowin: CLKOUT and a divided output), for a second clock domain."""
    family = fpga_family(platform)
    if f_second is not None:
        params, _, _ = _pll_pair(platform, f_out, f_second)
    if family == "ice40":
        # The oscillator's pin is the PLL's own pad: the PLL must take it before any buffer.
        params, _ = ice40_pll_params(f_in, f_out)
        m.submodules.pll = Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE", p_PLLOUT_SELECT="GENCLK",
            p_DIVR=params["DIVR"], p_DIVF=params["DIVF"], p_DIVQ=params["DIVQ"],
            p_FILTER_RANGE=params["FILTER_RANGE"],
            i_PACKAGEPIN=clk_port.io, i_RESETB=1, i_BYPASS=0,
            o_PLLOUTGLOBAL=clk_out, o_LOCK=locked)
    elif family == "ecp5":
        clk_in = _buffer(m, "clk_buf", "i", clk_port).i
        second = {}
        if f_second is None:
            params, _ = ecp5_pll_params(f_in, f_out)
        else:
            # CLKOS: the VCO divided by CLKOS_DIV, in phase with CLKOP.
            second = dict(
                a_FREQUENCY_PIN_CLKOS=f"{f_second / 1e6:g}",
                p_OUTDIVIDER_MUXB="DIVB", p_CLKOS_ENABLE="ENABLED",
                p_CLKOS_DIV=params["CLKOS_DIV"], p_CLKOS_CPHASE=params["CLKOS_DIV"] - 1,
                p_CLKOS_FPHASE=0, i_ENCLKOS=0, o_CLKOS=clk_second)
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{f_in / 1e6:g}", a_FREQUENCY_PIN_CLKOP=f"{f_out / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
            p_CLKI_DIV=params["CLKI_DIV"], p_CLKFB_DIV=params["CLKFB_DIV"],
            p_CLKOP_DIV=params["CLKOP_DIV"], p_CLKOP_CPHASE=params["CLKOP_DIV"] - 1,
            p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            i_CLKI=clk_in, i_CLKFB=clk_out, i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0,
            i_PHASEDIR=0, i_PHASESTEP=0, i_PHASELOADREG=0, i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=clk_out, o_LOCK=locked, **second)
    elif family == "gowin":
        clk_in = _buffer(m, "clk_buf", "i", clk_port).i
        outputs = {"o_CLKOUT": clk_out}
        second = {}
        if f_second is None:
            params, _ = gowin_pll_params(f_in, f_out)
        else:
            # The faster clock from CLKOUT, the slower from CLKOUTD (CLKOUT / SDIV) or
            # CLKOUTD3 (CLKOUT / 3).
            fast, slow = ((clk_second, clk_out) if params["SECOND"] == "CLKOUT"
                          else (clk_out, clk_second))
            divided = "o_CLKOUTD3" if params["SDIV"] == 3 else "o_CLKOUTD"
            outputs = {"o_CLKOUT": fast, divided: slow}
            if params["SDIV"] != 3:
                second = dict(p_DYN_SDIV_SEL=params["SDIV"], p_CLKOUTD_SRC="CLKOUT",
                              p_CLKOUTD_BYPASS="false")
            else:
                second = dict(p_CLKOUTD3_SRC="CLKOUT")
        m.submodules.pll = Instance(
            "rPLL",
            p_FCLKIN=f"{f_in / 1e6:g}", p_DEVICE=platform.family,
            p_IDIV_SEL=params["IDIV_SEL"], p_FBDIV_SEL=params["FBDIV_SEL"],
            p_ODIV_SEL=params["ODIV_SEL"],
            p_DYN_IDIV_SEL="false", p_DYN_FBDIV_SEL="false", p_DYN_ODIV_SEL="false",
            p_CLKFB_SEL="internal",
            i_CLKIN=clk_in, i_CLKFB=0, i_RESET=0, i_RESET_P=0, i_FBDSEL=0, i_IDSEL=0,
            i_ODSEL=0, i_PSDA=0, i_DUTYDA=0, i_FDLY=0,
            o_LOCK=locked, **outputs, **second)
    else:
        raise ValueError(f"no PLL for the {platform.family} family")


def _requests(platform, name):
    """The ports of every resource ``name`` the board has, in index order."""
    found = []
    while True:
        try:
            found.append(platform.request(name, len(found), dir="-"))
        except ResourceError:
            return found


class BoardTop(Elaboratable):
    """The SoC on a board, clocked at ``clock_hz``.

    The SoC's reset is held until the PLL locks (and released in step with its clock), so the
    firmware never starts on an unstable clock. With ``config.engine_clock_hz`` the same PLL
    makes the engine's clock from a second output; the engine's reset follows the core's,
    released on an engine edge after it (as :class:`.clock_crossing.ClockCrossedEngine`
    asks).

    Parameters
    ----------
    config : SocConfig
        ``config.clock_hz`` is the clock the PLL is set up for (and
        ``config.engine_clock_hz`` its second output's).
    image : bytes
        Firmware, baked into the RAM's initial contents (or, with ``config.flash_offset``,
        copied from the flash, where the build puts it after the bitstream).
    """

    def __init__(self, config, *, image=b""):
        self._config = config
        self._image = bytes(image)

    def elaborate(self, platform):
        f_in = platform.default_clk_frequency
        f_out = self._config.clock_hz
        if self._config.engine_clock_hz is not None:
            _pll_pair(platform, f_out, self._config.engine_clock_hz)    # refused up front
        m = Module()
        clk_port = platform.request(platform.default_clk, dir="-")
        m.domains.sync = sync = ClockDomain("sync")
        locked = Signal()
        f_engine = self._config.engine_clock_hz
        if f_engine is not None:
            m.domains.engine = engine = ClockDomain(ENGINE_DOMAIN)
            add_pll(m, platform, clk_port, f_in, f_out, sync.clk, locked,
                    f_second=f_engine, clk_second=engine.clk)
            platform.add_clock_constraint(engine.clk, f_engine)
        elif f_out == f_in:
            m.d.comb += [sync.clk.eq(_buffer(m, "clk_buf", "i", clk_port).i), locked.eq(1)]
        else:
            add_pll(m, platform, clk_port, f_in, f_out, sync.clk, locked)
        platform.add_clock_constraint(sync.clk, f_out)
        m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync")
        if f_engine is not None:
            # Held while the core's is (so until the PLL locks), released after it.
            m.submodules.engine_reset_sync = ResetSynchronizer(sync.rst, domain=ENGINE_DOMAIN)

        m.submodules.soc = soc = Soc(self._config, image=self._image)
        uart = platform.request("uart", 0, dir="-")
        m.d.comb += [_buffer(m, "uart_tx", "o", uart.tx).o.eq(soc.uart_tx),
                     soc.uart_rx.eq(_buffer(m, "uart_rx", "i", uart.rx).i)]
        for i, port in enumerate(_requests(platform, "led")[:len(soc.leds)]):
            m.d.comb += _buffer(m, f"led_{i}", "o", port).o.eq(soc.leds[i])
        for i, port in enumerate(_requests(platform, "button")[:len(soc.buttons)]):
            m.d.comb += soc.buttons[i].eq(_buffer(m, f"button_{i}", "i", port).i)
        if self._config.flash_offset is not None:
            flash = platform.request("spi_flash", 0, dir="-")
            m.d.comb += [_buffer(m, "flash_cs_n", "o", flash.cs_n).o.eq(soc.flash.cs_n),
                         _buffer(m, "flash_clk", "o", flash.clk).o.eq(soc.flash.sck),
                         _buffer(m, "flash_copi", "o", flash.copi).o.eq(soc.flash.copi),
                         soc.flash.cipo.eq(_buffer(m, "flash_cipo", "i", flash.cipo).i)]
        return m
