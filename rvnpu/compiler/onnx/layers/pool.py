"""MaxPool without padding, with ``rvnpu_maxpool2d`` of ``rvnpu_conv.h``."""

from dataclasses import dataclass

from rvnpu.compiler.onnx.layers.base import Layer
from rvnpu.sim.golden.conv import maxpool2d


__all__ = ["PoolLayer"]


@dataclass
class PoolLayer(Layer):
    """Max-pool; windows crossing the far edge are dropped (ONNX without ``ceil_mode``)."""
    kernel: tuple = (1, 1)
    stride: tuple = (1, 1)

    def emit_c(self, c):
        x, y = c.model.tensors[self.inputs[0]], c.model.tensors[self.output]
        c.code.append(
            f"    {{\n        rvnpu_maxpool2d_t p = {{.in_h = {x.shape[2]}, "
            f".in_w = {x.shape[3]}, .channels = {x.shape[1]},\n"
            f"            .kernel_h = {self.kernel[0]}, .kernel_w = {self.kernel[1]}, "
            f".stride_h = {self.stride[0]}, .stride_w = {self.stride[1]},\n"
            f"            .input = {c.buf(x.name)}, .output = {c.buf(y.name)}, "
            f".is_unsigned = {int(not x.signed)}}};\n"
            f"        result = rvnpu_maxpool2d(&p);\n    }}")

    def reference(self, model, inputs):
        x, = inputs
        y = maxpool2d(x[0].transpose(1, 2, 0), self.kernel, self.stride)    # NHWC view
        return y.transpose(2, 0, 1)[None]
