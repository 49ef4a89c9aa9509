"""What a GEMM and a convolution share: int8 weights, an int32 bias, the ONNX Runtime
requantisation of their sums, and one engine command program recorded at start-up."""

from dataclasses import dataclass

import numpy as np

from rvnpu.compiler.gemm import GemmError, compile_gemm
from rvnpu.compiler.onnx.emit import c_array, c_float
from rvnpu.compiler.onnx.layers.base import Layer
from rvnpu.compiler.onnx.planner import ALIGN
from rvnpu.sim.golden.gemm import Requant
from rvnpu.spec.commands import QP_ROWS


__all__ = ["RequantisedLayer"]


@dataclass
class RequantisedLayer(Layer):
    """A layer whose int32 sums are requantised the ONNX Runtime way: ``scale`` holds one
    float32 per output channel (``None``: raw int32 sums), ``clamp`` the fused activation."""
    weights: np.ndarray = None
    weight_zero: int = 0
    weights_unsigned: bool = False
    bias: np.ndarray | None = None
    scale: np.ndarray | None = None
    clamp: tuple = (-128, 127)

    #: The names of the C struct's signedness fields: (input operand, weights).
    sign_fields = ("a", "b")

    def gemm_rows(self, model):
        """M of the GEMM the layer is lowered to (K and N come from the weights)."""
        raise NotImplementedError

    def requant(self, out):
        """The golden model's requantisation into the output tensor ``out``."""
        if self.scale is None:
            return Requant(mode=None)
        return Requant(mode="ort", scale=self.scale, out_zero=out.zero,
                       clamp_min=self.clamp[0], clamp_max=self.clamp[1])

    def qp_words(self, engine):
        """Words of the requantisation table the firmware fills for the engine."""
        return -(-self.weights.shape[-1] // engine.cols) * QP_ROWS * engine.cols

    def macs(self, model):
        return self.gemm_rows(model) * self.weights.size

    def command_count(self, model, engine):
        """Commands the layer's GEMM issues (without the FENCE): the Python compiler emits the
        firmware's command stream for the same shapes. ``None`` if it cannot tell (the layer is
        then issued directly instead of replayed)."""
        x, y = model.tensors[self.inputs[0]], model.tensors[self.output]
        k, n = self.weights.reshape(-1, self.weights.shape[-1]).shape
        m = self.gemm_rows(model)
        try:
            job = compile_gemm(np.full((m, k), x.zero), self.weights.reshape(k, n), self.bias,
                               self.requant(y), config=engine, dataflow="ws", a_zero=x.zero,
                               b_zero=self.weight_zero, a_signed=x.signed,
                               b_signed=not self.weights_unsigned)
        except GemmError:
            return None
        return len(job.program) - 1

    def emit_c(self, c):
        """The weights, bias and scales, the requantisation table and command program; the
        call itself is the kind's :meth:`emit_call`."""
        p = c.prefix
        x, y = c.model.tensors[self.inputs[0]], c.model.tensors[self.output]
        w = self.weights.reshape(-1, self.weights.shape[-1])
        wtype = "uint8_t" if self.weights_unsigned else "int8_t"
        c.data.append(c_array(wtype, f"{p}_weights", (str(int(v)) for v in w.ravel())))
        if self.bias is not None:
            c.data.append(c_array("int32_t", f"{p}_bias", (f"{int(v)}" for v in self.bias)))
        if self.scale is not None:
            c.data.append(c_array("float", f"{p}_scale", (c_float(v) for v in self.scale),
                                  per_line=6))
            requant = (f".mode = RVNPU_GEMM_ORT, "
                       f".bias = {f'{p}_bias' if self.bias is not None else '0'}, "
                       f".scale = {p}_scale, .out_zero = {y.zero}, "
                       f".clamp_min = {self.clamp[0]}, .clamp_max = {self.clamp[1]}")
            c.globals.append(f"static uint32_t {p}_qp[{self.qp_words(c.engine)}] "
                             f"__attribute__((aligned({ALIGN})));")
        else:
            requant = ".mode = RVNPU_GEMM_RAW"
        a, b = self.sign_fields
        signs = (f".{a}_unsigned = {int(not x.signed)}, "
                 f".{b}_unsigned = {int(self.weights_unsigned)}")
        count = self.command_count(c.model, c.engine)
        if count is not None:
            c.globals.append(f"static rvnpu_op_t {p}_ops[{count + 1}];\n"
                             f"static rvnpu_program_t {p}_program = {{{p}_ops, {count + 1}, 0}};")
        qp = f"{p}_qp" if self.scale is not None else "0"
        self.emit_call(c, requant=requant, signs=signs, qp=qp, recorded=count is not None)

    def emit_call(self, c, *, requant, signs, qp, recorded):
        """The kind's descriptor and call: ``requant`` and ``signs`` are C designated
        initialisers, ``qp`` the table's name (or ``0``), ``recorded`` whether the command
        program ``<prefix>_program`` exists (else the layer is issued directly)."""
        raise NotImplementedError
