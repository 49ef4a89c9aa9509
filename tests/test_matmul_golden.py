"""The matmul example's Python golden: its draws, its checksum and the parsing of its output."""

import numpy as np

from rvnpu.spec.config import EngineConfig
from rvnpu.sim.golden.gemm import gemm_reference
from rvnpu.sim.golden.examples import fnv1a, matmul_example, parse_checksum


def test_fnv1a_known_values():
    assert fnv1a(b"") == 0x811C9DC5
    assert fnv1a(b"a") == 0xE40C292C


def test_example_is_the_reference_gemm_of_its_operands():
    example = matmul_example(5, 11, 9, seed=3)
    assert example.a.shape == (5, 9) and example.b.shape == (9, 11)
    assert example.a.min() >= -128 and example.a.max() <= 127
    want = gemm_reference(example.a, example.b, example.bias, example.requant,
                          a_zero=example.a_zero)
    assert (example.c == want).all()
    assert example.checksum == fnv1a(example.c.astype(np.int8).tobytes())


def test_seeds_and_widths_change_the_operands():
    assert (matmul_example(4, 4, 4, seed=1).a != matmul_example(4, 4, 4, seed=2).a).any()
    int4 = matmul_example(4, 4, 4, seed=1, config=EngineConfig(in_width=4, acc_width=32))
    assert int4.a.min() >= -8 and int4.a.max() <= 7


def test_parse_checksum_takes_the_result_line_not_a_failure_line():
    text = ("direct: cycles 10, engine active 5, utilisation 1.0%\n"
            "FAILED: replay status 0x00000001, checksum 0x11111111\n"
            "C at 0x00001000, checksum 0x2222aaaa\n")
    assert parse_checksum(text) == 0x2222AAAA
    assert parse_checksum("FAILED: replay status 0x1, checksum 0x11111111\n") is None
