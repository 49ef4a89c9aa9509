"""EngineConfig: every parameter is checked at once, with a one-line message naming it."""

import dataclasses

import pytest

from rvnpu.spec.config import DATAFLOWS, HAZARDS, REQUANT_MODES, ConfigError, EngineConfig


def test_defaults_are_valid():
    c = EngineConfig()
    assert (c.rows, c.cols, c.in_width, c.acc_width, c.dataflow) == (8, 8, 8, 32, "both")
    assert c.elem_bytes == 1 and c.bus_bytes == c.bus_width // 8
    assert c.with_os and c.with_ws


@pytest.mark.parametrize("dataflow, os, ws", [("os", True, False), ("ws", False, True),
                                              ("both", True, True)])
def test_dataflow_flags(dataflow, os, ws):
    c = EngineConfig(dataflow=dataflow)
    assert (c.with_os, c.with_ws) == (os, ws)


@pytest.mark.parametrize("in_width, elem_bytes", [(4, 1), (8, 1), (16, 2)])
def test_elem_bytes(in_width, elem_bytes):
    assert EngineConfig(in_width=in_width).elem_bytes == elem_bytes


@pytest.mark.parametrize("kwargs", [
    dict(rows=1, cols=1), dict(rows=32, cols=32), dict(rows=3, cols=5),
    dict(in_width=4, acc_width=8), dict(in_width=8, acc_width=16),
    dict(in_width=16, acc_width=32),
    dict(spad_depth=16, acc_depth=16, qp_depth=4), dict(spad_depth=1 << 14),
    dict(bus_width=32), dict(bus_width=128), dict(mem_bytes=1 << 10), dict(mem_bytes=1 << 31),
    dict(queue_depth=1), dict(queue_depth=16), *[dict(dataflow=d) for d in DATAFLOWS],
    dict(cols=6, requant_lanes=3), dict(cols=6, requant_lanes=1), dict(cols=6, requant_lanes=6),
    *[dict(requant_modes=r) for r in REQUANT_MODES],
    *[dict(hazards=h) for h in HAZARDS],
    dict(logic_macs=0), dict(rows=3, cols=5, logic_macs=15), dict(rows=32, cols=32, logic_macs=7),
    dict(command_fetch=True), dict(command_fetch=False),
], ids=repr)
def test_valid_edges(kwargs):
    c = EngineConfig(**kwargs)
    for name, value in kwargs.items():
        assert getattr(c, name) == value


def test_in_width_16_is_constructible():
    # acc_width must hold 2 * in_width bits; it once had to hold 2 * (in_width + 1) = 34 while
    # being capped at 32, so no 16-bit configuration could be made.
    c = EngineConfig(rows=2, cols=3, in_width=16)
    assert c.elem_bytes == 2 and c.acc_width == 32


INVALID = [
    ("rows", dict(rows=0)),
    ("rows", dict(rows=33)),
    ("rows", dict(rows=-1)),
    ("rows", dict(rows=4.0)),
    ("rows", dict(rows=True)),
    ("rows", dict(rows="4")),
    ("cols", dict(cols=0)),
    ("cols", dict(cols=33)),
    ("in_width", dict(in_width=7)),
    ("in_width", dict(in_width=0)),
    ("in_width", dict(in_width=32)),
    ("acc_width", dict(acc_width=0)),
    ("acc_width", dict(acc_width=33)),
    ("acc_width", dict(in_width=8, acc_width=15)),
    ("acc_width", dict(in_width=4, acc_width=7)),
    ("acc_width", dict(in_width=16, acc_width=33)),
    ("acc_width", dict(in_width=16, acc_width=31)),
    ("dataflow", dict(dataflow="xy")),
    ("dataflow", dict(dataflow="OS")),
    ("dataflow", dict(dataflow=None)),
    ("spad_depth", dict(spad_depth=100)),
    ("spad_depth", dict(spad_depth=8)),
    ("spad_depth", dict(spad_depth=1 << 15)),
    ("acc_depth", dict(acc_depth=48)),
    ("acc_depth", dict(acc_depth=8)),
    ("acc_depth", dict(rows=32, acc_depth=16)),
    ("qp_depth", dict(qp_depth=2)),
    ("qp_depth", dict(qp_depth=12)),
    ("bus_width", dict(bus_width=16)),
    ("bus_width", dict(bus_width=256)),
    ("bus_width", dict(bus_width=48)),
    ("mem_bytes", dict(mem_bytes=1000)),
    ("mem_bytes", dict(mem_bytes=512)),
    ("mem_bytes", dict(mem_bytes=3 << 10)),
    ("mem_bytes", dict(mem_bytes=1 << 32)),
    ("queue_depth", dict(queue_depth=0)),
    ("queue_depth", dict(queue_depth=17)),
    ("requant_lanes", dict(cols=6, requant_lanes=4)),
    ("requant_lanes", dict(cols=6, requant_lanes=7)),
    ("requant_lanes", dict(requant_lanes=-1)),
    ("requant_modes", dict(requant_modes="gemmlowp")),
    ("hazards", dict(hazards="none")),
    ("logic_macs", dict(rows=3, cols=5, logic_macs=16)),
    ("logic_macs", dict(logic_macs=-1)),
    ("logic_macs", dict(logic_macs=True)),
    ("command_fetch", dict(command_fetch=2)),
    ("command_fetch", dict(command_fetch="yes")),
]


