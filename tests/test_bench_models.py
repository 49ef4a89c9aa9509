"""``rvnpu bench models``: the networks' shapes and MAC counts (counted here from their layer
lists, independently of the graph walk), the roofline arithmetic, the report written end to end
for the digits MLP on the simulated SoC, and the refusal of an unknown model name."""

import json

import numpy as np
import onnx
import onnxruntime
import pytest

from rvnpu.bench import model_zoo
from rvnpu.bench.models import ModelRecord, bench_models, format_table, plot_roofline, \
    write_results
from rvnpu.flows.model import DEFAULT_SOC

from cli_runner import rvnpu


def _conv(h, w, cin, cout, k, stride=1, pad=None, group=1):
    """``(MACs, out h, out w)`` of a convolution with symmetric padding."""
    kh, kw = k if isinstance(k, tuple) else (k, k)
    ph, pw = pad if pad is not None else (kh // 2, kw // 2)
    oh, ow = (h + 2 * ph - kh) // stride + 1, (w + 2 * pw - kw) // stride + 1
    return oh * ow * cout * (cin // group) * kh * kw, oh, ow


def resnet8_macs():
    total, _, _ = _conv(32, 32, 3, 16, 3)
    size, cin = 32, 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        a, size2, _ = _conv(size, size, cin, cout, 3, stride)
        b, _, _ = _conv(size2, size2, cout, cout, 3)
        shortcut = _conv(size, size, cin, cout, 1, stride, (0, 0))[0] if stride > 1 else 0
        total += a + b + shortcut
        size, cin = size2, cout
    return total + 64 * 10


def ds_cnn_macs():
    total, h, w = _conv(49, 10, 1, 64, (10, 4), 2, (5, 1))
    assert (h, w) == (25, 5)            # as Keras's "same" padding gives
    for _ in range(4):
        total += h * w * 64 * 9 + h * w * 64 * 64
    return total + 64 * 12


def mobilenet_macs():
    # MobileNetV1's table (Howard et al. 2017) at alpha 0.25: (channels out, stride) a block.
    blocks = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2)] + [(128, 1)] * 5 \
        + [(256, 2), (256, 1)]
    total, size, _ = _conv(96, 96, 3, 8, 3, 2)
    cin = 8
    for cout, stride in blocks:
        dw, size, _ = _conv(size, size, cin, cin, 3, stride, group=cin)
        total += dw + size * size * cin * cout
        cin = cout
    assert (size, cin) == (3, 256)
    return total + 256 * 2


AUTOENCODER_MACS = 640 * 128 + 3 * 128 * 128 + 128 * 8 + 8 * 128 + 3 * 128 * 128 + 128 * 640

EXPECTED = {
    "digits_mlp": ((1, 64), (1, 10), 64 * 32 + 32 * 10),
    "digits_cnn": ((1, 1, 8, 8), (1, 10), 8 * 8 * 8 * 9 + 8 * 16 * 10),
    "resnet8": ((1, 3, 32, 32), (1, 10), resnet8_macs()),
    "ds_cnn": ((1, 1, 49, 10), (1, 12), ds_cnn_macs()),
    "mobilenet_v1_025": ((1, 3, 96, 96), (1, 2), mobilenet_macs()),
    "fc_autoencoder": ((1, 640), (1, 640), AUTOENCODER_MACS),
}


