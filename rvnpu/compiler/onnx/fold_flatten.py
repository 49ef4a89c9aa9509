"""Flattens that move no data: a map stored NHWC, flattened in ONNX's NCHW order and read only
by GEMMs, needs no copy if the GEMMs' weight rows are put in NHWC order instead.

The copy would otherwise be the core's work between two engine layers (the digits CNN's
Flatten costs more cycles than its fully connected layer). The GEMM keeps the permutation
(``nhwc_input``) so that its reference reorders the NCHW-flattened input to match: integer sums
do not depend on the order of their terms, so the result is bit for bit the same.
"""

from rvnpu.compiler.onnx.layers import FlattenLayer, GemmLayer


__all__ = ["fold_flatten"]


def fold_flatten(model):
    """Turn each foldable Flatten of ``model`` into a view (in place); returns ``model``."""
    for flatten in [layer for layer in model.layers if isinstance(layer, FlattenLayer)]:
        out = flatten.output
        readers = [layer for layer in model.layers if out in layer.inputs]
        viewed = any(model.storage(name) == out for name in model.aliases)
        if (out in (model.chip_output, model.storage(model.chip_output)) or viewed
                or not readers or not all(isinstance(r, GemmLayer) and r.inputs == [out]
                                          and r.nhwc_input is None for r in readers)):
            continue
        x = model.tensors[flatten.inputs[0]]
        if len(x.shape) != 4 or x.shape[0] != 1:
            continue
        _, c, h, w = x.shape
        for gemm in readers:
            n = gemm.weights.shape[1]
            gemm.weights = gemm.weights.reshape(c, h, w, n).transpose(1, 2, 0, 3) \
                .reshape(c * h * w, n)
            gemm.nhwc_input = (c, h, w)
        model.layers.remove(flatten)
        model.aliases[out] = flatten.inputs[0]
    return model
