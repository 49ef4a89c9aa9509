"""The networks ``rvnpu bench models`` measures: their architectures with seeded random weights.

Two are the digits demo's classifiers (:mod:`rvnpu.flows.digits`, whose graph builders are
reused here with random weights instead of trained ones); four have the shapes of the MLPerf
Tiny reference networks. They are *not* the MLPerf models: no trained weights, no accuracy,
and BatchNorm left out (a deployed model has it folded into the convolutions). Each builder
writes a float ONNX model (NCHW, opset 13, input ``image``) that
:func:`rvnpu.flows.digits.quantise` turns into the int8 QDQ model the compiler reads.

Padding is symmetric (as the compiler requires); where Keras's ``same`` padding would pad a
strided convolution unevenly, the symmetric padding chosen gives the same output size.

The networks end at their logits: the reference networks' final Softmax does not change the
arg-max and is left to the host.
"""

from dataclasses import dataclass

import numpy as np


__all__ = ["ZooModel", "MODELS", "model_names", "digits_mlp", "digits_cnn", "resnet8",
           "ds_cnn", "mobilenet_v1_025", "fc_autoencoder", "quantised_model",
           "calibration_inputs", "count_macs", "count_traffic"]


def _weights(rng, shape, fan_in):
    """He-normal weights, so that activations neither vanish nor blow up layer after layer."""
    return (rng.normal(size=shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def _bias(rng, n):
    return (rng.normal(size=n) * 0.1).astype(np.float32)


class _Net:
    """Nodes and initialisers of one network, added layer by layer with random weights."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], {}

    def _node(self, op, inputs, **attrs):
        from onnx import helper
        name = f"{op.lower()}{len(self.nodes)}"
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def _param(self, kind, array):
        name = f"{kind}{len(self.inits)}"
        self.inits[name] = array
        return name

    def conv(self, x, cin, cout, kernel, *, stride=1, pads=None, group=1, relu=True):
        kh, kw = kernel
        pads = [kh // 2, kw // 2] * 2 if pads is None else pads
        w = self._param("w", _weights(self.rng, (cout, cin // group, kh, kw),
                                      cin // group * kh * kw))
        y = self._node("Conv", [x, w, self._param("b", _bias(self.rng, cout))],
                       kernel_shape=[kh, kw], strides=[stride, stride], pads=pads, group=group)
        return self._node("Relu", [y]) if relu else y

    def depthwise_separable(self, x, cin, cout, stride):
        """MobileNet's block: depthwise 3x3 (stride ``stride``), ReLU, pointwise 1x1, ReLU."""
        x = self.conv(x, cin, cin, (3, 3), stride=stride, group=cin)
        return self.conv(x, cin, cout, (1, 1))

    def gemm(self, x, k, n, *, relu=True):
        y = self._node("Gemm", [x, self._param("w", _weights(self.rng, (k, n), k)),
                                self._param("b", _bias(self.rng, n))])
        return self._node("Relu", [y]) if relu else y

    def add(self, a, b, *, relu=True):
        y = self._node("Add", [a, b])
        return self._node("Relu", [y]) if relu else y

    def save(self, last, in_shape, out_shape, path):
        """Name the last layer's output ``output`` and save the model."""
        from rvnpu.flows.digits import save_graph
        assert self.nodes[-1].output[0] == last, "the output must be the last node's"
        self.nodes[-1].output[0] = "output"
        return save_graph(self.nodes, self.inits, list(in_shape), list(out_shape), path,
                          output="output", producer="rvnpu bench models")


def digits_mlp(path, seed=0):
    """The digits demo's MLP, 64-32-10 with ReLU, with random weights."""
    from rvnpu.flows.digits import save_mlp
    rng = np.random.default_rng(seed)
    return save_mlp(_weights(rng, (64, 32), 64), _bias(rng, 32),
                    _weights(rng, (32, 10), 32), _bias(rng, 10), path)


def digits_cnn(path, seed=0, channels=8):
    """The digits demo's CNN on 8x8x1: Conv 3x3 (8 channels) - ReLU - MaxPool 2x2 - Gemm 10,
    with random weights."""
    from rvnpu.flows.digits import save_cnn
    rng = np.random.default_rng(seed)
    return save_cnn(_weights(rng, (channels, 1, 3, 3), 9), _bias(rng, channels),
                    _weights(rng, (channels * 16, 10), channels * 16), _bias(rng, 10), path)


def resnet8(path, seed=0):
    """MLPerf Tiny image classification's ResNet-8 on 32x32x3: Conv 3x3 16, then three residual
    stacks of two 3x3 convolutions (16, 32 and 64 channels; the second and third start with
    stride 2 and have a 1x1 stride-2 shortcut), AveragePool 8x8, Gemm 10."""
    net = _Net(seed)
    x = net.conv("image", 3, 16, (3, 3))
    cin = 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        y = net.conv(x, cin, cout, (3, 3), stride=stride)
        y = net.conv(y, cout, cout, (3, 3), relu=False)
        shortcut = x if stride == 1 else net.conv(x, cin, cout, (1, 1), stride=stride,
                                                  relu=False)
        x, cin = net.add(y, shortcut), cout
    x = net._node("AveragePool", [x], kernel_shape=[8, 8])
    x = net._node("Flatten", [x])
    return net.save(net.gemm(x, 64, 10, relu=False), (1, 3, 32, 32), (1, 10), path)


def ds_cnn(path, seed=0):
    """MLPerf Tiny keyword spotting's DS-CNN on 49x10x1 MFCCs: Conv 10x4 stride 2 (64
    channels), four depthwise-separable blocks of 64 channels, AveragePool 25x5, Gemm 12."""
    net = _Net(seed)
    # Keras pads 4 above and 5 below; 5 on both sides gives the same 25 x 5 output.
    x = net.conv("image", 1, 64, (10, 4), stride=2, pads=[5, 1, 5, 1])
    for _ in range(4):
        x = net.depthwise_separable(x, 64, 64, 1)
    x = net._node("AveragePool", [x], kernel_shape=[25, 5])
    x = net._node("Flatten", [x])
    return net.save(net.gemm(x, 64, 12, relu=False), (1, 1, 49, 10), (1, 12), path)


#: MobileNetV1's depthwise-separable blocks at width 1: (output channels, stride).
MOBILENET_V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                       (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def mobilenet_v1_025(path, seed=0, alpha=0.25):
    """MLPerf Tiny visual wake words' MobileNetV1 (width 0.25) on 96x96x3: Conv 3x3 stride 2
    (32 x alpha channels), the 13 depthwise-separable blocks, GlobalAveragePool, Gemm 2."""
    net = _Net(seed)
    cin = int(32 * alpha)
    x = net.conv("image", 3, cin, (3, 3), stride=2)
    for width, stride in MOBILENET_V1_BLOCKS:
        cout = int(width * alpha)
        x, cin = net.depthwise_separable(x, cin, cout, stride), cout
    x = net._node("GlobalAveragePool", [x])
    x = net._node("Flatten", [x])
    return net.save(net.gemm(x, cin, 2, relu=False), (1, 3, 96, 96), (1, 2), path)


def fc_autoencoder(path, seed=0):
    """MLPerf Tiny anomaly detection's autoencoder on 640 log-mel values: Gemm 128 four times,
    a bottleneck of 8, Gemm 128 four times, Gemm 640; ReLU after each but the last."""
    net = _Net(seed)
    x, k = "image", 640
    for n in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        x, k = net.gemm(x, k, n), n
    return net.save(net.gemm(x, k, 640, relu=False), (1, 640), (1, 640), path)


@dataclass(frozen=True)
class ZooModel:
    """One network of the benchmark: its builder and the shapes it documents."""
    name: str
    title: str
    build: object              # build(path, seed) -> path of the float ONNX model
    input_shape: tuple
    output_shape: tuple


MODELS = {m.name: m for m in (
    ZooModel("digits_mlp", "digits MLP 64-32-10", digits_mlp, (1, 64), (1, 10)),
    ZooModel("digits_cnn", "digits CNN 8x8x1", digits_cnn, (1, 1, 8, 8), (1, 10)),
    ZooModel("resnet8", "ResNet-8 (image classification) 32x32x3", resnet8,
             (1, 3, 32, 32), (1, 10)),
    ZooModel("ds_cnn", "DS-CNN (keyword spotting) 49x10x1", ds_cnn, (1, 1, 49, 10), (1, 12)),
    ZooModel("mobilenet_v1_025", "MobileNetV1 0.25 (visual wake words) 96x96x3",
             mobilenet_v1_025, (1, 3, 96, 96), (1, 2)),
    ZooModel("fc_autoencoder", "FC autoencoder (anomaly detection) 640", fc_autoencoder,
             (1, 640), (1, 640)),
)}


def model_names():
    return tuple(MODELS)


def calibration_inputs(shape, seed, count=8):
    """Seeded standard-normal inputs, the calibration set of the random-weight models."""
    rng = np.random.default_rng([seed, 1])
    return [rng.normal(size=shape).astype(np.float32) for _ in range(count)]


def quantised_model(name, out_dir, seed=0):
    """Build network ``name`` with ``seed``'s weights and quantise it (QDQ, per-channel int8
    weights, int8 activations, calibrated on :func:`calibration_inputs`); returns
    ``(float path, int8 path)``."""
    from pathlib import Path
    from rvnpu.flows.digits import quantise
    spec = MODELS[name]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    float_path = spec.build(out_dir / f"{name}.onnx", seed)
    int8_path = quantise(float_path, out_dir / f"{name}_int8.onnx",
                         calibration_inputs(spec.input_shape, seed), spec.input_shape)
    return Path(float_path), Path(int8_path)


def _shapes(model):
    """``{tensor name: shape}`` of a float model, by ONNX's shape inference."""
    import onnx
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    shapes = {}
    for info in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        shapes[info.name] = tuple(d.dim_value for d in info.type.tensor_type.shape.dim)
    for init in inferred.graph.initializer:
        shapes[init.name] = tuple(init.dims)
    return shapes


def _load(model):
    import onnx
    return model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))


def count_macs(model):
    """Multiply-accumulates of one inference of a float model (a path or ``ModelProto``):
    ``out elements * in channels / group * kernel area`` a Conv, ``M * K * N`` a Gemm or
    MatMul; other operators count none."""
    model = _load(model)
    shapes = _shapes(model)
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            w = shapes[node.input[1]]
            total += int(np.prod(shapes[node.output[0]])) * int(np.prod(w[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            a, y = shapes[node.input[0]], shapes[node.output[0]]
            trans_a = any(a_.name == "transA" and a_.i for a_ in node.attribute)
            k = a[0] if trans_a else a[-1]
            total += int(np.prod(y)) * k
    return total


#: Operators whose output the chip does not store separately: an activation fused into the
#: layer before it, and reshapes that only rename a tensor.
_ALIASES = ("Relu", "Clip", "Flatten", "Reshape")

#: Operators whose second and third inputs are weights and a bias.
_WEIGHTED = ("Conv", "Gemm", "MatMul")


def count_traffic(model):
    """``(weight bytes, activation bytes)`` that must cross the bus in one inference of a float
    model, once it is int8: every weight once (1 byte a weight, 4 an int32 bias, quantisation
    parameters not counted), every activation written once by the layer making it and read
    once by each layer using it (1 byte a value; the model's input only read, its output only
    written). A ReLU or Clip is fused into the layer before it and a Flatten or Reshape is a
    renaming, so their outputs are the tensor they take, not new traffic."""
    model = _load(model)
    shapes = _shapes(model)
    weights = {i.name for i in model.graph.initializer}
    alias = {}

    def root(name):
        while name in alias:
            name = alias[name]
        return name

    weight_bytes, reads = 0, {}
    for node in model.graph.node:
        if node.op_type in _ALIASES:
            alias[node.output[0]] = node.input[0]
            continue
        for i, name in enumerate(node.input):
            if name in weights:
                if node.op_type in _WEIGHTED and i in (1, 2):
                    weight_bytes += int(np.prod(shapes[name])) * (1 if i == 1 else 4)
            elif name:
                reads[root(name)] = reads.get(root(name), 0) + 1
    graph_input = model.graph.input[0].name
    written = {root(node.output[0]) for node in model.graph.node
               if node.op_type not in _ALIASES}
    activation_bytes = 0
    for name in set(reads) | written:
        size = int(np.prod(shapes[name]))
        activation_bytes += size * (reads.get(name, 0) + (name != graph_input))
    return weight_bytes, activation_bytes
