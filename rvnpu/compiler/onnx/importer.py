"""Read an int8 ONNX model into the compiler's layers (:mod:`rvnpu.compiler.onnx.ir`).

Both formats onnxruntime's quantisation tools write are understood:

* QOperator: QLinearConv, QLinearMatMul, QGemm, QLinearAdd, MatMulInteger,
  QLinearAveragePool, QLinearGlobalAveragePool, a final QLinearSoftmax (on the host), and
  MaxPool, Flatten, Reshape, Relu and Clip on integer tensors;
* QDQ: float Conv, MatMul, Gemm, Add, AveragePool, GlobalAveragePool, MaxPool, Flatten, Reshape
  and a final Softmax between DequantizeLinear and QuantizeLinear nodes, folded into the
  integer layer onnxruntime fuses them into, with a float Relu or Clip before the
  QuantizeLinear fused into the requantisation's clamp; a Relu or Clip (or nothing) alone
  between a DequantizeLinear and a QuantizeLinear is a requantisation by table.

The requantisation scale of each output channel is computed in float32 exactly as onnxruntime's
CPU kernels compute it, ``(a_scale * w_scale[c]) / y_scale``, because the chip must round the
same products to the same integers. The QuantizeLinear of the float input and the float tail
after the last integer tensor (DequantizeLinear; Cast, Mul, Add after MatMulInteger) run on the
host.
"""

import numpy as np

from rvnpu.compiler.onnx.ir import HostOp, Model, ModelError, Tensor
from rvnpu.compiler.onnx.layers import (AddLayer, AveragePoolLayer, ConvLayer, FlattenLayer,
                                        GemmLayer, LookupLayer, PoolLayer)
from rvnpu.compiler.onnx.layers.lookup import clamp_table, requantise_table
from rvnpu.compiler.onnx.fold_flatten import fold_flatten
from rvnpu.sim.golden.conv import window_count
from rvnpu.sim.golden.pool import global_pool_scale, pool_output_size


__all__ = ["import_model"]

_INT_TYPES = {2: "uint8", 3: "int8", 6: "int32"}     # onnx.TensorProto element types
_FLOAT = 1


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ModelError("reading ONNX models needs the onnx package: "
                         "pip install 'rvnpu[onnx]'") from None
    return onnx, numpy_helper


def _attrs(node):
    onnx, _ = _onnx()
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _where(node):
    return f"{node.op_type} (node '{node.name or node.output[0]}')"


