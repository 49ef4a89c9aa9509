"""The layer kinds of the compiler's IR, one module each: its data, the C that runs it on the
chip (``emit_c``) and its numpy reference (``reference``).

Adding an ONNX operator is an importer rule (``op_<Type>`` in ``importer.py``) that builds one
of these, or a new module here with a :class:`Layer` subclass (and, if the firmware lacks the
routine, a function in ``firmware/lib``).
"""

from rvnpu.compiler.onnx.layers.base import Layer
from rvnpu.compiler.onnx.layers.requantised import RequantisedLayer
from rvnpu.compiler.onnx.layers.gemm import GemmLayer
from rvnpu.compiler.onnx.layers.conv import ConvLayer
from rvnpu.compiler.onnx.layers.pool import PoolLayer
from rvnpu.compiler.onnx.layers.flatten import FlattenLayer
from rvnpu.compiler.onnx.layers.add import AddLayer
from rvnpu.compiler.onnx.layers.avgpool import AveragePoolLayer
from rvnpu.compiler.onnx.layers.lookup import LookupLayer


__all__ = ["Layer", "RequantisedLayer", "GemmLayer", "ConvLayer", "PoolLayer", "FlattenLayer",
           "AddLayer", "AveragePoolLayer", "LookupLayer"]
