"""The board top level: the board's oscillator turned into the SoC's clock by a PLL, a reset held
until the PLL locks, and the SoC's UART, LEDs and buttons on the board's pins.
"""

from amaranth.build import ResourceError
from amaranth.hdl import ClockDomain, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.vendor import GowinPlatform

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


def ecp5_pll_params(f_in, f_out):
    """CLKI_DIV, CLKFB_DIV and CLKOP_DIV of an ECP5 PLL (feedback from CLKOP) closest to
    ``f_out``, and the frequency they give."""
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


#: Output dividers an rPLL offers.
_GOWIN_ODIV = (2, 4, 8, 16, 32, 48, 64, 80, 96, 112, 128)


def gowin_pll_params(f_in, f_out):
    """IDIV_SEL, FBDIV_SEL and ODIV_SEL of a GW1N(R)-9 rPLL (C6/I5 speed grade) closest to
    ``f_out``, and the frequency they give: CLKOUT = f_in * (FBDIV_SEL + 1) / (IDIV_SEL + 1),
    with the phase detector from 3 to 400 MHz and the VCO (CLKOUT * ODIV_SEL) from 400 to
    1200 MHz."""
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


def fpga_family(platform):
    """``"ice40"``, ``"ecp5"`` or ``"gowin"``."""
    if isinstance(platform, GowinPlatform):
        return "gowin"
    return platform.family.lower()


def pll_frequency(platform, f_out):
    """The clock nearest ``f_out`` the board's PLL can make from its oscillator."""
    f_in = platform.default_clk_frequency
    if f_out == f_in:
        return f_in
    params = {"ice40": ice40_pll_params, "ecp5": ecp5_pll_params,
              "gowin": gowin_pll_params}[fpga_family(platform)]
    return params(f_in, f_out)[1]


def _buffer(m, name, direction, port):
    m.submodules[name] = buffer = io.Buffer(direction, port)
    return buffer


def add_pll(m, platform, clk_port, f_in, f_out, clk_out, locked):
    """A PLL making ``clk_out`` from the oscillator on ``clk_port``."""
    family = fpga_family(platform)
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
        params, _ = ecp5_pll_params(f_in, f_out)
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
            o_CLKOP=clk_out, o_LOCK=locked)
    elif family == "gowin":
        clk_in = _buffer(m, "clk_buf", "i", clk_port).i
        params, _ = gowin_pll_params(f_in, f_out)
        m.submodules.pll = Instance(
            "rPLL",
            p_FCLKIN=f"{f_in / 1e6:g}", p_DEVICE=platform.family,
            p_IDIV_SEL=params["IDIV_SEL"], p_FBDIV_SEL=params["FBDIV_SEL"],
            p_ODIV_SEL=params["ODIV_SEL"],
            p_DYN_IDIV_SEL="false", p_DYN_FBDIV_SEL="false", p_DYN_ODIV_SEL="false",
            p_CLKFB_SEL="internal",
            i_CLKIN=clk_in, i_CLKFB=0, i_RESET=0, i_RESET_P=0, i_FBDSEL=0, i_IDSEL=0,
            i_ODSEL=0, i_PSDA=0, i_DUTYDA=0, i_FDLY=0,
            o_CLKOUT=clk_out, o_LOCK=locked)
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
    firmware never starts on an unstable clock.

    Parameters
    ----------
    config : SocConfig
        ``config.clock_hz`` is the clock the PLL is set up for.
    image : bytes
        Firmware, baked into the RAM's initial contents (or, with ``config.flash_offset``,
        copied from the flash, where the build puts it after the bitstream).
    """

    def __init__(self, config, *, image=b""):
        self._config = config
        self._image = bytes(image)

    def elaborate(self, platform):
        m = Module()
        f_in = platform.default_clk_frequency
        f_out = self._config.clock_hz
        clk_port = platform.request(platform.default_clk, dir="-")
        m.domains.sync = sync = ClockDomain("sync")
        locked = Signal()
        if f_out == f_in:
            m.d.comb += [sync.clk.eq(_buffer(m, "clk_buf", "i", clk_port).i), locked.eq(1)]
        else:
            add_pll(m, platform, clk_port, f_in, f_out, sync.clk, locked)
        platform.add_clock_constraint(sync.clk, f_out)
        m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync")

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
