"""Two 8x8 products in one iCE40 DSP block."""

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


__all__ = ["SbMac16Pair"]


class SbMac16Pair(wiring.Component):
    """Two independent signed 8x8 products, ``p0 = a0 * b0`` and ``p1 = a1 * b1``, from one
    ``SB_MAC16`` in its 8x8 mode.

    An iCE40's SB_MAC16 holds two 8x8 multipliers beside its 16x16 one, but Yosys infers only
    one product per block, so a cell's ``*`` takes a whole block; the UP5K has eight. This
    instantiates the primitive: the low bytes of its ``A`` and ``B`` inputs multiply into the
    low half of ``O``, the high bytes into the high half, each sign-extended
    (``A_SIGNED``, ``B_SIGNED``). With ``registered`` both products are held in the block's
    own 8x8 product registers (``TOP_8x8_MULT_REG``, ``BOT_8x8_MULT_REG``), a cycle late, as
    the cells' product register would (:attr:`.pe.ProcessingElement.latency` 2).

    The block's input registers stay unused: a cell's operand registers also pass its operands
    on to its neighbours, so they are needed in the fabric anyway. Simulating this needs the
    primitive's model (Yosys's ``ice40/cells_sim.v``, :mod:`rvnpu.sim.cell_models`).
    """

    def __init__(self, *, registered):
        self._registered = bool(registered)
        super().__init__({
            "a0": In(signed(8)), "b0": In(signed(8)), "p0": Out(signed(16)),
            "a1": In(signed(8)), "b1": In(signed(8)), "p1": Out(signed(16)),
        })

    def elaborate(self, platform):
        m = Module()
        out = Signal(32)
        zero16 = Const(0, 16)
        reg = Const(int(self._registered), 1)
        m.submodules.mac = Instance(
            "SB_MAC16",
            p_NEG_TRIGGER=Const(0, 1),
            p_C_REG=Const(0, 1), p_A_REG=Const(0, 1), p_B_REG=Const(0, 1),
            p_D_REG=Const(0, 1),
            p_TOP_8x8_MULT_REG=reg, p_BOT_8x8_MULT_REG=reg,
            p_PIPELINE_16x16_MULT_REG1=Const(0, 1), p_PIPELINE_16x16_MULT_REG2=Const(0, 1),
            # Each half of O is its 8x8 product (select 2).
            p_TOPOUTPUT_SELECT=Const(2, 2), p_BOTOUTPUT_SELECT=Const(2, 2),
            p_TOPADDSUB_LOWERINPUT=Const(0, 2), p_TOPADDSUB_UPPERINPUT=Const(0, 1),
            p_TOPADDSUB_CARRYSELECT=Const(0, 2),
            p_BOTADDSUB_LOWERINPUT=Const(0, 2), p_BOTADDSUB_UPPERINPUT=Const(0, 1),
            p_BOTADDSUB_CARRYSELECT=Const(0, 2),
            p_MODE_8x8=Const(1, 1), p_A_SIGNED=Const(1, 1), p_B_SIGNED=Const(1, 1),
            i_CLK=ClockSignal(), i_CE=Const(1, 1),
            i_A=Cat(self.a0, self.a1), i_B=Cat(self.b0, self.b1),
            i_C=zero16, i_D=zero16,
            i_AHOLD=0, i_BHOLD=0, i_CHOLD=0, i_DHOLD=0,
            i_IRSTTOP=0, i_IRSTBOT=0, i_ORSTTOP=0, i_ORSTBOT=0,
            i_OLOADTOP=0, i_OLOADBOT=0, i_ADDSUBTOP=0, i_ADDSUBBOT=0,
            i_OHOLDTOP=0, i_OHOLDBOT=0, i_CI=0, i_ACCUMCI=0, i_SIGNEXTIN=0,
            o_O=out,
        )
        m.d.comb += [self.p0.eq(out[:16].as_signed()), self.p1.eq(out[16:].as_signed())]
        return m
