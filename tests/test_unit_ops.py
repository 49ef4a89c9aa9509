"""The unit op layouts take their widths from the command set; they stay bit for bit as before."""

import pytest
from amaranth.hdl import Shape, signed

from rvnpu.hdl.engine.unit_ops import (dram_addr_bits, exec_op, load_op, local_row_bits,
                                       store_op)
from rvnpu.spec.config import EngineConfig


def _written_out(config):
    """The layouts as they were spelled out by hand before the widths came from the spec."""
    row, addr = local_row_bits(config), dram_addr_bits(config)
    return {
        load_op: {"dram_addr": addr, "space": 2, "row": row, "rows": 8, "cols": 8,
                  "stride": addr},
        exec_op: {"a_row": row, "b_row": row, "c_row": row, "steps": 10, "k_valid": 6,
                  "accumulate": 1, "dataflow": 1, "a_signed": 1, "b_signed": 1,
                  "a_zero": signed(16), "b_zero": signed(16)},
        store_op: {"raw": 1, "dram_addr": addr, "acc_row": row, "rows": 8, "cols": 8,
                   "stride": addr, "qp_row": row, "out_zero": signed(16), "mode": 1,
                   "clamp_min": signed(16), "clamp_max": signed(16),
                   "kernel_h": 4, "kernel_w": 4, "step": 8, "pitch": row,
                   **({"add": 1, "skip_addr": addr, "add_clamp_min": signed(9),
                       "add_clamp_max": signed(9), "elem_signed": 1, "skip_first": 1,
                       "constants": 96} if config.with_store_add else {})},
    }


def _bits(layout):
    return [(name, f.offset, Shape.cast(f.shape)) for name, f in layout], layout.size


@pytest.mark.parametrize("config", [
    EngineConfig(),
    EngineConfig(rows=4, cols=4, spad_depth=256, acc_depth=64, qp_depth=16, mem_bytes=1 << 14),
    EngineConfig(rows=1, cols=1, spad_depth=64, acc_depth=32, qp_depth=8, mem_bytes=1 << 12,
                 requant_modes="none"),
    EngineConfig(spad_depth=1 << 14, mem_bytes=1 << 31),
], ids=["default", "4x4", "1x1", "largest"])
def test_layouts_unchanged(config):
    for make, fields in _written_out(config).items():
        expected = {name: Shape.cast(shape) for name, shape in fields.items()}
        got, size = _bits(make(config))
        assert [(n, s) for n, _, s in got] == list(expected.items()), make.__name__
        offsets = [0]
        for shape in expected.values():
            offsets.append(offsets[-1] + shape.width)
        assert [o for _, o, _ in got] == offsets[:-1] and size == offsets[-1], make.__name__
