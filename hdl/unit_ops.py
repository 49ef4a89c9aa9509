"""What the front end hands to each unit: a decoded command with its configuration attached.

Configuration commands are absorbed by the front end, which snapshots the registers a command
needs into its queue entry. Units therefore never wait for one another to change configuration,
and a command always runs with the configuration that preceded it in the program.

The front end only passes on commands that passed its checks, so their fields need no more bits
than the engine's memories: local rows are below the deepest local memory, byte addresses below
``mem_bytes``, and so is a stride, wherever a command moves more than one row (with one row
the stride is never used). Every register slice and unit is the narrower for it.
"""

from amaranth.hdl import signed
from amaranth.lib import data


__all__ = ["local_row_bits", "dram_addr_bits", "load_op", "exec_op", "store_op"]


def local_row_bits(config):
    """Bits of a row address in the deepest local memory."""
    return max(config.spad_depth, config.acc_depth, config.qp_depth).bit_length() - 1


def dram_addr_bits(config):
    """Bits of a byte address in the engine's main-memory window."""
    return config.mem_bytes.bit_length() - 1


def load_op(config):
    return data.StructLayout({
        "dram_addr": dram_addr_bits(config),
        "space":     2,
        "row":       local_row_bits(config),
        "rows":      8,
        "cols":      8,
        "stride":    dram_addr_bits(config),
    })


def exec_op(config):
    row = local_row_bits(config)
    return data.StructLayout({
        "a_row":      row,
        "b_row":      row,
        "c_row":      row,
        "steps":      10,
        "k_valid":    6,
        "accumulate": 1,
        "dataflow":   1,
        "a_signed":   1,
        "b_signed":   1,
        "a_zero":     signed(16),
        "b_zero":     signed(16),
    })


def store_op(config):
    row = local_row_bits(config)
    return data.StructLayout({
        "raw":       1,
        "dram_addr": dram_addr_bits(config),
        "acc_row":   row,
        "rows":      8,
        "cols":      8,
        "stride":    dram_addr_bits(config),
        "qp_row":    row,
        "out_zero":  signed(16),
        "mode":      1,
        "clamp_min": signed(16),
        "clamp_max": signed(16),
    })
