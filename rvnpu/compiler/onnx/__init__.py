"""Int8 ONNX models compiled to firmware for the rvnpu SoC (``rvnpu compile``, ``rvnpu run``)."""

from rvnpu.compiler.onnx.ir import ModelError

__all__ = ["ModelError"]