class _Importer:
    def __init__(self, proto):
        onnx, numpy_helper = _onnx()
        graph = proto.graph
        self.consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant":
                self.consts[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
        inputs = [i for i in graph.input if i.name not in self.consts]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise ModelError(f"the model must have one input and one output, not "
                             f"{len(inputs)} and {len(graph.output)}")
        info = inputs[0]
        dims = []
        for i, d in enumerate(info.type.tensor_type.shape.dim):
            if d.HasField("dim_value"):
                dims.append(d.dim_value)
            elif i == 0:
                dims.append(1)       # a symbolic batch: the chip runs one input at a time
            else:
                raise ModelError(f"input {info.name} has a symbolic dimension {d.dim_param!r}"
                                 f" other than the batch")
        if not dims or (len(dims) != 2 and dims[0] != 1):
            raise ModelError(f"input {info.name} must have a batch of 1, not shape {dims}")
        self.input_type = info.type.tensor_type.elem_type
        self.opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
                          13)
        self.model = Model(input_name=info.name, input_shape=tuple(dims),
                           output_name=graph.output[0].name)
        self.nodes = [n for n in graph.node if n.op_type != "Constant"]
        self.consumers = {}
        for node in self.nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.deq = {}       # float name -> (chip tensor, scale, zero): DequantizeLinear
        self.cdeq = {}      # float name -> (int array, scale array, zero array, axis)
        self.tail = {}      # float/int name -> (chip tensor, [HostOp]) computed on the host
        self.done = set()
        self.producer = {}  # chip tensor -> the layer that writes it

    # -- helpers -------------------------------------------------------------------------

    def const(self, node, index, what):
        name = node.input[index] if index < len(node.input) else ""
        if not name:
            return None
        if name not in self.consts:
            raise ModelError(f"{_where(node)}: its {what} ({name}) must be a constant")
        return self.consts[name]

    def scalar(self, node, index, what, default=None):
        value = self.const(node, index, what)
        if value is None:
            return default
        if value.size != 1:
            raise ModelError(f"{_where(node)}: its {what} must be per-tensor (one value), "
                             f"not shape {value.shape}")
        return value.reshape(()).item() if value.dtype != np.float32 else \
            np.float32(value.reshape(()))

    def chip(self, node, index):
        name = node.input[index]
        if name not in self.model.tensors:
            raise ModelError(f"{_where(node)}: input {name} is not an integer tensor the chip "
                             f"computes (a float tensor, or one made on the host)")
        return self.model.tensors[name]

    def add_tensor(self, name, shape, dtype, scale, zero):
        t = Tensor(name, tuple(int(s) for s in shape), dtype,
                   None if scale is None else float(np.float32(scale)), int(zero))
        self.model.tensors[name] = t
        return t

    def add_layer(self, layer):
        self.model.layers.append(layer)
        self.producer[layer.output] = layer
        return layer

    @staticmethod
    def out_scale(node, a_scale, w_scale, y_scale):
        """onnxruntime's float32 ``a_scale * w_scale[c] / y_scale``, left to right."""
        a = np.float32(a_scale)
        w = np.asarray(w_scale, np.float32).reshape(-1)
        with np.errstate(all="ignore"):
            s = (a * w).astype(np.float32) / np.float32(y_scale)
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ModelError(f"{_where(node)}: requantisation scales must be positive and "
                             f"finite")
        return s.astype(np.float32)

    @staticmethod
    def weight_zero(node, zero, dtype):
        zero = np.zeros(1, np.int64) if zero is None else np.asarray(zero, np.int64).ravel()
        if np.any(zero != zero[0]):
            raise ModelError(f"{_where(node)}: per-channel weight zero points must all be "
                             f"equal (the engine subtracts one), not {sorted({int(z) for z in zero})}")
        return int(zero[0])

    # -- layers --------------------------------------------------------------------------

    def gemm(self, node, a, b, b_scale, b_zero, bias, y_scale, y_zero, y_dtype, out, clamp=None,
             trans_b=False):
        if a.dtype == "int32":
            raise ModelError(f"{_where(node)}: input {a.name} is int32")
        if len(a.shape) != 2:
            raise ModelError(f"{_where(node)}: input {a.name} must be 2-D (M x K), not shape "
                             f"{list(a.shape)}")
        b = np.asarray(b)
        if b.ndim != 2 or b.dtype not in (np.int8, np.uint8):
            raise ModelError(f"{_where(node)}: the weights must be a 2-D int8 or uint8 constant")
        if trans_b:
            b = b.T
        k, n = b.shape
        if a.shape[1] != k:
            raise ModelError(f"{_where(node)}: shapes {list(a.shape)} and {[k, n]} do not "
                             f"multiply")
        if bias is not None:
            bias = np.asarray(bias)
            if bias.dtype != np.int32 or bias.size not in (1, n):
                raise ModelError(f"{_where(node)}: the bias must be an int32 constant of {n} "
                                 f"values")
            bias = np.broadcast_to(bias.reshape(-1), n).astype(np.int64)
        scale = None
        if y_dtype != "int32":
            w_scale = np.asarray(b_scale, np.float32).reshape(-1)
            if w_scale.size not in (1, n):
                raise ModelError(f"{_where(node)}: {w_scale.size} weight scales for {n} "
                                 f"output channels")
            scale = np.broadcast_to(self.out_scale(node, a.scale, w_scale, y_scale), n).copy()
        y = self.add_tensor(out, (a.shape[0], n), y_dtype, y_scale, y_zero)
        return self.add_layer(GemmLayer(
            name=node.name or out, op=node.op_type, inputs=[a.name], output=out,
            weights=b.astype(np.int64), weight_zero=self.weight_zero(node, b_zero, b.dtype),
            weights_unsigned=b.dtype == np.uint8,
            bias=bias, scale=scale, clamp=self.clamp(y, clamp)))

    def conv(self, node, x, w, w_scale, w_zero, bias, y_scale, y_zero, y_dtype, out, clamp=None):
        at = _attrs(node)
        if len(x.shape) != 4:
            raise ModelError(f"{_where(node)}: only 2-D convolutions (4-D inputs) are supported")
        w = np.asarray(w)
        if w.ndim != 4 or w.dtype not in (np.int8, np.uint8):
            raise ModelError(f"{_where(node)}: the weights must be a 4-D int8 or uint8 constant")
        groups = int(at.get("group", 1))
        dilation = tuple(int(d) for d in at.get("dilations", [1, 1]))
        if at.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID"):
            raise ModelError(f"{_where(node)}: auto_pad {at['auto_pad']!r} is not supported; "
                             f"give explicit pads")
        pads = list(at.get("pads", [0, 0, 0, 0]))
        stride = tuple(at.get("strides", [1, 1]))
        o, c, kh, kw = w.shape
        _, cin, h, wd = x.shape
        if groups < 1 or cin % groups or o % groups or c * groups != cin:
            raise ModelError(f"{_where(node)}: {c} weight channels in {groups} groups for "
                             f"{cin} input channels and {o} outputs")
        if len(dilation) != 2 or min(dilation) < 1:
            raise ModelError(f"{_where(node)}: dilations must be two positive integers")
        oh = window_count(h, kh, stride[0], pads[0], dilation[0], pads[2])
        ow = window_count(wd, kw, stride[1], pads[1], dilation[1], pads[3])
        if not oh or not ow:
            raise ModelError(f"{_where(node)}: the kernel does not fit the input")
        if bias is not None:
            bias = np.asarray(bias)
            if bias.dtype != np.int32 or bias.size != o:
                raise ModelError(f"{_where(node)}: the bias must be {o} int32 values")
            bias = bias.astype(np.int64)
        w_scale = np.asarray(w_scale, np.float32).reshape(-1)
        if w_scale.size not in (1, o):
            raise ModelError(f"{_where(node)}: {w_scale.size} weight scales for {o} channels")
        scale = np.broadcast_to(self.out_scale(node, x.scale, w_scale, y_scale), o).copy()
        y = self.add_tensor(out, (1, o, oh, ow), y_dtype, y_scale, y_zero)
        return self.add_layer(ConvLayer(
            name=node.name or out, op=node.op_type, inputs=[x.name], output=out,
            weights=w.transpose(2, 3, 1, 0).astype(np.int64),
            weight_zero=self.weight_zero(node, w_zero, w.dtype), bias=bias, scale=scale,
            weights_unsigned=w.dtype == np.uint8,
            clamp=self.clamp(y, clamp), stride=stride, pad=tuple(int(v) for v in pads), groups=groups,
            dilation=dilation))

    def clamp(self, y, extra):
        lo, hi = y.range
        if y.dtype == "int32":
            return (lo, hi)
        if extra is not None:
            lo, hi = max(lo, extra[0]), min(hi, extra[1])
        if lo > hi:
            raise ModelError(f"the activation before {y.name} leaves no output value")
        return (lo, hi)

    def maxpool(self, node, x, out, scale, zero):
        at = _attrs(node)
        if len(x.shape) != 4:
            raise ModelError(f"{_where(node)}: only 2-D max-pooling is supported")
        if any(at.get("pads", [0])) or at.get("ceil_mode", 0) or \
                any(d != 1 for d in at.get("dilations", [1])) or \
                at.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID"):
            raise ModelError(f"{_where(node)}: only max-pooling without padding, dilation or "
                             f"ceil_mode is supported")
        if len(node.output) > 1 and node.output[1]:
            raise ModelError(f"{_where(node)}: the Indices output is not supported")
        kernel = tuple(at["kernel_shape"])
        stride = tuple(at.get("strides", [1, 1]))
        oh, ow = (window_count(x.shape[2 + i], kernel[i], stride[i]) for i in range(2))
        if not oh or not ow:
            raise ModelError(f"{_where(node)}: the window does not fit the input")
        self.add_tensor(out, (1, x.shape[1], oh, ow), x.dtype, scale, zero)
        self.add_layer(PoolLayer(name=node.name or out, op=node.op_type, inputs=[x.name],
                                 output=out, kernel=kernel, stride=stride))

    def avgpool(self, node, x, out, scale, zero, dtype, clamp=None, glob=False):
        """AveragePool or GlobalAveragePool of ``x`` into ``out`` (onnxruntime's
        QLinearAveragePool arithmetic, :mod:`rvnpu.sim.golden.pool`)."""
        if len(x.shape) != 4:
            raise ModelError(f"{_where(node)}: only 2-D average pooling is supported")
        if dtype != x.dtype:
            raise ModelError(f"{_where(node)}: input and output must have one type")
        _, c, h, w = x.shape
        at = _attrs(node)
        if at.get("channels_last", 0):
            raise ModelError(f"{_where(node)}: channels_last is not supported")
        if glob:
            kernel, stride, pads, include, ceil = (h, w), (1, 1), (0, 0, 0, 0), 0, 0
        else:
            if at.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID"):
                raise ModelError(f"{_where(node)}: auto_pad {at['auto_pad']!r} is not "
                                 f"supported; give explicit pads")
            if any(d != 1 for d in at.get("dilations", [1])):
                raise ModelError(f"{_where(node)}: dilated average pooling is not supported")
            kernel = tuple(int(k) for k in at["kernel_shape"])
            stride = tuple(int(s) for s in at.get("strides", [1, 1]))
            pads = tuple(int(p) for p in at.get("pads", [0, 0, 0, 0]))
            include, ceil = int(at.get("count_include_pad", 0)), int(at.get("ceil_mode", 0))
            if len(kernel) != 2 or len(stride) != 2 or len(pads) != 4 or min(pads) < 0:
                raise ModelError(f"{_where(node)}: a 2-D kernel, strides and pads are needed")
        oh = pool_output_size(h, kernel[0], stride[0], pads[0], pads[2], ceil)
        ow = pool_output_size(w, kernel[1], stride[1], pads[1], pads[3], ceil)
        if not oh or not ow:
            raise ModelError(f"{_where(node)}: the window does not fit the input")
        if kernel == (h, w) and not any(pads):
            count = h * w
            s = global_pool_scale(x.scale, scale, count)
            if count >= 1 << 24 or not 2.0 ** -32 <= s < 256:
                raise ModelError(f"{_where(node)}: the scale of its average "
                                 f"({float(s):.3g}) is out of onnxruntime's range")
        y = self.add_tensor(out, (1, c, oh, ow), dtype, scale, zero)
        self.add_layer(AveragePoolLayer(
            name=node.name or out, op=node.op_type, inputs=[x.name], output=out,
            kernel=kernel, stride=stride, pads=pads, count_include_pad=bool(include),
            ceil_mode=bool(ceil), clamp=self.clamp(y, clamp)))

    def requantise(self, node, x, out, scale, zero, dtype, clamp):
        """A standalone DequantizeLinear -> (Relu | Clip) -> QuantizeLinear: a table."""
        if x.dtype not in ("int8", "uint8"):
            raise ModelError(f"{_where(node)}: input {x.name} is {x.dtype}")
        y = self.add_tensor(out, x.shape, dtype, scale, zero)
        self.add_layer(LookupLayer(name=node.name or out, op=node.op_type, inputs=[x.name],
                                   output=out,
                                   table=requantise_table(x, y, self.clamp(y, clamp))))

    def reshape(self, node, x, out, scale, zero):
        if node.op_type == "Flatten":
            axis = _attrs(node).get("axis", 1)
            axis = axis + len(x.shape) if axis < 0 else axis
            shape = (int(np.prod(x.shape[:axis], dtype=np.int64)),
                     int(np.prod(x.shape[axis:], dtype=np.int64)))
        else:
            target = self.const(node, 1, "shape")
            if _attrs(node).get("allowzero", 0):
                raise ModelError(f"{_where(node)}: allowzero is not supported")
            target = [x.shape[i] if v == 0 else int(v) for i, v in enumerate(target)]
            shape = np.empty(x.shape, np.int8).reshape(target).shape
        if shape[0] != 1 and len(shape) == 4:
            raise ModelError(f"{_where(node)}: a batch of {shape[0]} is not supported")
        self.add_tensor(out, shape, x.dtype, scale, zero)

        def reorders(s):       # NHWC storage differs from NCHW order
            return len(s) == 4 and s[1] > 1 and s[2] * s[3] > 1
        if reorders(x.shape) and tuple(shape) != tuple(x.shape):
            if len(shape) == 4:
                raise ModelError(f"{_where(node)}: reshaping {list(x.shape)} to {list(shape)} "
                                 f"is not supported")
            self.add_layer(FlattenLayer(name=node.name or out, op=node.op_type,
                                        inputs=[x.name], output=out))
        elif reorders(shape) and tuple(shape) != tuple(x.shape):
            raise ModelError(f"{_where(node)}: reshaping {list(x.shape)} to {list(shape)} "
                             f"is not supported")
        else:
            self.model.aliases[out] = x.name

    def add(self, node, operands, out, scale, zero, dtype, clamp=None):
        """``operands``: two ``(Tensor, constant integers or None)`` in the node's order."""
        (a, ca), (b, cb) = operands
        if ca is not None and cb is not None:
            raise ModelError(f"{_where(node)}: both operands are constants")
        index = 0 if ca is not None else 1
        x, constant = (b, ca) if ca is not None else (a, cb)
        if constant is not None:
            constant = np.asarray(constant, np.int64)
            if len(x.shape) == 2 and constant.size == x.shape[1] and \
                    constant.shape[-1:] == (x.shape[1],):
                # A bias of one value a column (MatMul + Add over M rows): onnxruntime's
                # QLinearAdd broadcasts it, so the constant is written out for every row.
                constant = np.broadcast_to(constant.reshape(-1), x.shape)
            if np.size(constant) != x.size:
                raise ModelError(f"{_where(node)}: a constant operand must have as many "
                                 f"elements as the other ({x.size}) or as its last dimension, "
                                 f"not {np.size(constant)}")
            constant = np.asarray(constant, np.int64).reshape(x.shape)
        elif a.shape != b.shape:
            raise ModelError(f"{_where(node)}: broadcasting is not supported ({list(a.shape)} "
                             f"+ {list(b.shape)})")
        if a.dtype != dtype or b.dtype != dtype:
            raise ModelError(f"{_where(node)}: inputs and output must have one type")
        y = self.add_tensor(out, x.shape, dtype, scale, zero)
        self.add_layer(AddLayer(
            name=node.name or out, op=node.op_type,
            inputs=[x.name] if constant is not None else [a.name, b.name], output=out,
            clamp=self.clamp(y, clamp), constant=constant,
            constant_tensor=(a if index == 0 else b) if constant is not None else None,
            constant_index=index))

    def add_operand(self, node, index, value, scale, zero):
        """A Tensor for the constant operand of an Add (its integers are ``value``)."""
        value = np.asarray(value)
        if value.dtype not in (np.int8, np.uint8) or np.size(scale) != 1 or \
                (zero is not None and np.size(zero) != 1):
            raise ModelError(f"{_where(node)}: a constant operand must be int8 or uint8, "
                             f"quantised per tensor")
        z = 0 if zero is None else int(np.asarray(zero).reshape(-1)[0])
        return Tensor(node.input[index], value.shape, str(value.dtype),
                      float(np.float32(np.asarray(scale).reshape(-1)[0])), z)

    # -- QDQ -----------------------------------------------------------------------------

    def float_in(self, node, index):
        """The chip tensor a DequantizeLinear made ``node.input[index]`` from."""
        name = node.input[index]
        if name not in self.deq:
            raise ModelError(f"{_where(node)}: input {name} must come from a "
                             f"DequantizeLinear of a quantised tensor (QDQ format)")
        return self.model.tensors[self.deq[name]]

    def const_in(self, node, index):
        """``(int values, scale, zero)`` of a DequantizeLinear'd constant input."""
        name = node.input[index] if index < len(node.input) else ""
        if not name:
            return None
        if name in self.cdeq:
            return self.cdeq[name]
        if name in self.consts:
            raise ModelError(f"{_where(node)}: input {name} is a float constant; quantise "
                             f"it (QDQ format: a DequantizeLinear of an integer constant)")
        raise ModelError(f"{_where(node)}: input {name} must be a constant")

    def quantized_out(self, node, activation=None):
        """Follow the float output through an optional Relu/Clip (``activation`` if the node
        is one) to its QuantizeLinear; returns ``(name, scale, zero, dtype, clamp)`` and
        marks those nodes done."""
        name, clamp_float = node.output[0], None
        users = self.consumers.get(name, [])
        if activation is not None or len(users) == 1 and users[0].op_type in ("Relu", "Clip"):
            act = activation or users[0]
            if act.op_type == "Relu":
                clamp_float = (0.0, None)
            else:
                lo = self.scalar(act, 1, "min", None) if len(act.input) > 1 else None
                hi = self.scalar(act, 2, "max", None) if len(act.input) > 2 else None
                at = _attrs(act)
                lo = at.get("min", lo)
                hi = at.get("max", hi)
                clamp_float = (lo, hi)
            self.done.add(id(act))
            name, users = act.output[0], self.consumers.get(act.output[0], [])
        if len(users) != 1 or users[0].op_type != "QuantizeLinear":
            raise ModelError(f"{_where(node)}: its output must go to one QuantizeLinear "
                             f"(QDQ format), optionally through Relu or Clip")
        q = users[0]
        self.done.add(id(q))
        scale = self.scalar(q, 1, "scale")
        zero_arr = self.const(q, 2, "zero point")
        zero = 0 if zero_arr is None else int(zero_arr.reshape(-1)[0])
        dtype = "uint8" if zero_arr is None else str(zero_arr.dtype)
        if dtype not in ("int8", "uint8"):
            raise ModelError(f"{_where(q)}: only int8 and uint8 outputs are supported")
        clamp = None
        if clamp_float is not None:
            def q_of(v):
                return int(np.rint(np.float32(v) / np.float32(scale))) + zero
            lo = -10 ** 9 if clamp_float[0] is None else q_of(clamp_float[0])
            hi = 10 ** 9 if clamp_float[1] is None else q_of(clamp_float[1])
            clamp = (lo, hi)
        return q.output[0], scale, zero, dtype, clamp

    # -- the walk ------------------------------------------------------------------------

    def run(self):
        for node in self.nodes:
            if id(node) in self.done:
                continue
            handler = getattr(self, "op_" + node.op_type, None)
            if handler is None or node.domain not in ("", "ai.onnx", "com.microsoft"):
                raise ModelError(f"operator {node.op_type} (node '{node.name}') is not "
                                 f"supported")
            handler(node)
        return self.finish()

    def finish(self):
        m = self.model
        out = m.output_name
        if out in self.tail:
            m.chip_output, m.post = self.tail[out]
        elif out in m.tensors:
            m.chip_output = out
        else:
            raise ModelError(f"the output {out} is not computed from the chip's tensors")
        if not m.chip_input:
            raise ModelError(f"the input {m.input_name} is never quantised")
        if not m.layers:
            raise ModelError("the model has no layer for the chip")
        return fold_flatten(m)

    def op_QuantizeLinear(self, node):
        x = node.input[0]
        scale = self.scalar(node, 1, "scale")
        zero_arr = self.const(node, 2, "zero point")
        dtype = "uint8" if zero_arr is None else str(zero_arr.dtype)
        zero = 0 if zero_arr is None else int(zero_arr.reshape(-1)[0])
        if x in self.consts:
            raise ModelError(f"{_where(node)}: quantise constants ahead of time (QDQ weights "
                             f"are stored as integers)")
        if x != self.model.input_name:
            if x in self.deq:           # Q(DQ(t)) with the same parameters: t itself
                t = self.model.tensors[self.deq[x]]
                if t.dtype == dtype and t.scale == float(scale) and t.zero == zero:
                    self.model.aliases[node.output[0]] = t.name
                    self.model.tensors[node.output[0]] = Tensor(
                        node.output[0], t.shape, t.dtype, t.scale, t.zero)
                    return
                if dtype in ("int8", "uint8"):
                    self.requantise(node, t, node.output[0], scale, zero, dtype, None)
                    return
            raise ModelError(f"{_where(node)}: it quantises {x}, which is neither the model "
                             f"input nor the output of a supported operator")
        if dtype not in ("int8", "uint8"):
            raise ModelError(f"{_where(node)}: only int8 and uint8 inputs are supported")
        if self.model.chip_input:
            raise ModelError(f"{_where(node)}: the input is quantised twice")
        if self.input_type != _FLOAT:
            raise ModelError(f"{_where(node)}: the model input must be float")
        self.model.pre.append(HostOp(node.name or node.output[0], "QuantizeLinear",
                                     np.float32(scale), zero, dtype))
        self.add_tensor(node.output[0], self.model.input_shape, dtype, scale, zero)
        self.model.chip_input = node.output[0]

    def op_DequantizeLinear(self, node):
        x = node.input[0]
        scale = self.const(node, 1, "scale")
        zero = self.const(node, 2, "zero point")
        if x in self.consts:
            self.cdeq[node.output[0]] = (self.consts[x], scale, zero)
            return
        if x in self.tail and x not in self.model.tensors:
            src, ops = self.tail[x]
            if scale.size != 1 or (zero is not None and zero.size != 1) or \
                    not ops or ops[-1].op != "QLinearSoftmax":
                raise ModelError(f"{_where(node)}: only a per-tensor DequantizeLinear of a "
                                 f"final Softmax is supported on the host")
            self.tail[node.output[0]] = (src, ops + [HostOp(
                node.name or node.output[0], "DequantizeLinear", np.float32(scale.reshape(())),
                0 if zero is None else int(zero.reshape(-1)[0]))])
            return
        t = self.chip(node, 0)
        if scale.size != 1 or (zero is not None and zero.size != 1):
            raise ModelError(f"{_where(node)}: activations must be quantised per tensor")
        z = 0 if zero is None else int(zero.reshape(-1)[0])
        if t.scale is not None and (float(np.float32(scale.reshape(()))) != t.scale or z != t.zero):
            raise ModelError(f"{_where(node)}: it dequantises {x} with other parameters than "
                             f"it was quantised with")
        self.deq[node.output[0]] = t.name
        self.tail[node.output[0]] = (t.name, [HostOp(node.name or node.output[0],
                                                     "DequantizeLinear",
                                                     np.float32(scale.reshape(())), z)])

    # QOperator layers

    def op_QLinearConv(self, node):
        x = self.chip(node, 0)
        self.check_input_q(node, x, 1, 2)
        ys, yz, ydt = self.out_q(node, 6, 7)
        self.conv(node, x, self.const(node, 3, "weights"), self.const(node, 4, "weight scale"),
                  self.const(node, 5, "weight zero point"), self.const(node, 8, "bias"),
                  ys, yz, ydt, node.output[0])

    def op_QLinearMatMul(self, node):
        a = self.chip(node, 0)
        self.check_input_q(node, a, 1, 2)
        ys, yz, ydt = self.out_q(node, 6, 7)
        self.gemm(node, a, self.const(node, 3, "weights"), self.const(node, 4, "weight scale"),
                  self.const(node, 5, "weight zero point"), None, ys, yz, ydt, node.output[0])

    def op_QGemm(self, node):
        at = _attrs(node)
        if at.get("transA", 0) or at.get("alpha", 1.0) != 1.0:
            raise ModelError(f"{_where(node)}: transA and alpha other than 1 are not supported")
        a = self.chip(node, 0)
        self.check_input_q(node, a, 1, 2)
        if len(node.input) < 8 or not node.input[7]:
            raise ModelError(f"{_where(node)}: a float output (no y_scale) is not supported")
        ys, yz, ydt = self.out_q(node, 7, 8)
        self.gemm(node, a, self.const(node, 3, "weights"), self.const(node, 4, "weight scale"),
                  self.const(node, 5, "weight zero point"), self.const(node, 6, "bias"),
                  ys, yz, ydt, node.output[0], trans_b=bool(at.get("transB", 0)))

    def op_MatMulInteger(self, node):
        a = self.chip(node, 0)
        a_zero = self.const(node, 2, "A zero point")
        if a_zero is not None and (a_zero.size != 1 or int(a_zero.reshape(-1)[0]) != a.zero):
            raise ModelError(f"{_where(node)}: the A zero point must be the one {a.name} was "
                             f"quantised with ({a.zero})")
        self.gemm(node, a, self.const(node, 1, "weights"), None,
                  self.const(node, 3, "B zero point"), None, None, 0, "int32", node.output[0])

    def op_QLinearAdd(self, node):
        ys, yz, ydt = self.out_q(node, 6, 7)
        operands = []
        for i in (0, 3):
            if node.input[i] in self.consts:
                value = self.consts[node.input[i]]
                operands.append((self.add_operand(node, i, value, self.const(node, i + 1, "scale"),
                                                  self.const(node, i + 2, "zero point")), value))
            else:
                t = self.chip(node, i)
                self.check_input_q(node, t, i + 1, i + 2)
                operands.append((t, None))
        self.add(node, operands, node.output[0], ys, yz, ydt)

    def op_QLinearAveragePool(self, node, glob=False):
        x = self.chip(node, 0)
        self.check_input_q(node, x, 1, 2)
        ys, yz, ydt = self.out_q(node, 3, 4)
        self.avgpool(node, x, node.output[0], ys, yz, ydt, glob=glob)

    def op_QLinearGlobalAveragePool(self, node):
        self.op_QLinearAveragePool(node, glob=True)

    def op_QLinearSoftmax(self, node):
        x = self.chip(node, 0)
        self.check_input_q(node, x, 1, 2)
        ys, yz, ydt = self.out_q(node, 3, 4)
        self.softmax(node, x, node.output[0], ys, yz, ydt, _attrs(node).get("opset", 13))

    def softmax(self, node, x, out, scale, zero, dtype, opset):
        """A Softmax of the chip's last tensor, by the host (onnxruntime's QLinearSoftmax)."""
        axis = _attrs(node).get("axis", 1 if opset < 13 else -1)
        rank = len(x.shape)
        axis = axis + rank if axis < 0 else axis
        if opset < 13 and any(d != 1 for d in x.shape[axis:-1]) or \
                opset >= 13 and axis != rank - 1:
            raise ModelError(f"{_where(node)}: only a Softmax over the last axis is supported")
        if dtype != x.dtype:
            raise ModelError(f"{_where(node)}: input and output must have one type")
        if x.name in self.tail or x.name not in self.producer:
            raise ModelError(f"{_where(node)}: its input must be computed by the chip")
        self.tail[out] = (x.name, [HostOp(node.name or out, "QLinearSoftmax", np.float32(scale),
                                          int(zero), dtype, {"x_scale": np.float32(x.scale)})])

    def check_input_q(self, node, t, si, zi):
        s = self.scalar(node, si, "input scale")
        z = self.scalar(node, zi, "input zero point", 0)
        if float(np.float32(s)) != t.scale or int(z) != t.zero:
            raise ModelError(f"{_where(node)}: input {t.name} is given other quantisation "
                             f"parameters than it was quantised with")

    def out_q(self, node, si, zi):
        s = self.scalar(node, si, "output scale")
        z = self.const(node, zi, "output zero point")
        if z is None:
            return s, 0, "uint8"
        if z.size != 1:
            raise ModelError(f"{_where(node)}: the output must be quantised per tensor")
        return s, int(z.reshape(-1)[0]), str(z.dtype)

    # QDQ layers

    def op_Conv(self, node):
        x = self.float_in(node, 0)
        w, ws, wz = self.const_in(node, 1)
        bias = self.const_in(node, 2)
        name, ys, yz, ydt, clamp = self.quantized_out(node)
        self.conv(node, x, w, ws, wz, None if bias is None else bias[0], ys, yz, ydt, name,
                  clamp)

    def op_MatMul(self, node):
        a = self.float_in(node, 0)
        w, ws, wz = self.const_in(node, 1)
        name, ys, yz, ydt, clamp = self.quantized_out(node)
        self.gemm(node, a, w, ws, wz, None, ys, yz, ydt, name, clamp)

    def op_Gemm(self, node):
        at = _attrs(node)
        if at.get("transA", 0) or at.get("alpha", 1.0) != 1.0 or at.get("beta", 1.0) != 1.0:
            raise ModelError(f"{_where(node)}: transA, alpha and beta other than 1 are not "
                             f"supported")
        a = self.float_in(node, 0)
        w, ws, wz = self.const_in(node, 1)
        bias = self.const_in(node, 2)
        name, ys, yz, ydt, clamp = self.quantized_out(node)
        self.gemm(node, a, w, ws, wz, None if bias is None else bias[0], ys, yz, ydt, name,
                  clamp, trans_b=bool(at.get("transB", 0)))

    def op_Add(self, node):
        if node.input[0] in self.tail and node.input[0] not in self.deq or \
                node.input[1] in self.tail and node.input[1] not in self.deq:
            return self.host_binary(node)
        operands = []
        for i in (0, 1):
            if node.input[i] in self.cdeq:
                value, scale, zero = self.cdeq[node.input[i]]
                operands.append((self.add_operand(node, i, value, scale, zero), value))
            else:
                operands.append((self.float_in(node, i), None))
        name, ys, yz, ydt, clamp = self.quantized_out(node)
        self.add(node, operands, name, ys, yz, ydt, clamp)

    def same_q(self, node):
        """Ops that move values: the QuantizeLinear after them must keep the parameters."""
        x = self.float_in(node, 0)
        name, ys, yz, ydt, clamp = self.quantized_out(node)
        if clamp is not None or float(np.float32(ys)) != x.scale or yz != x.zero \
                or ydt != x.dtype:
            raise ModelError(f"{_where(node)}: the QuantizeLinear after it must keep the "
                             f"input's scale and zero point")
        return x, name

    def layout_operand(self, node):
        """The quantised input of a layout operator (MaxPool, Flatten) and its output's name:
        a QDQ pair around it keeps the input's scale and zero point."""
        if node.input[0] in self.deq:
            return self.same_q(node)
        return self.chip(node, 0), node.output[0]

    def op_MaxPool(self, node):
        x, name = self.layout_operand(node)
        self.maxpool(node, x, name, x.scale, x.zero)

    def op_AveragePool(self, node, glob=False):
        x = self.float_in(node, 0)
        name, ys, yz, ydt, clamp = self.quantized_out(node)
        lo, hi = self.model.tensors[x.name].range
        if clamp is not None and (clamp[0] > lo or clamp[1] < hi):
            raise ModelError(f"{_where(node)}: a Relu or Clip after an average pool is not "
                             f"supported")
        self.avgpool(node, x, name, ys, yz, ydt, glob=glob)

    def op_GlobalAveragePool(self, node):
        self.op_AveragePool(node, glob=True)

    def op_Softmax(self, node):
        x = self.float_in(node, 0)
        name, ys, yz, ydt, clamp = self.quantized_out(node)
        if clamp is not None:
            raise ModelError(f"{_where(node)}: a Relu or Clip after Softmax is not supported")
        self.softmax(node, x, name, ys, yz, ydt, self.opset)

    def op_Flatten(self, node):
        x, name = self.layout_operand(node)
        self.reshape(node, x, name, x.scale, x.zero)

    op_Reshape = op_Flatten

    def op_Relu(self, node):
        if node.input[0] in self.deq:
            return self.float_activation(node)
        self.int_activation(node, 0, None)

    def op_Clip(self, node):
        if node.input[0] in self.deq:
            return self.float_activation(node)
        at = _attrs(node)
        lo = at.get("min", self.scalar(node, 1, "min") if len(node.input) > 1 else None)
        hi = at.get("max", self.scalar(node, 2, "max") if len(node.input) > 2 else None)
        self.int_activation(node, lo, hi)

    def float_activation(self, node):
        """DequantizeLinear -> Relu or Clip -> QuantizeLinear with nothing to fuse into."""
        x = self.float_in(node, 0)
        name, ys, yz, ydt, clamp = self.quantized_out(node, activation=node)
        self.requantise(node, x, name, ys, yz, ydt, clamp)

    def int_activation(self, node, lo, hi):
        """Relu or Clip of an integer tensor: clamps of the integers themselves, fused."""
        x = node.input[0]
        if x not in self.model.tensors or x not in self.producer:
            raise ModelError(f"{_where(node)}: only a Relu or Clip right after a requantising "
                             f"layer (or before a QuantizeLinear in QDQ format) is supported")
        layer = self.producer[x]
        if not isinstance(layer, (GemmLayer, ConvLayer, AddLayer)) or \
                len(self.consumers.get(x, [])) != 1 or x == self.model.output_name:
            t = self.model.tensors[x]        # others read it too: clamp a copy, by table
            if t.dtype not in ("int8", "uint8"):
                raise ModelError(f"{_where(node)}: input {x} is {t.dtype}")
            lo = t.range[0] if lo is None else max(t.range[0], int(np.ceil(lo)))
            hi = t.range[1] if hi is None else min(t.range[1], int(np.floor(hi)))
            if lo > hi:
                raise ModelError(f"{_where(node)}: it leaves no output value")
            self.add_tensor(node.output[0], t.shape, t.dtype, t.scale, t.zero)
            self.add_layer(LookupLayer(name=node.name or node.output[0], op=node.op_type,
                                       inputs=[x], output=node.output[0],
                                       table=clamp_table(t, (lo, hi))))
            return
        t = self.model.tensors.pop(x)
        c0, c1 = layer.clamp
        lo = c0 if lo is None else max(c0, int(np.ceil(lo)))
        hi = c1 if hi is None else min(c1, int(np.floor(hi)))
        if lo > hi:
            raise ModelError(f"{_where(node)}: it leaves no output value")
        layer.clamp = (lo, hi)
        layer.output = node.output[0]
        t.name = node.output[0]
        self.model.tensors[t.name] = t
        del self.producer[x]
        self.producer[t.name] = layer

    def op_DynamicQuantizeLinear(self, node):
        raise ModelError(f"{_where(node)}: dynamic quantisation is not supported (its layers "
                         f"are joined by float operators); quantise statically "
                         f"(onnxruntime.quantization.quantize_static)")

    # the host's float tail

    def op_Cast(self, node):
        x = node.input[0]
        if _attrs(node).get("to") != _FLOAT:
            raise ModelError(f"{_where(node)}: only a Cast to float is supported")
        if x in self.tail:
            src, ops = self.tail[x]
        elif x in self.model.tensors:
            src, ops = x, []
        else:
            raise ModelError(f"{_where(node)}: input {x} is not computed by the chip")
        self.tail[node.output[0]] = (src, ops + [HostOp(node.name, "Cast")])

    def host_binary(self, node):
        names = list(node.input)
        if names[0] in self.tail and names[1] in self.consts:
            x, c = names
        elif names[1] in self.tail and names[0] in self.consts:
            c, x = names
        else:
            raise ModelError(f"{_where(node)}: only a float {node.op_type} of a chip result "
                             f"and a constant is supported")
        src, ops = self.tail[x]
        value = np.asarray(self.consts[c])
        if value.dtype != np.float32:
            raise ModelError(f"{_where(node)}: the constant must be float32")
        self.tail[node.output[0]] = (src, ops + [HostOp(node.name, node.op_type, value)])

    op_Mul = host_binary


def import_model(model):
    """An ONNX model (a path or a ModelProto) as a :class:`rvnpu.compiler.onnx.ir.Model`.

    Raises :class:`ModelError` naming the node for what the chip cannot run.
    """
    onnx, _ = _onnx()
    if not hasattr(model, "graph"):
        try:
            model = onnx.load(str(model))
        except Exception as error:      # protobuf decode errors have no common base
            raise ModelError(f"cannot read {model}: {error}") from None
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16}
    if not any(node.op_type in _QUANTISED_OPS for node in model.graph.node) and any(
            i.type.tensor_type.elem_type in floats for i in model.graph.input):
        raise ModelError(
            "the model is not quantised (a float model: no QuantizeLinear, DequantizeLinear or "
            "QLinear operator); quantise it to int8 first with onnxruntime.quantization."
            "quantize_static, as `rvnpu digits` does")
    return _Importer(model).run()


#: Operators only a quantised model has; a model with none of them is a float model.
_QUANTISED_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
                  "QLinearMatMul", "QLinearAdd", "QLinearMul", "QGemm", "MatMulInteger",
                  "ConvInteger"}
