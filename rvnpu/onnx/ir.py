"""The compiler's layer list: what the chip computes, in the engine's own terms.

The importer turns an ONNX graph into these objects; the memory planner, the C generator and
the numpy reference (``reference.py``) read them. Activations of rank 4 are logically NCHW
(as in ONNX) but stored NHWC, the layout the firmware's convolution works in.
"""

from dataclasses import dataclass, field

import numpy as np


__all__ = ["ModelError", "Tensor", "GemmLayer", "ConvLayer", "PoolLayer", "FlattenLayer",
           "AddLayer", "HostOp", "Model", "ITEMSIZE"]


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
class _Layer:
    name: str            # the ONNX node the layer comes from
    op: str              # its operator, for reports
    inputs: list
    output: str


@dataclass
class _Requantised(_Layer):
    """A layer whose int32 sums are requantised the ONNX Runtime way: ``scale`` holds one
    float32 per output channel (``None``: raw int32 sums), ``clamp`` the fused activation."""
    weights: np.ndarray = None
    weight_zero: int = 0
    weights_unsigned: bool = False
    bias: np.ndarray | None = None
    scale: np.ndarray | None = None
    clamp: tuple = (-128, 127)


@dataclass
class GemmLayer(_Requantised):
    """``A (M x K) @ weights (K x N)``."""


@dataclass
class ConvLayer(_Requantised):
    """2-D convolution; ``weights`` are HWIO."""
    stride: tuple = (1, 1)
    pad: tuple = (0, 0)


@dataclass
class PoolLayer(_Layer):
    kernel: tuple = (1, 1)
    stride: tuple = (1, 1)


@dataclass
class FlattenLayer(_Layer):
    """Flatten or Reshape of an NHWC tensor into NCHW order (a copy on the core)."""


@dataclass
class AddLayer(_Layer):
    """QLinearAdd of two tensors of one shape, or of a tensor and a constant of as many
    elements: ``constant`` holds its integers in the output's shape, ``constant_tensor`` its
    quantisation, ``constant_index`` whether it is the first (0) or second (1) operand (the
    order matters to the rounding); ``inputs`` then has one name."""
    clamp: tuple = (-128, 127)
    constant: np.ndarray | None = None
    constant_tensor: Tensor | None = None
    constant_index: int = 1


@dataclass
class HostOp:
    """A float operation the host applies before or after the chip (QuantizeLinear of the
    input, DequantizeLinear and the float tail of MatMulInteger)."""
    name: str
    op: str
    value: np.ndarray | None = None      # Mul/Add operand, or the scale of (De)QuantizeLinear
    zero: int = 0
    dtype: str = ""


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
