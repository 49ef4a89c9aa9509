"""The command spec: layout sanity, encode/decode round trips, range checks, the status word."""

import numpy as np
import pytest

from rvnpu.spec.commands import (COMMANDS, LIST_ENTRY, LIST_ENTRY_BYTES, QP_ROWS, ROW_BITS,
                                 STATUS_FIELDS, Command, ErrorCode, Funct, IsaError, Space, Unit,
                                 decode, encode, field_of, pack_fields, pack_list, unpack_list,
                                 unpack_status)


SEED = 0x15A
ALL_FUNCTS = sorted(COMMANDS)
KNOWN = {int(f) for f in Funct}
UNKNOWN = [f for f in range(128) if f not in KNOWN]


def _fields_mask(fields, operand):
    mask = 0
    for f in fields:
        if f.operand == operand:
            mask |= ((1 << f.width) - 1) << f.lsb
    return mask


# -- The spec itself -----------------------------------------------------------------------------

def test_every_funct_has_a_command():
    assert set(COMMANDS) == set(Funct)
    for funct, cmd in COMMANDS.items():
        assert isinstance(cmd, Command) and cmd.funct == funct and cmd.name == funct.name
        assert 0 <= funct < 128, f"{funct.name}: function codes are 7 bits"
    assert {f for f, c in COMMANDS.items() if c.response} == {Funct.FENCE, Funct.STATUS}
    assert {f for f, c in COMMANDS.items() if c.unit == Unit.FRONT} == {Funct.FENCE,
                                                                        Funct.STATUS,
                                                                        Funct.RUN}


@pytest.mark.parametrize("funct", ALL_FUNCTS, ids=lambda f: f.name)
def test_fields_fit_and_do_not_overlap(funct):
    cmd = COMMANDS[funct]
    names = [f.name for f in cmd.fields]
    assert len(set(names)) == len(names), f"{funct.name}: duplicate field names {names}"
    for operand in (1, 2):
        used = 0
        for f in cmd.fields:
            if f.operand != operand:
                continue
            assert f.width >= 1 and f.lsb >= 0 and f.lsb + f.width <= 32, \
                f"{funct.name}.{f.name} does not fit a 32-bit operand"
            bits = ((1 << f.width) - 1) << f.lsb
            assert not used & bits, f"{funct.name}.{f.name} overlaps another field"
            used |= bits


def test_status_fields_fit_and_do_not_overlap():
    used = 0
    for f in STATUS_FIELDS:
        bits = ((1 << f.width) - 1) << f.lsb
        assert f.operand == 1 and f.lsb + f.width <= 32 and not used & bits, f.name
        used |= bits
    assert [f.name for f in STATUS_FIELDS] == ["busy", "error", "list_busy", "list_done",
                                              "error_code", "error_funct", "error_count"]
    assert max(ErrorCode) < 1 << next(f.width for f in STATUS_FIELDS if f.name == "error_code")


def test_spec_constants():
    assert ROW_BITS == 14 and QP_ROWS == 3
    load_space = field_of(Funct.LOAD, "space")
    assert load_space.width == 2 and max(Space) == 3
    assert field_of(Funct.LOAD, "local_row").width == ROW_BITS
    assert field_of(Funct.COMPUTE, "a_row").width == ROW_BITS


def test_field_ranges():
    f = field_of(Funct.CONFIG_EXEC, "a_zero")
    assert (f.lo, f.hi, f.signed) == (-32768, 32767, True)
    f = field_of(Funct.LOAD, "rows")
    assert (f.lo, f.hi, f.signed) == (0, 255, False)
    f = field_of(Funct.CONFIG_LOAD, "stride")
    assert (f.lo, f.hi) == (0, (1 << 32) - 1)


def test_field_of_unknown():
    with pytest.raises(IsaError, match="no field 'nope'"):
        field_of(Funct.LOAD, "nope")
    with pytest.raises(IsaError, match="unknown engine function"):
        field_of(0x7f, "rows")


# -- Round trips ---------------------------------------------------------------------------------

