"""Engine layers compiled whole, at compile time, into command lists the engine fetches itself.

The compiler knows every tensor's place, so it can write each convolution's and GEMM's commands
(``rvnpu.compiler.conv``) before the firmware exists. Consecutive engine layers share one list:
the core starts it with one RUN and sleeps until the engine raises its interrupt, and the
engine's hazard checks keep a layer's loads behind the stores of the layer before, so nothing
waits for the core between layers. Engines built without command fetch get the same list, which
the core walks and issues command by command.

Addresses are not known until link time, so the lists are compiled in a *virtual* layout with
one region a C symbol (the arena, the input slots, each layer's constants) and written as C
address expressions, ``symbol + offset``, that the linker resolves.
"""

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from rvnpu.compiler.conv import (ConvSpec, FeatureMap, SkipAdd, compile_conv,
                                 conv_constant_sizes, conv_constants, holds_padding)
from rvnpu.compiler.gemm import GemmError
from rvnpu.compiler.onnx.exact_average import engine_average_scale
from rvnpu.compiler.onnx.planner import ALIGN
from rvnpu.sim.golden.gemm import Requant
from rvnpu.sim.golden.pool import global_pool_scale
from rvnpu.spec.commands import COMMANDS, Funct, PostConstant, encode


__all__ = ["AddressSpace", "EngineStep", "engine_step", "input_border", "tensor_map",
           "compile_config", "address_operands", "fusable_pool", "fusable_add", "fused_after"]

def address_operands(funct):
    """The operands (1, 2) of command ``funct`` that are wholly a main-memory byte address: a
    32-bit field named ``*addr``, read from the command set."""
    return tuple(f.operand for f in COMMANDS[Funct(funct)].fields
                 if f.width == 32 and f.lsb == 0 and f.name.endswith("addr"))


