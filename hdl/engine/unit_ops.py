"""What the front end hands to each unit: a decoded command with its configuration attached.

Configuration commands are absorbed by the front end, which snapshots the registers a command
needs into its queue entry. Units therefore never wait for one another to change configuration,
and a command always runs with the configuration that preceded it in the program.

Every member is a field of the command set (:mod:`rvnpu.spec.commands`) and takes its width and
signedness from there. The front end only passes on commands that passed its checks, so some
fields need no more bits than the engine's memories: local rows are below the deepest local
memory, byte addresses below ``mem_bytes``, and so is a stride, wherever a command moves more
than one row (with one row the stride is never used). Every register slice and unit is the
narrower for it.
"""

from amaranth.hdl import Mux, signed, unsigned
from amaranth.lib import data

from rvnpu.spec.commands import Funct, PostConstant, field_of


__all__ = ["local_row_bits", "dram_addr_bits", "row_bytes", "load_op", "exec_op", "store_op",
           "post_op"]


def local_row_bits(config):
    """Bits of a row address in the deepest local memory."""
    return max(config.spad_depth, config.acc_depth, config.qp_depth).bit_length() - 1


def dram_addr_bits(config):
    """Bits of a byte address in the engine's main-memory window."""
    return config.mem_bytes.bit_length() - 1


def row_bytes(config, cols, wide):
    """Bytes a row of ``cols`` elements takes in main memory: four an element where ``wide``
    (accumulator and QP words), the operands' ``elem_bytes`` otherwise. Both are powers of
    two, so this is a shift, not a multiplier."""
    return cols << Mux(wide, 2, config.elem_bytes.bit_length() - 1)


def _shape(funct, name):
    """The shape of command field ``name``, as the command set defines it."""
    f = field_of(funct, name)
    return signed(f.width) if f.signed else unsigned(f.width)


def _narrowed(funct, name, bits):
    """Field ``name`` cut to ``bits``, which checked commands never exceed."""
    f = field_of(funct, name)
    assert not f.signed and bits <= f.width, (funct, name, bits)
    return unsigned(bits)


def load_op(config):
    row, addr = local_row_bits(config), dram_addr_bits(config)
    return data.StructLayout({
        "dram_addr": _narrowed(Funct.LOAD, "dram_addr", addr),
        "space":     _shape(Funct.LOAD, "space"),
        "row":       _narrowed(Funct.LOAD, "local_row", row),
        "rows":      _shape(Funct.LOAD, "rows"),
        "cols":      _shape(Funct.LOAD, "cols"),
        "stride":    _narrowed(Funct.CONFIG_LOAD, "stride", addr),
    })


def exec_op(config):
    row = local_row_bits(config)
    return data.StructLayout({
        **{name: _narrowed(Funct.COMPUTE, name, row) for name in ("a_row", "b_row", "c_row")},
        **{name: _shape(Funct.COMPUTE, name) for name in ("steps", "k_valid", "accumulate")},
        **{name: _shape(Funct.CONFIG_EXEC, name)
           for name in ("dataflow", "a_signed", "b_signed", "a_zero", "b_zero")},
    })


def store_op(config):
    row, addr = local_row_bits(config), dram_addr_bits(config)
    return data.StructLayout({
        "raw":       unsigned(1),    # STORE_ACC rather than STORE: no requantisation
        "dram_addr": _narrowed(Funct.STORE, "dram_addr", addr),
        "acc_row":   _narrowed(Funct.STORE, "acc_row", row),
        "rows":      _shape(Funct.STORE, "rows"),
        "cols":      _shape(Funct.STORE, "cols"),
        "stride":    _narrowed(Funct.CONFIG_STORE, "stride", addr),
        "qp_row":    _narrowed(Funct.CONFIG_STORE, "qp_row", row),
        **{name: _shape(Funct.CONFIG_REQUANT, name)
           for name in ("out_zero", "mode", "clamp_min", "clamp_max")},
        # STORE_POOL's window; a 1 x 1 window of step 1 for STORE and STORE_ACC. An engine
        # built without STORE_POOL carries none of it.
        **({name: _shape(Funct.CONFIG_STORE_POOL, name)
            for name in ("kernel_h", "kernel_w", "step")} if config.store_pool else {}),
        **({"pitch": _narrowed(Funct.CONFIG_STORE_POOL, "pitch", row)}
           if config.store_pool else {}),
        # STORE_ADD's skip tensor and addition, on engines built with it.
        **(_store_add_fields(addr) if config.with_store_add else {}),
    })


def _store_add_fields(addr):
    return {
        "add":       unsigned(1),    # STORE_ADD: add the skip tensor after requantising
        "skip_addr": unsigned(addr),  # dram_addr + offset, checked inside the window
        # The addition's clamp, beside the requantisation's.
        "add_clamp_min": _shape(Funct.CONFIG_STORE_SKIP, "clamp_min"),
        "add_clamp_max": _shape(Funct.CONFIG_STORE_SKIP, "clamp_max"),
        **{name: _shape(Funct.CONFIG_STORE_SKIP, name) for name in ("elem_signed", "skip_first")},
        # Float32 bit patterns, in rvnpu.spec.commands.PostConstant order.
        "constants": data.ArrayLayout(_shape(Funct.CONFIG_STORE_ADD, "value"),
                                      len(PostConstant)),
    }


def post_op(config):
    """A MAXPOOL or QLINEAR_ADD with the post-processing registers it runs with; ``in_addr``
    is a QLINEAR_ADD's ``a_addr``, and ``b_addr`` is unused by a MAXPOOL."""
    addr = dram_addr_bits(config)
    return data.StructLayout({
        "add":      unsigned(1),    # QLINEAR_ADD rather than MAXPOOL
        "in_addr":  _narrowed(Funct.MAXPOOL, "in_addr", addr),
        "b_addr":   _narrowed(Funct.QLINEAR_ADD, "b_addr", addr),
        **{name: _shape(Funct.CONFIG_POST, name)
           for name in ("height", "width", "kernel_h", "kernel_w", "channels", "stride_h",
                        "stride_w", "elem_signed")},
        "out_addr": _narrowed(Funct.CONFIG_POST_OUT, "out_addr", addr),
        **{name: _shape(Funct.CONFIG_POST_OUT, name) for name in ("clamp_min", "clamp_max")},
        # Float32 bit patterns, in rvnpu.spec.commands.PostConstant order.
        "constants": data.ArrayLayout(_shape(Funct.CONFIG_POST_ADD, "value"), len(PostConstant)),
    })
