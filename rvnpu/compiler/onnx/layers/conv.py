"""Conv and QLinearConv: a 2-D convolution lowered to a GEMM by im2col, with
``rvnpu_conv2d`` of ``rvnpu_conv.h``."""

from dataclasses import dataclass

from rvnpu.compiler.onnx.layers.requantised import RequantisedLayer
from rvnpu.sim.golden.conv import conv2d


__all__ = ["ConvLayer"]


@dataclass
class ConvLayer(RequantisedLayer):
    """2-D convolution; ``weights`` are HWIO (I: the input channels of one group); ``pad`` is
    ``(pad_h, pad_w)`` or ONNX's ``(top, left, bottom, right)``."""
    stride: tuple = (1, 1)
    pad: tuple = (0, 0)
    groups: int = 1
    dilation: tuple = (1, 1)

    sign_fields = ("in", "weight")

    @property
    def pads(self):
        """``(top, left, bottom, right)``."""
        pad = tuple(self.pad)
        return pad * 2 if len(pad) == 2 else pad

    def gemm_rows(self, model):
        out = model.tensors[self.output]
        return out.shape[2] * out.shape[3]

    def workspace_bytes(self, model, engine):
        """The patch matrix, after room for the requantisation table that
        ``rvnpu_conv2d_im2col`` leaves at its start. (The tables the GEMMs use are static:
        they are filled once, when the GEMMs are recorded.)"""
        kh, kw, cin, _ = self.weights.shape
        return self.qp_words(engine) * 4 + self.gemm_rows(model) * kh * kw * cin

    def emit_c(self, c):
        """Refuses what the firmware's convolution cannot run yet, then the usual emission."""
        top, left, bottom, right = self.pads
        if self.groups != 1 or tuple(self.dilation) != (1, 1) or (top, left) != (bottom, right):
            from rvnpu.compiler.onnx.ir import ModelError       # ir imports the layers
            raise ModelError(f"Conv (node '{self.name}'): grouped, depthwise or dilated "
                             f"convolution with asymmetric padding (group={self.groups}, "
                             f"dilations={list(self.dilation)}, pads={list(self.pads)}) runs "
                             f"only from an engine list, which this layer could not use")
        super().emit_c(c)

    def emit_call(self, c, *, requant, signs, qp, recorded):
        p = c.prefix
        x, y = c.model.tensors[self.inputs[0]], c.model.tensors[self.output]
        kh, kw, cin, cout = self.weights.shape
        c.globals.append(
            f"static const rvnpu_conv2d_t {p}_conv = {{.in_h = {x.shape[2]}, "
            f".in_w = {x.shape[3]}, .in_c = {cin}, .out_c = {cout},\n"
            f"    .kernel_h = {kh}, .kernel_w = {kw}, "
            f".stride_h = {self.stride[0]}, .stride_w = {self.stride[1]}, "
            f".pad_h = {self.pad[0]}, .pad_w = {self.pad[1]},\n"
            f"    .input = {c.buf(x.name)}, .weights = {p}_weights, "
            f".output = {c.buf(y.name)},\n"
            f"    .in_zero = {x.zero}, .weight_zero = {self.weight_zero}, {signs},\n"
            f"    .requant = {{{requant}}},\n"
            f"    .workspace = arena + {c.workspace}}};")
        if not recorded:
            c.code.append(f"    result = rvnpu_conv2d(&{p}_conv, &status);")
            return
        fail = f"return fail({c.index}, -1, 0);"
        c.record.append(f"    {{\n        rvnpu_gemm_t g;\n"
                        f"        if (rvnpu_conv2d_im2col(&{p}_conv, &g) != "
                        f"RVNPU_GEMM_OK)\n            {fail}\n"
                        f"        g.qp = {qp};\n"
                        f"        if (rvnpu_gemm_record(&g, &{p}_program) != "
                        f"RVNPU_GEMM_OK)\n            {fail}\n"
                        f"    }}")
        c.code.append(f"    {{\n        rvnpu_gemm_t g;\n"
                      f"        result = rvnpu_conv2d_im2col(&{p}_conv, &g);\n"
                      f"        if (result == RVNPU_GEMM_OK)\n"
                      f"            status = rvnpu_program_run(&{p}_program);\n"
                      f"    }}")

    def reference(self, model, inputs):
        """The golden convolution on the NHWC view of the NCHW input."""
        x, = inputs
        y = conv2d(x[0].transpose(1, 2, 0), self.weights, self.bias,
                   self.requant(model.tensors[self.output]), stride=self.stride,
                   pad=self.pad, in_zero=model.tensors[self.inputs[0]].zero,
                   weight_zero=self.weight_zero, groups=self.groups,
                   dilation=tuple(self.dilation))
        return y.transpose(2, 0, 1)[None]