def _random_values(rng, cmd):
    """Each field at an extreme (lo, hi, 0, -1/1) or a random value, one pick per field."""
    values = {}
    for f in cmd.fields:
        pick = rng.integers(0, 6)
        if pick == 0:
            values[f.name] = f.lo
        elif pick == 1:
            values[f.name] = f.hi
        elif pick == 2:
            values[f.name] = 0
        elif pick == 3:
            values[f.name] = -1 if f.signed else 1
        else:
            values[f.name] = int(rng.integers(f.lo, f.hi, endpoint=True))
    return values


@pytest.mark.parametrize("funct", ALL_FUNCTS, ids=lambda f: f.name)
def test_round_trip(funct):
    rng = np.random.default_rng([SEED, funct])
    cmd = COMMANDS[funct]
    cases = [{f.name: f.lo for f in cmd.fields}, {f.name: f.hi for f in cmd.fields}]
    cases += [_random_values(rng, cmd) for _ in range(200)]
    for i, values in enumerate(cases):
        word = encode(funct, **values)
        assert word[0] == int(funct) and all(isinstance(x, int) for x in word)
        assert 0 <= word[1] < 1 << 32 and 0 <= word[2] < 1 << 32, \
            f"{funct.name} case {i} {values}: operands not 32-bit unsigned: {word}"
        got_cmd, got = decode(*word)
        assert got_cmd is cmd
        assert got == values, f"{funct.name} case {i} (seed {SEED}): {values} -> {word} -> {got}"
    # Fields left out encode as 0.
    assert decode(*encode(funct)) == (cmd, {f.name: 0 for f in cmd.fields})


@pytest.mark.parametrize("funct", ALL_FUNCTS, ids=lambda f: f.name)
def test_decode_ignores_unused_bits(funct):
    rng = np.random.default_rng([SEED, 1, funct])
    cmd = COMMANDS[funct]
    m1, m2 = _fields_mask(cmd.fields, 1), _fields_mask(cmd.fields, 2)
    for i in range(200):
        op1, op2 = (int(x) for x in rng.integers(0, 1 << 32, 2))
        _, values = decode(funct, op1, op2)
        again = encode(funct, **values)
        assert again == (int(funct), op1 & m1, op2 & m2), \
            f"{funct.name} case {i} (seed {SEED}): {op1:#x}, {op2:#x} -> {values} -> {again}"


def test_signed_extremes_bit_patterns():
    _, op1, op2 = encode(Funct.CONFIG_EXEC, a_zero=-32768, b_zero=-1)
    assert op2 == 0x8000 | 0xffff << 16
    _, op1, op2 = encode(Funct.CONFIG_REQUANT, out_zero=-1, mode=1, clamp_min=-32768,
                         clamp_max=32767)
    assert op1 == 0xffff | 1 << 16 and op2 == 0x8000 | 0x7fff << 16
    assert decode(Funct.CONFIG_REQUANT, op1, op2)[1] == dict(
        out_zero=-1, mode=1, clamp_min=-32768, clamp_max=32767)


def test_known_layouts():
    # Spot checks against the documented bit positions.
    _, op1, op2 = encode(Funct.LOAD, dram_addr=0x12345678, local_row=5, space=Space.QP,
                         rows=7, cols=9)
    assert op1 == 0x12345678 and op2 == 5 | 3 << 14 | 7 << 16 | 9 << 24
    _, op1, op2 = encode(Funct.COMPUTE, a_row=1, b_row=2, c_row=3, steps=1023, k_valid=63,
                         accumulate=1)
    assert op1 == 1 | 2 << 14 and op2 == 3 | 1023 << 14 | 63 << 24 | 1 << 30
    assert encode(Funct.STATUS, clear=1) == (0x21, 1, 0)
    assert encode(Funct.FENCE) == (0x20, 0, 0)


# -- Rejections ----------------------------------------------------------------------------------

@pytest.mark.parametrize("funct", [f for f in ALL_FUNCTS if COMMANDS[f].fields],
                         ids=lambda f: f.name)
def test_encode_rejects_out_of_range(funct):
    for f in COMMANDS[funct].fields:
        for bad in (f.lo - 1, f.hi + 1, f.hi + (1 << f.width), f.lo - (1 << 40)):
            with pytest.raises(IsaError) as info:
                encode(funct, **{f.name: bad})
            message = str(info.value)
            assert f.name in message and str(bad) in message and "\n" not in message, message
        # The extremes themselves are fine.
        encode(funct, **{f.name: f.lo})
        encode(funct, **{f.name: f.hi})


