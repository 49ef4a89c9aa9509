"""Flatten or Reshape of an NHWC-stored tensor into NCHW order (reshapes that keep the order
are no layer: the importer makes them views, ``Model.aliases``)."""

from dataclasses import dataclass

from rvnpu.compiler.onnx.layers.base import Layer


__all__ = ["FlattenLayer"]


@dataclass
class FlattenLayer(Layer):
    """Flatten or Reshape of an NHWC tensor into NCHW order (a copy on the core)."""

    def emit_c(self, c):
        x, y = c.model.tensors[self.inputs[0]], c.model.tensors[self.output]
        c.code.append(f"    rvnpu_nhwc_to_nchw({c.buf(x.name)}, {c.buf(y.name)}, {x.shape[2]}, "
                      f"{x.shape[3]}, {x.shape[1]});\n    result = RVNPU_GEMM_OK;")

    def reference(self, model, inputs):
        x, = inputs
        return x.reshape(model.tensors[self.output].shape)
