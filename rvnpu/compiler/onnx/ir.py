"""The compiler's model: what the chip computes, in the engine's own terms.

The importer turns an ONNX graph into a :class:`Model` of tensors and layers; the memory
planner, the C generator and the numpy reference (``reference.py``) read it. Each layer kind
is a module of :mod:`rvnpu.compiler.onnx.layers` (named here too) that writes its own C and
computes its own reference. Activations of rank 4 are logically NCHW (as in ONNX) but stored
NHWC, the layout the firmware's convolution works in.
"""

from dataclasses import dataclass, field

import numpy as np

from rvnpu.compiler.onnx.layers import (AddLayer, AveragePoolLayer, ConvLayer, FlattenLayer,
                                        GemmLayer, Layer, LookupLayer, PoolLayer)


__all__ = ["ModelError", "Tensor", "Layer", "GemmLayer", "ConvLayer", "PoolLayer",
           "FlattenLayer", "AddLayer", "AveragePoolLayer", "LookupLayer", "HostOp", "Model",
           "ITEMSIZE"]


class ModelError(ValueError):
    """The model cannot be compiled for the chip; the message names the node and the reason."""


ITEMSIZE = {"int8": 1, "uint8": 1, "int32": 4}


@dataclass
class Tensor:
    """An integer tensor in the chip's RAM, with its quantisation (``scale`` is ``None`` for
    the raw int32 sums of MatMulInteger)."""
    name: str
    shape: tuple
    dtype: str
    scale: float | None = None
    zero: int = 0

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self):
        return self.size * ITEMSIZE[self.dtype]

    @property
    def signed(self):
        return self.dtype != "uint8"

    @property
    def range(self):
        return {"int8": (-128, 127), "uint8": (0, 255), "int32": (-(1 << 31), (1 << 31) - 1)}[
            self.dtype]


@dataclass
class HostOp:
    """An operation the host applies before or after the chip (QuantizeLinear of the input,
    DequantizeLinear, the float tail of MatMulInteger, a final QLinearSoftmax)."""
    name: str
    op: str
    value: np.ndarray | None = None      # Mul/Add operand, or the scale of (De)QuantizeLinear
    zero: int = 0
    dtype: str = ""
    attrs: dict = field(default_factory=dict)    # QLinearSoftmax: x_scale, axis


@dataclass
class Model:
    """A compiled-to-IR model: host pre-processing, chip layers, host post-processing."""
    input_name: str                       # the ONNX graph input
    input_shape: tuple
    output_name: str                      # the ONNX graph output
    tensors: dict = field(default_factory=dict)      # name -> Tensor
    layers: list = field(default_factory=list)
    pre: list = field(default_factory=list)          # HostOps on the float input
    post: list = field(default_factory=list)         # HostOps on the chip's output
    chip_input: str = ""
    chip_output: str = ""
    aliases: dict = field(default_factory=dict)      # reshape outputs -> the tensor they view

    def storage(self, name):
        """The tensor whose buffer holds ``name`` (reshapes that keep the order are views)."""
        while name in self.aliases:
            name = self.aliases[name]
        return name
