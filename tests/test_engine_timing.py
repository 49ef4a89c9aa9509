"""The engine's Fmax bench (rvnpu.bench.engine_timing): it knows the ECP5 boards' engines,
refuses the others, and reads nextpnr's worst path. The place-and-route itself runs in
``python -m rvnpu.bench.engine_timing``, tens of minutes, not here."""

import pytest

from rvnpu.bench.engine_timing import _ecp5_boards, _paths, engine_timing, format_result


def test_only_ecp5_boards_and_parts_are_measured():
    assert {"ulx3s-85f", "ulx3s-25f"} <= set(_ecp5_boards())
    with pytest.raises(ValueError, match="board must be one of"):
        engine_timing("icebreaker")
    with pytest.raises(ValueError, match="device must be one of"):
        engine_timing("ulx3s-25f", device="LFE5U-12F")


def test_worst_path_names_its_ends_and_cells():
    step = lambda a, b, ns: {"from": {"cell": a}, "to": {"cell": b}, "delay": ns}  # noqa: E731
    report = {"critical_paths": [{"from": "posedge clk", "to": "posedge clk", "path": [
        step("frontend.post_height_FF", "frontend.lut_1", 0.5),
        step("frontend.lut_1", "frontend.lut_1", 1.0),
        step("frontend.lut_1", "frontend.post_ow_FF", 2.25)]}]}
    [path] = _paths(report, 3)
    assert (path["from"], path["to"], path["ns"]) == ("frontend.post_height_FF",
                                                      "frontend.post_ow_FF", 3.75)
    assert path["cells"] == ["frontend.post_height_FF", "frontend.lut_1", "frontend.post_ow_FF"]
    assert path["signals"] == ["frontend.post_height_FF", "frontend.lut_1", "frontend.post_ow_FF"]
    named = _paths({"critical_paths": [{"path": [
        step("post.qadd.fma_a_p_top_TRELLIS_FF_Q", "post.qadd.fma_a_s_exp_LUT4_Z", 1.0),
        step("post.qadd.fma_a_s_exp_LUT4_Z", "$nextpnr_CCU2C_13$CCU2_COMB0", 1.0),
        step("$nextpnr_CCU2C_13$CCU2_COMB0", "post.qadd.fma_a_s_exp_CCU2C_S1", 1.0),
        step("post.qadd.fma_a_s_exp_CCU2C_S1", "post.qadd.fma_a_s_mag_TRELLIS_FF_Q_31", 1.0),
    ]}]}, 1)[0]["signals"]
    assert named == ["post.qadd.fma_a_p_top", "post.qadd.fma_a_s_exp", "post.qadd.fma_a_s_mag"]
    text = format_result({"board": "ulx3s-85f", "rows": 8, "cols": 8, "device": "--85k",
                          "seed": 1, "fmax_mhz": 21.5, "target_mhz": 90, "cells": {},
                          "seconds": {}, "worst_paths": [path]})
    assert "Fmax 21.5 MHz against 90" in text
    assert "frontend.post_height_FF -> frontend.post_ow_FF" in text


def test_one_block_is_placed_alone():
    """``--block lane``: the ULX3S-25F's requantisation lane (TFLite only) placed on its own,
    its worst path inside the lane, its 32x32 product in DSP blocks."""
    with pytest.raises(ValueError, match="block must be one of lane, qadd, not 'pe'"):
        engine_timing("ulx3s-25f", block="pe")
    result = engine_timing("ulx3s-25f", block="lane", freq_mhz=100, progress=lambda text: None)
    assert result["block"] == "lane" and result["board"] == "ulx3s-25f"
    assert 20 < result["fmax_mhz"] < 400
    assert result["cells"]["MULT18X18D"] >= 4
    path = result["worst_paths"][0]
    assert path["clock"] == "posedge clk -> posedge clk" and path["ns"] > 1
    assert format_result(result).startswith("ulx3s-25f lane (8x6, --25k, seed 1): Fmax")