def test_requant_lanes_default_is_one_a_column():
    assert EngineConfig(cols=5).lanes == 5
    assert EngineConfig(cols=6, requant_lanes=2).lanes == 2
    assert (EngineConfig(requant_modes="ort").with_tflite,
            EngineConfig(requant_modes="ort").with_ort) == (False, True)


def test_requant_modes_are_a_set_of_the_spec_modes():
    """The strings users give stay as they were; inside, a config holds spec modes."""
    assert REQUANT_MODES == ("tflite", "ort", "both", "none")
    built = {r: [m.name for m in EngineConfig(requant_modes=r).built_requant_modes]
             for r in REQUANT_MODES}
    assert built == {"tflite": ["tflite"], "ort": ["ort"], "both": ["tflite", "ort"],
                     "none": []}
    for r in REQUANT_MODES:
        c = EngineConfig(requant_modes=r)
        assert c.with_requant == bool(built[r])
        assert [n for n in ("tflite", "ort") if c.with_requant_mode(n)] == built[r]
    with pytest.raises(ConfigError, match="^requant_modes must be one of tflite, ort, both, "
                                          "none, not 'gemmlowp'$"):
        EngineConfig(requant_modes="gemmlowp")


def _check_message(error, name, kwargs):
    message = str(error)
    assert "\n" not in message, f"{kwargs}: message is not one line: {message!r}"
    assert name in message, f"{kwargs}: message does not name {name}: {message!r}"
    assert message.strip() == message and message


@pytest.mark.parametrize("name, kwargs", INVALID, ids=[repr(k) for _, k in INVALID])
def test_invalid_parameter(name, kwargs):
    with pytest.raises(ConfigError) as info:
        EngineConfig(**kwargs)
    _check_message(info.value, name, kwargs)
    # The value given is named as well, so the reader knows what to change.
    assert repr(kwargs[name]) in str(info.value), f"{kwargs}: {info.value}"


@pytest.mark.parametrize("name, kwargs", INVALID, ids=[repr(k) for _, k in INVALID])
def test_replace_rechecks(name, kwargs):
    with pytest.raises(ConfigError) as info:
        dataclasses.replace(EngineConfig(), **kwargs)
    _check_message(info.value, name, kwargs)


def test_config_error_is_value_error():
    assert issubclass(ConfigError, ValueError)
    with pytest.raises(ValueError):
        EngineConfig(rows=0)


def test_frozen():
    c = EngineConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.rows = 4


@pytest.mark.parametrize("config", [
    EngineConfig(),
    EngineConfig(rows=4, cols=4, dataflow="both", spad_depth=256, acc_depth=64, qp_depth=16,
                 mem_bytes=1 << 14),
    EngineConfig(rows=3, cols=5, in_width=4, acc_width=20, dataflow="ws", spad_depth=16,
                 acc_depth=16, qp_depth=4, bus_width=32, mem_bytes=1 << 10, queue_depth=1),
], ids=["default", "small", "odd"])
def test_dict_round_trip(config):
    d = config.to_dict()
    assert set(d) == {f.name for f in dataclasses.fields(EngineConfig)}
    assert all(isinstance(v, (int, str)) for v in d.values())
    back = EngineConfig.from_dict(d)
    assert back == config and back.to_dict() == d
    # A partial dict leaves the rest at the defaults.
    assert EngineConfig.from_dict({"rows": config.rows}) == EngineConfig(rows=config.rows)


def test_from_dict_unknown_key():
    with pytest.raises(ConfigError) as info:
        EngineConfig.from_dict({**EngineConfig().to_dict(), "colums": 4})
    _check_message(info.value, "colums", "colums")


def test_from_dict_checks_values():
    with pytest.raises(ConfigError) as info:
        EngineConfig.from_dict({"rows": 0})
    _check_message(info.value, "rows", {"rows": 0})


def test_command_fetch_takes_a_flag_or_its_number():
    """The command line gives integers; 0 and 1 become the flag (so the JSON and the C header
    say false/true alike), anything else is refused."""
    assert EngineConfig(command_fetch=0).command_fetch is False
    assert EngineConfig(command_fetch=1).command_fetch is True
    assert EngineConfig().command_fetch is True


def test_zero_point_sums_is_a_flag_of_weight_stationary_engines():
    """An output-stationary cell keeps its sum inside the array, where no correction below
    it can reach, so only a WS-only engine takes the zero points off with sums."""
    assert EngineConfig().zero_point_sums is False
    assert EngineConfig(dataflow="ws", zero_point_sums=1).zero_point_sums is True
    for dataflow in ("os", "both"):
        with pytest.raises(ConfigError, match=f"^zero_point_sums needs dataflow ws .*"
                                              f"not '{dataflow}'$"):
            EngineConfig(dataflow=dataflow, zero_point_sums=True)
    with pytest.raises(ConfigError, match="^zero_point_sums must be true or false"):
        EngineConfig(dataflow="ws", zero_point_sums=2)


def test_sb_mac16_pairs_need_raw_8_bit_cells():
    """An SB_MAC16's halves multiply 8-bit operands: the cells' must be the raw elements."""
    ws = dict(dataflow="ws", zero_point_sums=True)
    assert EngineConfig(**ws, sb_mac16_pairs=1).sb_mac16_pairs is True
    for bad in (dict(dataflow="ws"), dict(ws, in_width=4, acc_width=16),
                dict(ws, in_width=16)):
        with pytest.raises(ConfigError, match="^sb_mac16_pairs needs zero_point_sums and "
                                              "in_width 8 "):
            EngineConfig(**bad, sb_mac16_pairs=True)
