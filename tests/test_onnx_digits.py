"""The digits demo (``rvnpu digits``), small enough for CI: both classifiers trained,
quantised by onnxruntime and run on the simulated SoC for a few test images."""

import numpy as np
import pytest

from rvnpu.flows.digits import format_results, load_digits_split, run_digits
from rvnpu.flows.model import DEFAULT_SOC
from rvnpu.sim import toolchain


def test_split_is_fixed():
    x_train, x_test, y_train, y_test = load_digits_split()
    assert (len(x_train), len(x_test)) == (1437, 360)
    assert x_train.dtype == np.float32 and 0 <= x_train.min() and x_train.max() <= 1
    again = load_digits_split()
    assert np.array_equal(again[1], x_test) and np.array_equal(again[3], y_test)


@pytest.mark.skipif("verilator" not in toolchain.available_simulators(),
                    reason="Verilator not available")
def test_digits_demo_on_the_chip(tmp_path):
    results = run_digits(tmp_path, count=12, progress=lambda text: None)
    assert [r.name for r in results] == ["mlp", "cnn"]
    for r in results:
        assert r.identical == r.chip_images == 12          # bit for bit with onnxruntime
        assert r.chip_accuracy == r.ort_accuracy_same_images
        assert r.float_accuracy > 0.95 and r.ort_accuracy > 0.94
        assert 0 < sum(r.layer_cycles) <= r.cycles
    text = format_results(results, DEFAULT_SOC.clock_hz)
    assert "mlp" in text and "cnn" in text and "inferences/s" in text