def test_every_network_is_tested():
    assert set(EXPECTED) == set(model_zoo.MODELS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_network_shapes_and_macs(name, tmp_path):
    in_shape, out_shape, macs = EXPECTED[name]
    spec = model_zoo.MODELS[name]
    assert (spec.input_shape, spec.output_shape) == (in_shape, out_shape)
    path = spec.build(tmp_path / f"{name}.onnx", 3)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert model_zoo.count_macs(model) == macs
    x = np.random.default_rng(0).normal(size=in_shape).astype(np.float32)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    y, = session.run(None, {"image": x})
    assert y.shape == out_shape and np.isfinite(y).all()


def test_networks_are_seeded(tmp_path):
    def weights(seed, tag):
        path = model_zoo.ds_cnn(tmp_path / f"{tag}.onnx", seed)
        return [onnx.numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer]
    a, b, c = weights(5, "a"), weights(5, "b"), weights(6, "c")
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_traffic_of_a_residual_block(tmp_path):
    """Counted by hand on ResNet-8's identity shortcut at small scale (Conv + Relu, Conv,
    Add of the two, Flatten, Gemm on 5x5x3), built with the zoo's own layer builder."""
    net = model_zoo._Net(0)
    a = net.conv("image", 3, 4, (3, 3))                    # image 75 read, a 100 written
    b = net.conv(a, 4, 4, (1, 1), relu=False)              # a read, b 100 written
    s = net.add(b, a)                                      # a and b read, s 100 written
    f = net._node("Flatten", [s])
    y = net.gemm(f, 100, 6, relu=False)                    # s read, y 6 written
    path = net.save(y, (1, 3, 5, 5), (1, 6), tmp_path / "block.onnx")
    weights = (4 * 3 * 9 + 4 * 4) + (4 * 4 + 4 * 4) + (100 * 6 + 4 * 6)
    activations = 75 + (100 + 2 * 100) + (100 + 100) + (100 + 100) + 6
    assert model_zoo.count_traffic(path) == (weights, activations)


def _record(**overrides):
    values = dict(name="x", title="x", macs=64_000, weight_bytes=3_000, activation_bytes=1_000,
                  rows=8, cols=8, bus_bytes=8, clock_hz=30_000_000, cycles=2_000,
                  ram_bytes_used=40_000)
    values.update(overrides)
    return ModelRecord(**values)


def test_roofline_arithmetic():
    r = _record()
    assert r.bytes == 4_000
    assert (r.compute_bound_cycles, r.bandwidth_bound_cycles) == (1_000, 500)
    assert (r.bound_cycles, r.bound_by) == (1_000, "compute")
    assert r.efficiency == 0.5 and r.intensity == 16 and r.macs_per_cycle == 32
    assert r.ram_bytes == 65_536
    assert r.ms == pytest.approx(2_000 / 30e6 * 1e3)
    assert r.core_share is None and "not measured" in r.to_dict()["core_share_note"]
    bus = _record(macs=6_400, weight_bytes=30_000, activation_bytes=10_000, cycles=10_000,
                  sleep_cycles=9_600)
    assert (bus.bound_cycles, bus.bound_by) == (5_000, "bandwidth")
    assert bus.efficiency == 0.5 and bus.core_share == pytest.approx(0.04)
    refused = _record(cycles=None, status="refused", reason="no AveragePool")
    assert refused.efficiency is None and refused.ms is None
    assert "refused: no AveragePool" in format_table([r, refused])


def test_digits_mlp_end_to_end(tmp_path):
    records = bench_models(["digits_mlp"], tmp_path / "models", seed=1, config=DEFAULT_SOC,
                           progress=lambda text: None)
    r, = records
    assert (r.status, r.bit_exact) == ("ok", True), r.reason
    assert r.macs == 64 * 32 + 32 * 10 and r.cycles > r.bound_cycles > 0
    assert sum(r.layer_cycles) <= r.cycles and len(r.layer_cycles) == 2
    assert 0 < r.ram_bytes_used <= r.ram_bytes <= DEFAULT_SOC.ram_bytes
    table = format_table(records)
    assert "digits_mlp  " in table and str(r.cycles) in table and "not MLPerf" in table
    document = json.loads(write_results(records, tmp_path / "models.json", DEFAULT_SOC,
                                        seed=1).read_text())
    assert "not MLPerf results" in document["note"]
    result, = document["results"]
    assert result["cycles"] == r.cycles and result["bit_exact"] is True
    assert result["efficiency"] == pytest.approx(r.bound_cycles / r.cycles)
    png = plot_roofline(records, tmp_path / "roofline.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_unknown_model_is_a_one_line_error(tmp_path):
    result = rvnpu("bench", "models", "--models", "digits_mlp,resnet9", "--out", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "rvnpu: error: unknown model resnet9; choose from " + ", ".join(model_zoo.MODELS)]
    assert not list(tmp_path.iterdir())


def test_a_model_past_max_cycles_is_timed_out(tmp_path):
    r, = bench_models(["digits_mlp"], tmp_path, config=DEFAULT_SOC, max_cycles=2_000,
                      progress=lambda text: None)
    assert (r.status, r.reason, r.cycles) == ("timed out", "over 2000 cycles", None)
    assert "digits_mlp: timed out: over 2000 cycles" in format_table([r])