def _up(n, a=ALIGN):
    return -(-n // a) * a


@dataclass
class AddressSpace:
    """Regions of the virtual layout, each standing for one C symbol."""
    regions: list = field(default_factory=list)       # (symbol, base, size)
    end: int = 0

    def add(self, symbol, size):
        base = _up(self.end)
        self.regions.append((symbol, base, size))
        self.end = base + max(size, 1)
        return base

    def base(self, symbol):
        return next(b for s, b, _ in self.regions if s == symbol)

    def resolve(self, addr):
        """``(symbol, offset)`` of a virtual address. Regions may touch, so an address is in
        the region that starts at or below it and has bytes above it."""
        for symbol, base, size in self.regions:
            if base <= addr < base + max(size, 1):
                return symbol, addr - base
        raise ValueError(f"address {addr} is in no region")


@dataclass
class EngineStep:
    """One layer's commands (no FENCE) and the constants they read, by C symbol name."""
    commands: list
    constants: dict            # symbol -> bytes
    macs: int
    mapping: str = ""


def input_border(model):
    """Border pixels ``(top, left, bottom, right)`` of the chip input's buffer: the widest
    padding of the convolutions reading it, when only convolutions read it (the host writes
    the border with the input, so it costs nothing at run time); else none."""
    from rvnpu.compiler.onnx.layers import ConvLayer

    readers = [layer for layer in model.layers if model.chip_input in
               (model.storage(name) for name in layer.inputs)]
    if not readers or not all(isinstance(layer, ConvLayer) for layer in readers):
        return (0, 0, 0, 0)
    return tuple(max(layer.pads[i] for layer in readers) for i in range(4))


def tensor_map(model, name, base, border=(0, 0, 0, 0)):
    """The :class:`FeatureMap` of a stored tensor: rank 4 is an NHWC image, rank 2 ``(M, K)``
    a one-row image of M pixels (so a GEMM's A rows are one strided run)."""
    shape = model.tensors[name].shape
    if len(shape) == 4:
        _, c, h, w = shape
    else:
        h, w, c = 1, int(np.prod(shape[:-1])), shape[-1]
    top, left, bottom, right = border
    return FeatureMap(base, h + top + bottom, w + left + right, c, h, w, c, top, left)


def _average_pool(layer, model):
    """An average pool as the depthwise convolution it is, a kernel of ones, where that is
    onnxruntime's arithmetic exactly: always for a window of the whole map (onnxruntime's
    integer path, the sum less the zero points times one float32 scale, rounded half to even,
    is the engine's ONNX Runtime requantisation), and for a smaller window where
    :func:`~rvnpu.compiler.onnx.exact_average.engine_average_scale` proves that every window
    rounds as onnxruntime's float32 average does."""
    from rvnpu.compiler.onnx.layers import AveragePoolLayer

    if not isinstance(layer, AveragePoolLayer):
        return None
    x_t, y_t = model.tensors[layer.inputs[0]], model.tensors[layer.output]
    _, c, h, w = x_t.shape
    kh, kw = layer.kernel
    if (kh, kw) == (h, w) and not any(layer.pads):
        scale = global_pool_scale(x_t.scale, y_t.scale, h * w)
    else:
        scale = engine_average_scale(x_t.scale, x_t.zero, y_t.scale, y_t.zero, x_t.range,
                                     (kh, kw), layer.stride, layer.pads,
                                     layer.count_include_pad, layer.ceil_mode, (h, w))
        if scale is None:
            return None
    return ConvSpec(np.ones((kh, kw, 1, c), np.int64), None,
                    Requant("ort", scale=np.full(c, scale, np.float32), out_zero=y_t.zero,
                            clamp_min=layer.clamp[0], clamp_max=layer.clamp[1]),
                    stride=tuple(layer.stride), pad=tuple(layer.pads), groups=c,
                    in_zero=x_t.zero, in_signed=x_t.signed)


def _conv_spec(layer, model):
    """The :class:`ConvSpec` of a requantised convolution, GEMM or average pool, or
    ``None`` for a layer of another kind."""
    from rvnpu.compiler.onnx.layers import ConvLayer, GemmLayer

    if not isinstance(layer, (ConvLayer, GemmLayer)):
        return _average_pool(layer, model)
    if layer.scale is None:
        return None
    x_t, y_t = model.tensors[layer.inputs[0]], model.tensors[layer.output]
    if isinstance(layer, GemmLayer):
        return ConvSpec(layer.weights[None, None], layer.bias, layer.requant(y_t),
                        in_zero=x_t.zero, weight_zero=layer.weight_zero, in_signed=x_t.signed,
                        weight_signed=not layer.weights_unsigned)
    return ConvSpec(layer.weights, layer.bias, layer.requant(y_t), stride=layer.stride,
                    pad=layer.pads, dilation=layer.dilation, groups=layer.groups,
                    in_zero=x_t.zero, weight_zero=layer.weight_zero, in_signed=x_t.signed,
                    weight_signed=not layer.weights_unsigned)


def fusable_pool(model, index):
    """The max-pool layer after layer ``index`` that its convolution's stores can take
    (window equal to stride, the convolution's output read by nothing else and of the same
    quantisation), or ``None``."""
    from rvnpu.compiler.onnx.layers import ConvLayer, PoolLayer

    layers = model.layers
    if index + 1 >= len(layers):
        return None
    conv, pool = layers[index], layers[index + 1]
    if not isinstance(conv, ConvLayer) or not isinstance(pool, PoolLayer):
        return None
    out = model.storage(conv.output)
    readers = [layer for layer in layers if out in (model.storage(n) for n in layer.inputs)]
    x, y = model.tensors[conv.output], model.tensors[pool.output]
    if (readers != [pool] or out == model.storage(model.chip_output)
            or tuple(pool.kernel) != tuple(pool.stride) or len(x.shape) != 4
            or (x.dtype, x.scale, x.zero) != (y.dtype, y.scale, y.zero)):
        return None
    return pool


def fusable_add(model, index):
    """The QLinearAdd layer after layer ``index`` that its convolution's stores can take, or
    ``None``: the convolution's output is read by nothing else, is not the chip output, and
    is one operand of the Add; the other, the skip tensor, of the same shape (no broadcast)
    and element type, is the chip input or an earlier layer's output, so it is in memory
    when the convolution stores."""
    from rvnpu.compiler.onnx.layers import AddLayer, ConvLayer

    layers = model.layers
    if index + 1 >= len(layers):
        return None
    conv, add = layers[index], layers[index + 1]
    if not isinstance(conv, ConvLayer) or not isinstance(add, AddLayer) \
            or add.constant is not None:
        return None
    out = model.storage(conv.output)
    operands = [model.storage(name) for name in add.inputs]
    if len(operands) != 2 or operands.count(out) != 1:
        return None
    readers = [layer for layer in layers if out in (model.storage(n) for n in layer.inputs)]
    skip = operands[1 - operands.index(out)]
    earlier = {model.storage(model.chip_input)} | {model.storage(layer.output)
                                                   for layer in layers[:index]}
    tensors = [model.tensors[name] for name in (conv.output, skip, add.output)]
    if (readers != [add] or out == model.storage(model.chip_output) or skip not in earlier
            or len(tensors[0].shape) != 4
            or len({tuple(t.shape) for t in tensors}) != 1
            or len({t.dtype for t in tensors}) != 1):
        return None
    return add


def fused_after(model, index):
    """The layer after layer ``index`` that its stores may take (:func:`fusable_pool` or
    :func:`fusable_add`), or ``None``. Its output is written while layer ``index`` runs, so
    the memory planner keeps it apart from what that layer reads."""
    return fusable_pool(model, index) or fusable_add(model, index)


def _skip_add(model, conv, add, skip):
    """The :class:`SkipAdd` of a :func:`fusable_add` layer, its constants and operand order
    those of its separate QLINEAR_ADD (:func:`post_step`, the firmware's kernel)."""
    from rvnpu.compiler.onnx.layers.add import qlinear_add_constants

    ta, tb = (model.tensors[name] for name in add.inputs)
    y = model.tensors[add.output]
    ratio_a, ratio_b, fixed = qlinear_add_constants(ta, tb, y)
    skip_first = model.storage(add.inputs[0]) != model.storage(conv.output)
    return SkipAdd(skip, ratio_a, ratio_b, fixed, tuple(add.clamp), y.signed, skip_first)


def engine_step(layer, model, engine, space, addr_of, prefix, border=(0, 0, 0, 0),
                pool=None, add=None):
    """The :class:`EngineStep` of a convolution, GEMM or average pool, or ``None`` when
    the layer cannot run from a list (raw int32 outputs, a requantisation the engine lacks): it
    then keeps the firmware library's path. ``addr_of(name)`` is a tensor's virtual address;
    constants are added to ``space`` as ``<prefix>_weights`` and so on. With ``pool`` (a
    :func:`fusable_pool` layer) the convolution writes the pool's output through its stores,
    or, where it cannot, the result is ``None`` and ``space`` is unchanged; so with ``add`` (a
    :func:`fusable_add` layer), whose QLinearAdd the stores then perform (STORE_ADD)."""
    from rvnpu.compiler.onnx.layers import ConvLayer

    engine = compile_config(engine)
    conv = isinstance(layer, ConvLayer)
    trial = AddressSpace(list(space.regions), space.end)
    fused = pool or add
    try:
        spec = _conv_spec(layer, model)
        if spec is None:
            return None
        x = tensor_map(model, layer.inputs[0], addr_of(layer.inputs[0]), border)
        out = layer.output if fused is None else fused.output
        y = tensor_map(model, out, addr_of(out))
        skip_add = None
        if add is not None:
            name = next(n for n in add.inputs
                        if model.storage(n) != model.storage(layer.output))
            # One offset reaches the skip tensor only if both lie in one region (the arena):
            # the linker places the regions.
            if space.resolve(addr_of(name))[0] != space.resolve(y.base)[0]:
                return None
            skip_add = _skip_add(model, layer, add, tensor_map(model, name, addr_of(name)))
        padded = holds_padding(spec, x)
        sizes = conv_constant_sizes(spec, engine, x.pitch, padded=padded, in_width=x.w)
        constants = conv_constants(spec, engine, x.pitch, padded=padded, in_width=x.w)
        addrs = {}
        for kind, size in sizes.items():
            if size:
                addrs[kind] = trial.add(f"{prefix}_{kind}", size)
        program = compile_conv(spec, x, y, weights_addr=addrs["weights"], qp_addr=addrs["qp"],
                               pad_addr=addrs.get("pad"), config=engine,
                               pool=None if pool is None else tuple(pool.kernel), add=skip_add)
    except GemmError:
        if fused is None and conv and (layer.groups != 1 or tuple(layer.dilation) != (1, 1) or
                                      layer.pads[:2] != layer.pads[2:]):
            raise           # the firmware's path cannot take it either
        return None
    space.regions[:], space.end = trial.regions, trial.end
    return EngineStep(program.commands,
                      {f"{prefix}_{kind}": constants[kind] for kind in addrs},
                      program.macs, program.mapping)


def _post_shape(shape):
    """``(height, width, channels)`` of a stored tensor for CONFIG_POST, or ``None`` if its
    sides do not fit the fields."""
    if len(shape) == 4:
        _, c, h, w = shape
    else:
        h, w, c = 1, int(np.prod(shape[:-1])), int(shape[-1])
    fits = all(v <= f.hi for v, f in zip((h, w, c), (_field("CONFIG_POST", n) for n in
                                                     ("height", "width", "channels"))))
    return (h, w, c) if fits and min(h, w, c) >= 1 else None


def _field(funct, name):
    return next(f for f in COMMANDS[Funct[funct]].fields if f.name == name)


def post_step(layer, model, engine, space, addr_of, prefix):
    """The :class:`EngineStep` of a max-pool or a QLinearAdd on the engine's post-processing
    unit, or ``None`` (an engine without it, a shape its fields cannot hold, mixed element
    types): the layer then keeps the firmware's path."""
    from rvnpu.compiler.onnx.layers import AddLayer, PoolLayer

    if not getattr(engine, "post_unit", False) or not isinstance(layer, (AddLayer, PoolLayer)):
        return None
    y = model.tensors[layer.output]
    lo, hi = y.range
    if isinstance(layer, PoolLayer):
        x = model.tensors[layer.inputs[0]]
        if len(x.shape) != 4 or x.dtype != y.dtype:
            return None
        _, c, h, w = x.shape
        (kh, kw), (sh, sw) = layer.kernel, layer.stride
        values = dict(height=h, width=w, kernel_h=kh, kernel_w=kw, channels=c, stride_h=sh,
                      stride_w=sw, elem_signed=int(x.signed))
        if any(v > _field("CONFIG_POST", k).hi for k, v in values.items()):
            return None
        commands = [encode(Funct.CONFIG_POST, **values),
                    encode(Funct.CONFIG_POST_OUT, out_addr=addr_of(layer.output),
                           clamp_min=lo, clamp_max=hi),
                    encode(Funct.MAXPOOL, in_addr=addr_of(layer.inputs[0]))]
        return EngineStep(commands, {}, 0, "max-pool on the post-processing unit")
    from rvnpu.compiler.onnx.layers.add import qlinear_add_constants

    shape = _post_shape(y.shape)
    if shape is None:
        return None
    constants, addrs = {}, []
    operands = [(model.tensors[name], addr_of(name)) for name in layer.inputs]
    if layer.constant is not None:
        values = np.broadcast_to(layer.constant, y.shape)
        if values.ndim == 4:
            values = values.transpose(0, 2, 3, 1)
        t = layer.constant_tensor
        data = np.ascontiguousarray(values).astype(t.dtype).tobytes()
        symbol = f"{prefix}_constant"
        constants[symbol] = data
        operands.insert(layer.constant_index, (t, space.add(symbol, len(data))))
    (ta, a_addr), (tb, b_addr) = operands
    if {ta.dtype, tb.dtype} != {y.dtype}:
        return None
    h, w, c = shape
    ratio_a, ratio_b, fixed = qlinear_add_constants(ta, tb, y)
    commands = [encode(Funct.CONFIG_POST, height=h, width=w, kernel_h=1, kernel_w=1,
                       channels=c, stride_h=1, stride_w=1, elem_signed=int(y.signed))]
    for index, value in ((PostConstant.RATIO_A, ratio_a), (PostConstant.RATIO_B, ratio_b),
                         (PostConstant.FIXED, fixed)):
        bits = int(np.asarray(value, np.float32).view(np.uint32))
        commands.append(encode(Funct.CONFIG_POST_ADD, value=bits, index=index))
    commands += [encode(Funct.CONFIG_POST_OUT, out_addr=addr_of(layer.output),
                        clamp_min=layer.clamp[0], clamp_max=layer.clamp[1]),
                 encode(Funct.QLINEAR_ADD, a_addr=a_addr, b_addr=b_addr)]
    return EngineStep(commands, constants, 0, "QLinearAdd on the post-processing unit")


def compile_config(engine):
    """The engine configuration the lists are compiled for: the real one, with the widest
    memory window, because the virtual layout is not the RAM's (the linker places the regions,
    and checks that they fit the RAM)."""
    return dataclasses.replace(engine, mem_bytes=1 << 31)