def test_encode_rejects_unknown_field():
    with pytest.raises(IsaError, match="LOAD has no field 'stride'"):
        encode(Funct.LOAD, stride=4)
    with pytest.raises(IsaError, match="no field"):
        encode(Funct.FENCE, clear=1)


@pytest.mark.parametrize("funct", [0x04, 0x09, 0x11, 0x23, 0x7f, 200, -1])
def test_encode_rejects_unknown_funct(funct):
    with pytest.raises(IsaError, match="unknown engine function"):
        encode(funct)


def test_decode_unknown_funct_raises():
    for funct in UNKNOWN:
        with pytest.raises(IsaError) as info:
            decode(funct, 0, 0)
        assert repr(funct) in str(info.value) and "\n" not in str(info.value)


def test_isa_error_is_value_error():
    assert issubclass(IsaError, ValueError)


def test_pack_fields_names_what():
    with pytest.raises(IsaError, match="^status field busy must be from 0 to 1, not 2$"):
        pack_fields(STATUS_FIELDS, {"busy": 2}, "status")


# -- Status word ---------------------------------------------------------------------------------

def test_unpack_status_known_word():
    word = 1 | 1 << 1 | 1 << 3 | ErrorCode.BAD_MEMORY << 4 | Funct.LOAD << 8 | 0xabcd << 16
    assert unpack_status(word) == dict(busy=1, error=1, list_busy=0, list_done=1,
                                       error_code=ErrorCode.BAD_MEMORY,
                                       error_funct=int(Funct.LOAD), error_count=0xabcd)
    assert unpack_status(1 << 2) == dict(busy=0, error=0, list_busy=1, list_done=0,
                                         error_code=0, error_funct=0, error_count=0)


def test_status_round_trip():
    rng = np.random.default_rng(SEED)
    for i in range(300):
        values = {f.name: int(rng.integers(f.lo, f.hi, endpoint=True)) for f in STATUS_FIELDS}
        word, zero = pack_fields(STATUS_FIELDS, values, "status")
        assert zero == 0
        assert unpack_status(word) == values, f"case {i} (seed {SEED}): {values} {word:#x}"


def test_unpack_status_ignores_reserved_bits():
    used = _fields_mask(STATUS_FIELDS, 1)
    reserved = ~used & 0xffffffff
    assert reserved, "the status word has reserved bits (2, 3, 15)"
    assert unpack_status(reserved) == {f.name: 0 for f in STATUS_FIELDS}


def test_requant_mode_field_comes_from_the_modes():
    """CONFIG_REQUANT's mode field is as wide as the largest mode code needs, and documents
    every mode of :mod:`rvnpu.spec.requant`."""
    from rvnpu.spec.requant import MODES, RequantMode

    f = field_of(Funct.CONFIG_REQUANT, "mode")
    assert f.width == max(1, max(int(m) for m in RequantMode).bit_length()) == 1
    assert f.doc == "0: TFLite/gemmlowp fixed point, 1: ONNX Runtime float32"
    for mode in MODES:
        assert f.lo <= mode.code <= f.hi
        assert decode(*encode(Funct.CONFIG_REQUANT, mode=mode.code))[1]["mode"] == mode.code


def test_list_entry_layout():
    """Four little-endian words, funct first; RUN's fields cover both operands."""
    assert LIST_ENTRY == ("funct", "op1", "op2", "reserved") and LIST_ENTRY_BYTES == 16
    assert encode(Funct.RUN, list_addr=0x40, count=3) == (0x22, 0x40, 3)
    data = pack_list([(Funct.COMPUTE, 0x01020304, 0xa0b0c0d0)])
    assert data == bytes([0x10, 0, 0, 0, 4, 3, 2, 1, 0xd0, 0xc0, 0xb0, 0xa0, 0, 0, 0, 0])
    assert unpack_list(data + data[:8]) == [(0x10, 0x01020304, 0xa0b0c0d0)]
    assert field_of(Funct.STATUS, "clear_done").lsb == 1
