"""The digits demo: scikit-learn's 8x8 digits classified on the simulated chip.

Two classifiers are trained here, deterministically and in seconds: an MLP
(scikit-learn's ``MLPClassifier``) and a small CNN (trained in numpy by this module). Each is
written to ONNX with ``onnx.helper`` from its learned weights, quantised by onnxruntime's
``quantize_static`` (QDQ format, int8, per-channel weights, ``reduce_range``) with training
images for calibration, compiled by ``rvnpu.compiler.onnx`` and run on the SoC. The float model, the
int8 model on onnxruntime and the chip are each scored on the test split; the chip's outputs
must equal onnxruntime's bit for bit.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rvnpu.compiler.onnx.ir import ModelError


__all__ = ["load_digits_split", "train_mlp", "train_cnn", "save_mlp", "save_cnn", "save_graph",
           "quantise", "run_digits", "DigitsResult"]

SEED = 0


def _sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise ModelError("the digits demo needs scikit-learn: pip install scikit-learn") \
            from None


def load_digits_split():
    """``(x_train, y_train, x_test, y_test)``: scikit-learn's bundled 8x8 digits scaled to
    [0, 1], 80/20 stratified split with a fixed seed (1437 and 360 images)."""
    _sklearn()
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    return train_test_split(x, digits.target, test_size=0.2, random_state=SEED,
                            stratify=digits.target)


def save_graph(graph_nodes, inits, in_shape, out_shape, path, *, output="logits",
               producer="rvnpu digits"):
    """A float ONNX model (opset 13) of these nodes and ``{name: array}`` initialisers, with
    one input ``image`` (what :func:`quantise` feeds) and one output, checked and saved."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    graph = helper.make_graph(
        graph_nodes, Path(path).stem,
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name=producer)
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def train_mlp(x, y, path):
    """A 64-32-10 ReLU MLP from scikit-learn, saved as ONNX (Gemm, Relu, Gemm)."""
    _sklearn()
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    mlp = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(x, y)
    return save_mlp(mlp.coefs_[0], mlp.intercepts_[0], mlp.coefs_[1], mlp.intercepts_[1], path)


def save_mlp(w0, b0, w1, b1, path):
    """The MLP's ONNX graph (Gemm, Relu, Gemm) with these weights (``w0``: 64 x hidden,
    ``w1``: hidden x 10), saved to ``path``; ``rvnpu bench models`` gives it random ones."""
    from onnx import helper
    nodes = [helper.make_node("Gemm", ["image", "w0", "b0"], ["h"], name="fc0"),
             helper.make_node("Relu", ["h"], ["r"], name="relu0"),
             helper.make_node("Gemm", ["r", "w1", "b1"], ["logits"], name="fc1")]
    inits = {"w0": w0, "b0": b0, "w1": w1, "b1": b1}
    return save_graph(nodes, inits, [1, 64], [1, 10], path)


def _patches(x):
    """3x3 receptive fields (padding 1) of ``(B, 8, 8)`` images: ``(B * 64, 9)``."""
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    return np.stack([p[:, i:i + 8, j:j + 8] for i in range(3) for j in range(3)],
                    axis=-1).reshape(-1, 9)


