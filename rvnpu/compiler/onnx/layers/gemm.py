"""Gemm, MatMul, QLinearMatMul, QGemm and MatMulInteger: ``A (M x K) @ weights (K x N)`` with
``rvnpu_gemm`` of ``rvnpu_gemm.h``."""

from dataclasses import dataclass

from rvnpu.compiler.onnx.layers.requantised import RequantisedLayer
from rvnpu.sim.golden.gemm import gemm_reference


__all__ = ["GemmLayer"]


@dataclass
class GemmLayer(RequantisedLayer):
    """``A (M x K) @ weights (K x N)``; ``nhwc_input`` is ``(C, H, W)`` when A is an NHWC map
    flattened without a copy and the weight rows are in that order (see ``fold_flatten``)."""
    nhwc_input: tuple | None = None

    sign_fields = ("a", "b")

    def gemm_rows(self, model):
        return model.tensors[self.inputs[0]].shape[0]

    def emit_call(self, c, *, requant, signs, qp, recorded):
        p = c.prefix
        x, y = c.model.tensors[self.inputs[0]], c.model.tensors[self.output]
        k, n = self.weights.shape
        c.globals.append(
            f"static const rvnpu_gemm_t {p}_gemm = {{.m = {x.shape[0]}, .n = {n}, "
            f".k = {k}, .a = {c.buf(x.name)}, .b = {p}_weights,\n"
            f"    .c = {c.buf(y.name)}, .a_zero = {x.zero}, "
            f".b_zero = {self.weight_zero}, {signs},\n"
            f"    .requant = {{{requant}}},\n    .qp = {qp}}};")
        if not recorded:
            c.code.append(f"    result = rvnpu_gemm(&{p}_gemm, &status);")
            return
        c.record.append(f"    if (rvnpu_gemm_record(&{p}_gemm, &{p}_program) != "
                        f"RVNPU_GEMM_OK)\n        return fail({c.index}, -1, 0);")
        c.code.append(f"    status = rvnpu_program_run(&{p}_program);\n"
                      f"    result = RVNPU_GEMM_OK;")

    def reference(self, model, inputs):
        x, = inputs
        if self.nhwc_input is not None:      # the NCHW-flattened input, in NHWC order
            x = x.reshape(x.shape[0], *self.nhwc_input).transpose(0, 2, 3, 1) \
                .reshape(x.shape[0], -1)
        return gemm_reference(x, self.weights, self.bias,
                              self.requant(model.tensors[self.output]),
                              a_zero=model.tensors[self.inputs[0]].zero,
                              b_zero=self.weight_zero)
