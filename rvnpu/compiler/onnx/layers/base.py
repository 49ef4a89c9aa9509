"""What every layer kind provides: the C that runs it on the chip and its numpy reference."""

from dataclasses import dataclass


__all__ = ["Layer"]


@dataclass
class Layer:
    """One step of a compiled model, reading the tensors ``inputs`` and writing ``output``.

    A layer kind is one module of :mod:`rvnpu.compiler.onnx.layers` holding its data and the
    methods below, so that the C generator and the numpy reference stay loops over layers.
    Activations of rank 4 are logically NCHW (as in ONNX) but stored NHWC.
    """
    name: str            # the ONNX node the layer comes from
    op: str              # its operator, for reports
    inputs: list
    output: str

    def emit_c(self, c):
        """Append this layer's C to the program ``c`` (an :class:`~rvnpu.compiler.onnx.emit.
        CContext`): its constants, its start-up code and its call in ``infer``."""
        raise NotImplementedError

    def reference(self, model, inputs):
        """The output integers for the values of ``inputs`` (int64, logical ONNX shapes)."""
        raise NotImplementedError

    def workspace_bytes(self, model, engine):
        """Bytes of arena scratch the layer needs while it runs (besides its tensors)."""
        return 0

    def macs(self, model):
        """Multiply-accumulates the layer does (0 for those that only move or compare)."""
        return 0