def train_cnn(x, y, path, *, channels=8, epochs=30, batch=32):
    """Conv 3x3 (8 channels, padding 1) - ReLU - MaxPool 2x2 - Flatten - Gemm, trained in
    numpy with minibatch SGD and momentum on the softmax cross-entropy, saved as ONNX."""
    rng = np.random.default_rng(SEED)
    images = x.reshape(-1, 8, 8).astype(np.float64)
    wc = rng.normal(0, np.sqrt(2 / 9), (9, channels))
    bc = np.zeros(channels)
    wf = rng.normal(0, np.sqrt(2 / (channels * 16)), (16 * channels, 10))
    bf = np.zeros(10)
    params = [wc, bc, wf, bf]
    velocity = [np.zeros_like(p) for p in params]
    for epoch in range(epochs):
        rate = 0.05 * (0.5 if epoch >= epochs * 2 // 3 else 1.0)
        order = rng.permutation(len(images))
        for start in range(0, len(images), batch):
            idx = order[start:start + batch]
            n = len(idx)
            patches = _patches(images[idx])                       # (n*64, 9)
            conv = (patches @ wc + bc).reshape(n, 8, 8, channels)
            relu = np.maximum(conv, 0)
            blocks = relu.reshape(n, 4, 2, 4, 2, channels)
            pooled = blocks.max(axis=(2, 4))                      # (n, 4, 4, C)
            flat = pooled.transpose(0, 3, 1, 2).reshape(n, -1)    # NCHW flatten, as ONNX
            logits = flat @ wf + bf
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(n), y[idx]] -= 1
            d_logits = p / n
            grads_f = (flat.T @ d_logits, d_logits.sum(axis=0))
            d_pooled = (d_logits @ wf.T).reshape(n, channels, 4, 4).transpose(0, 2, 3, 1)
            mask = blocks == pooled[:, :, None, :, None, :]
            mask = mask / mask.sum(axis=(2, 4), keepdims=True)    # ties share the gradient
            d_relu = (mask * d_pooled[:, :, None, :, None, :]).reshape(n, 8, 8, channels)
            d_conv = (d_relu * (conv > 0)).reshape(-1, channels)
            grads = (patches.T @ d_conv, d_conv.sum(axis=0)) + grads_f
            for p_, v, g in zip(params, velocity, grads):
                v *= 0.9
                v -= rate * (g + 1e-4 * p_)
                p_ += v
    return save_cnn(wc.T.reshape(channels, 1, 3, 3), bc, wf, bf, path)


def save_cnn(wc, bc, wf, bf, path):
    """The CNN's ONNX graph (Conv 3x3 padding 1, Relu, MaxPool 2x2, Flatten, Gemm) with these
    weights (``wc``: channels x 1 x 3 x 3, ``wf``: channels*16 x 10), saved to ``path``;
    ``rvnpu bench models`` gives it random ones."""
    from onnx import helper
    nodes = [helper.make_node("Conv", ["image", "wc", "bc"], ["c"], name="conv0",
                              kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu0"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool0", kernel_shape=[2, 2],
                              strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten0"),
             helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], name="fc0")]
    inits = {"wc": wc, "bc": bc, "wf": wf, "bf": bf}
    return save_graph(nodes, inits, [1, 1, 8, 8], [1, 10], path)


