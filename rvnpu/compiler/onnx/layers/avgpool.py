"""AveragePool and GlobalAveragePool (QLinearAveragePool, QLinearGlobalAveragePool, or QDQ
around the float operators), with ``rvnpu_avgpool2d`` of ``rvnpu_conv.h``, or from an engine
list where that is exact (a global pool, or one :mod:`rvnpu.compiler.onnx.exact_average`
proves); the arithmetic is :func:`rvnpu.sim.golden.pool.average_pool2d`'s, onnxruntime's."""

from dataclasses import dataclass

from rvnpu.compiler.onnx.emit import c_float
from rvnpu.compiler.onnx.layers.base import Layer
from rvnpu.sim.golden.pool import average_pool2d


__all__ = ["AveragePoolLayer"]


@dataclass
class AveragePoolLayer(Layer):
    """Average pool of an NHWC-stored map into another scale and zero point; ``pads`` are
    (top, left, bottom, right). A global average pool is the window of the whole input."""
    kernel: tuple = (1, 1)
    stride: tuple = (1, 1)
    pads: tuple = (0, 0, 0, 0)
    count_include_pad: bool = False
    ceil_mode: bool = False
    clamp: tuple = (-128, 127)

    def workspace_bytes(self, model, engine):
        """The float32 dequantised value of each of the 256 input bytes."""
        return 256 * 4

    def emit_c(self, c):
        x, y = c.model.tensors[self.inputs[0]], c.model.tensors[self.output]
        top, left, bottom, right = self.pads
        c.code.append(
            f"    {{\n        rvnpu_avgpool2d_t p = {{.in_h = {x.shape[2]}, "
            f".in_w = {x.shape[3]}, .channels = {x.shape[1]},\n"
            f"            .kernel_h = {self.kernel[0]}, .kernel_w = {self.kernel[1]}, "
            f".stride_h = {self.stride[0]}, .stride_w = {self.stride[1]},\n"
            f"            .pad_top = {top}, .pad_left = {left}, .pad_bottom = {bottom}, "
            f".pad_right = {right},\n"
            f"            .count_include_pad = {int(self.count_include_pad)}, "
            f".ceil_mode = {int(self.ceil_mode)},\n"
            f"            .input = {c.buf(x.name)}, .output = {c.buf(y.name)},\n"
            f"            .in_scale = {c_float(x.scale)}, .out_scale = {c_float(y.scale)}, "
            f".in_zero = {x.zero}, .out_zero = {y.zero},\n"
            f"            .clamp_min = {self.clamp[0]}, .clamp_max = {self.clamp[1]}, "
            f".workspace = (float *)(arena + {c.workspace}), "
            f".is_unsigned = {int(not x.signed)}}};\n"
            f"        result = rvnpu_avgpool2d(&p);\n    }}")

    def reference(self, model, inputs):
        x, = inputs
        tx, ty = model.tensors[self.inputs[0]], model.tensors[self.output]
        y = average_pool2d(x[0].transpose(1, 2, 0), tx.scale, tx.zero, ty.scale, ty.zero,
                           *self.clamp, kernel=self.kernel, stride=self.stride, pads=self.pads,
                           count_include_pad=self.count_include_pad, ceil_mode=self.ceil_mode)
        return y.transpose(2, 0, 1)[None]
