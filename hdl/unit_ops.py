"""What the front end hands to each unit: a decoded command with its configuration attached.

Configuration commands are absorbed by the front end, which snapshots the registers a command
needs into its queue entry. Units therefore never wait for one another to change configuration,
and a command always runs with the configuration that preceded it in the program.
"""

from amaranth.hdl import signed
from amaranth.lib import data

from .isa import ROW_BITS


__all__ = ["LoadOp", "ExecOp", "StoreOp"]


LoadOp = data.StructLayout({
    "dram_addr": 32,
    "space":     2,
    "row":       ROW_BITS,
    "rows":      8,
    "cols":      8,
    "stride":    32,
})

ExecOp = data.StructLayout({
    "a_row":      ROW_BITS,
    "b_row":      ROW_BITS,
    "c_row":      ROW_BITS,
    "steps":      10,
    "k_valid":    6,
    "accumulate": 1,
    "dataflow":   1,
    "a_signed":   1,
    "b_signed":   1,
    "a_zero":     signed(16),
    "b_zero":     signed(16),
})

StoreOp = data.StructLayout({
    "raw":       1,
    "dram_addr": 32,
    "acc_row":   ROW_BITS,
    "rows":      8,
    "cols":      8,
    "stride":    32,
    "qp_row":    ROW_BITS,
    "out_zero":  signed(16),
    "mode":      1,
    "clamp_min": signed(16),
    "clamp_max": signed(16),
})