def quantise(float_path, int8_path, calibration_images, shape):
    """onnxruntime's static quantisation, QDQ, per-channel int8 weights with reduce_range
    (see docs/onnx.md on why), int8 activations calibrated on ``calibration_images``."""
    import logging
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.data = iter([{"image": x.reshape(shape)} for x in calibration_images])

        def get_next(self):
            return next(self.data, None)

    # It logs advice to pre-process first, and may configure the root logger, which would
    # then print every simulator run's INFO lines: both are undone.
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    root.setLevel(logging.ERROR)
    try:
        quantize_static(str(float_path), str(int8_path), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=True, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers
    return int8_path


@dataclass
class DigitsResult:
    name: str
    layers: int
    test_images: int
    float_accuracy: float
    ort_accuracy: float
    chip_images: int
    chip_accuracy: float
    ort_accuracy_same_images: float
    identical: int                   # chip outputs equal to onnxruntime's, bit for bit
    cycles: float                    # mean cycles an inference
    layer_cycles: list


def run_digits(out_dir, *, count=None, config=None, progress=print):
    """Train, export, quantise, compile and run both classifiers; ``count`` test images on
    the chip (all 360 if ``None``). Returns a list of :class:`DigitsResult`."""
    from rvnpu.flows.model import DEFAULT_SOC, compile_model, ort_session, run_model, same
    from rvnpu.sim.soc_sim import SocSimulator

    config = config or DEFAULT_SOC
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x_train, x_test, y_train, y_test = load_digits_split()
    progress(f"digits: {len(x_train)} training and {len(x_test)} test images "
             f"(scikit-learn's 8x8 digits)")
    chip_n = len(x_test) if count is None else max(1, min(count, len(x_test)))
    simulator = SocSimulator(config)
    results = []
    for name, train, shape in (("mlp", train_mlp, (1, 64)), ("cnn", train_cnn, (1, 1, 8, 8))):
        start = time.perf_counter()
        float_path = train(x_train, y_train, out_dir / f"digits_{name}.onnx")
        int8_path = quantise(float_path, out_dir / f"digits_{name}_int8.onnx",
                             x_train[:200], shape)
        progress(f"{name}: trained, exported and quantised in "
                 f"{time.perf_counter() - start:.1f} s -> {int8_path}")
        float_session, int8_session = ort_session(float_path), ort_session(int8_path)

        def predict(session):
            return np.stack([session.run(None, {"image": x.reshape(shape)})[0][0]
                             for x in x_test])
        float_logits, int8_logits = predict(float_session), predict(int8_session)
        compiled = compile_model(int8_path, out_dir / f"{name}_firmware", config,
                                 batch=min(chip_n, 128))
        start = time.perf_counter()
        chip = run_model(compiled, [x.reshape(shape) for x in x_test[:chip_n]],
                         simulator=simulator)
        progress(f"{name}: {chip_n} images on the chip in {time.perf_counter() - start:.1f} s")
        chip_logits = np.stack([r.output.reshape(-1) for r in chip])
        identical = sum(same(r.output, int8_logits[i].reshape(r.output.shape))
                        for i, r in enumerate(chip))
        truth = y_test[:chip_n]
        results.append(DigitsResult(
            name=name, layers=len(compiled.model.layers), test_images=len(x_test),
            float_accuracy=float(np.mean(float_logits.argmax(1) == y_test)),
            ort_accuracy=float(np.mean(int8_logits.argmax(1) == y_test)),
            chip_images=chip_n,
            chip_accuracy=float(np.mean(chip_logits.argmax(1) == truth)),
            ort_accuracy_same_images=float(np.mean(int8_logits[:chip_n].argmax(1) == truth)),
            identical=int(identical),
            cycles=float(np.mean([r.cycles for r in chip])),
            layer_cycles=[int(np.mean([r.layer_cycles[i] for r in chip]))
                          for i in range(len(compiled.model.layers))]))
    return results


def format_results(results, clock_hz):
    lines = ["model  float   ORT int8  chip    (images)  chip = ORT      cycles/inference",
             "-----  ------  --------  ------  --------  --------------  ----------------"]
    for r in results:
        verdict = "yes" if r.identical == r.chip_images else "NO"
        lines.append(f"{r.name:5}  {100 * r.float_accuracy:5.1f}%  {100 * r.ort_accuracy:7.1f}%"
                     f"  {100 * r.chip_accuracy:5.1f}%  {r.chip_images:8d}  "
                     f"{r.identical:4d}/{r.chip_images:<4d} {verdict:>4}  {r.cycles:16.0f}")
    lines.append(f"float and ORT int8 accuracy over all {results[0].test_images} test images; "
                 f"chip accuracy over the images it ran (ORT int8 on the same images: "
                 + ", ".join(f"{r.name} {100 * r.ort_accuracy_same_images:.1f}%"
                             for r in results) + ")")
    lines.append("cycles per layer: " + "; ".join(
        f"{r.name} " + " + ".join(str(c) for c in r.layer_cycles) for r in results)
        + f"; at {clock_hz / 1e6:g} MHz: " + ", ".join(
        f"{r.name} {clock_hz / r.cycles:.0f} inferences/s" for r in results))
    return "\n".join(lines)
