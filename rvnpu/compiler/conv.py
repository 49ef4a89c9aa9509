"""Compile a quantised 2-D convolution into an engine program that reads its windows straight
from the NHWC input, without an im2col copy.

The padding comes from one of two places. An input in a padded buffer (:class:`FeatureMap`)
whose border already holds the input zero point supplies it itself: the chip's input, which the
host writes, is kept so. Any other input is a plain tensor, and the windows that hang over its
edge read *zero-point rows* instead: a constant of input zero points as long as the longest
padded run, loaded at the same stride as the tensor's runs (so the engine's stride does not
change between them) into every scratchpad row a padded tap would have filled.

With the reduction ordered (kernel row, kernel column, channel), the inputs one kernel
row contributes to an output pixel are a contiguous run of memory (or one run a kernel column
when the tensor is a channel slice or the kernel is dilated), and the same run of the next output
pixel along a row lies ``stride_w * pitch`` elements further on. So each reduction chunk of A for
a run of output pixels is one strided LOAD, and the weight-stationary schedule of
:mod:`rvnpu.compiler.gemm` (A chunks loaded just before use, weight slots, two accumulator
halves, stores deferred behind the next tile's computes) runs on it unchanged.

Grouped convolutions pack several consecutive groups into one array pass: their input channels
are contiguous, their weights form a block-diagonal tile, and their output channels are
contiguous too. A depthwise convolution so becomes ``min(rows, cols)`` channels a COMPUTE with a
diagonal weight tile a kernel tap, instead of one channel a COMPUTE on one array column.

A max-pool whose window is its stride can follow in the stores (``pool``): the blocks then hold
whole bands of the window's height in output rows, so a window's pixels are accumulator rows at
fixed offsets, and one STORE_POOL a pooled row writes the max of their requantised values. The
convolution's output is never written to main memory, nor read back by a MAXPOOL.

A QLinearAdd of the output and a skip tensor can follow in the stores too (``add``, a
:class:`~rvnpu.compiler.conv_add.SkipAdd`): each STORE becomes a STORE_ADD, which adds the skip
tensor's elements before writing, so a residual block's Add costs no pass of its own.
"""

from dataclasses import dataclass, field

import numpy as np

from rvnpu.spec.config import EngineConfig
from rvnpu.spec.commands import Funct, Space, Dataflow, QP_ROWS, encode, field_of
from rvnpu.spec.requant import MODE_NAMES, mode_named
from rvnpu.sim.golden.engine import EngineModel, element_range, clamp_ok
from rvnpu.sim.golden.gemm import Requant
from rvnpu.sim.golden.conv import pads_of, window_count
from rvnpu.compiler.gemm import GemmError
from rvnpu.compiler.conv_add import SkipAdd, skip_add_commands, skip_offset
from rvnpu.compiler.conv_os import OsSchedule, os_applies
from rvnpu.compiler.conv_os_pool import (OsPoolSchedule, pool_applies, pool_block_image,
                                         shared_taps)


__all__ = ["FeatureMap", "ConvSpec", "ConvProgram", "conv_constant_sizes", "conv_constants",
           "compile_conv", "auto_pack", "holds_padding", "run_conv_on_model", "SkipAdd"]


def _ceil(a, b):
    return -(-a // b)


def _pair(value):
    return (int(value), int(value)) if np.isscalar(value) else tuple(int(v) for v in value)


def _element_bytes(values, elem_bytes):
    """Little-endian bytes of operand elements, ``elem_bytes`` each."""
    values = np.asarray(values, np.int64) & ((1 << (8 * elem_bytes)) - 1)
    return values.astype("<u2" if elem_bytes == 2 else "u1").tobytes()


@dataclass(frozen=True)
class FeatureMap:
    """An NHWC tensor inside a buffer in main memory.

    The buffer is ``height`` x ``width`` pixels of ``pitch`` elements; the tensor is its
    ``h`` x ``w`` interior starting at row ``top``, column ``left``, channels ``channel`` to
    ``channel + channels - 1`` of each pixel. The pixels around the interior are the border: a
    convolution reading this map takes its padding from there, and one writing it never
    touches it (so the next layer's padding is allocated once and stays put).
    """
    base: int
    height: int
    width: int
    pitch: int
    h: int
    w: int
    channels: int
    top: int = 0
    left: int = 0
    channel: int = 0

    @property
    def border(self):
        """Border pixels ``(top, left, bottom, right)``."""
        return (self.top, self.left, self.height - self.top - self.h,
                self.width - self.left - self.w)

    def nbytes(self, elem_bytes=1):
        """Bytes the whole buffer takes."""
        return self.height * self.width * self.pitch * elem_bytes

    def addr(self, row, col, ch=0, elem_bytes=1):
        """Byte address of channel ``ch`` of the tensor at buffer row ``row``, column ``col``
        (buffer coordinates: the interior starts at ``(top, left)``)."""
        return self.base + ((row * self.width + col) * self.pitch + self.channel + ch) * elem_bytes

    def check(self, name, config):
        """Refuse a map that does not fit its buffer or the engine's memory window."""
        for attr in ("base", "top", "left", "channel"):
            if getattr(self, attr) < 0:
                raise GemmError(f"{name}: {attr} must not be negative")
        for attr in ("height", "width", "pitch", "h", "w", "channels"):
            if getattr(self, attr) < 1:
                raise GemmError(f"{name}: {attr} must be at least 1")
        if min(self.border) < 0 or self.channel + self.channels > self.pitch:
            raise GemmError(f"{name}: a {self.h}x{self.w}x{self.channels} interior at "
                            f"({self.top}, {self.left}, channel {self.channel}) does not fit a "
                            f"{self.height}x{self.width}x{self.pitch} buffer")
        if self.base + self.nbytes(config.elem_bytes) > config.mem_bytes:
            raise GemmError(f"{name}: the buffer ends past the engine's {config.mem_bytes}-byte "
                            f"memory window")

    def _offsets(self, elem_bytes, rows, cols):
        r = np.arange(rows)[:, None, None]
        c = np.arange(cols)[None, :, None]
        ch = np.arange(self.channels)[None, None, :]
        first = self.addr(0, 0, 0, elem_bytes)
        return first + ((r * self.width + c) * self.pitch + ch) * elem_bytes

    def write(self, memory, values, elem_bytes=1, border=0):
        """Write the tensor's channels of every buffer pixel: ``values`` (``h x w x channels``)
        in the interior, ``border`` (the consumer's input zero point) around it."""
        full = np.full((self.height, self.width, self.channels), border, np.int64)
        full[self.top:self.top + self.h, self.left:self.left + self.w] = values
        raw = np.frombuffer(_element_bytes(full, elem_bytes), np.uint8)
        at = self._offsets(elem_bytes, self.height, self.width)
        for i in range(elem_bytes):
            memory[(at + i).ravel()] = raw[i::elem_bytes]

    def interior_addresses(self, elem_bytes=1):
        """Byte addresses of every interior element (all of their bytes), flat."""
        at = self._offsets(elem_bytes, self.h, self.w) + (
            (self.top * self.width + self.left) * self.pitch * elem_bytes)
        return (at[..., None] + np.arange(elem_bytes)).ravel()

    def read(self, memory, elem_bytes=1, signed=True):
        """The interior as an ``h x w x channels`` integer array."""
        raw = np.asarray(memory)[self.interior_addresses(elem_bytes)].astype(np.int64)
        raw = raw.reshape(-1, elem_bytes)
        values = sum(raw[:, i] << (8 * i) for i in range(elem_bytes))
        bits = 8 * elem_bytes
        if signed:
            values = np.where(values >> (bits - 1), values - (1 << bits), values)
        return values.reshape(self.h, self.w, self.channels)


@dataclass
class ConvSpec:
    """A quantised convolution: ``requantize(sum (x - in_zero) * (w - weight_zero) + bias)``.

    ``weights`` are ``(KH, KW, C_in / groups, C_out)``; ``pad`` is one number, ``(pad_h,
    pad_w)`` or ``(top, left, bottom, right)``; ``stride`` and ``dilation`` one number or a
    pair. ``groups == C_in == C_out`` is a depthwise convolution.
    """
    weights: object
    bias: object = None
    requant: Requant = field(default_factory=Requant)
    stride: object = 1
    pad: object = 0
    dilation: object = 1
    groups: int = 1
    in_zero: int = 0
    weight_zero: int = 0
    in_signed: bool = True
    weight_signed: bool = True

    def __post_init__(self):
        self.weights = np.asarray(self.weights, np.int64)
        if self.weights.ndim != 4 or min(self.weights.shape) < 1:
            raise GemmError(f"weights must be (KH, KW, C_in / groups, C_out), not "
                            f"{self.weights.shape}")
        try:
            self.pads = pads_of(self.pad)
            self.strides, self.dilations = _pair(self.stride), _pair(self.dilation)
        except (TypeError, ValueError) as e:
            raise GemmError(f"bad stride, padding or dilation: {e}") from None
        if len(self.strides) != 2 or len(self.dilations) != 2 or \
                min(self.strides + self.dilations) < 1:
            raise GemmError(f"stride {self.stride} and dilation {self.dilation} must be one or "
                            f"two numbers of at least 1")
        cout = self.weights.shape[3]
        if not isinstance(self.groups, (int, np.integer)) or self.groups < 1 \
                or cout % self.groups:
            raise GemmError(f"{cout} output channels do not split into {self.groups} groups")
        if self.bias is not None:
            self.bias = np.asarray(self.bias, np.int64)
            if self.bias.shape != (cout,):
                raise GemmError(f"bias must have {cout} values, not shape {self.bias.shape}")

    @property
    def cin(self):
        return self.weights.shape[2] * self.groups

    @property
    def cout(self):
        return self.weights.shape[3]

    def out_size(self, h, w):
        """Output ``(height, width)`` for an ``h`` x ``w`` input (0 where the kernel does not
        fit the padded input)."""
        kh, kw = self.weights.shape[:2]
        (sh, sw), (dh, dw) = self.strides, self.dilations
        top, left, bottom, right = self.pads
        return (window_count(h, kh, sh, top, dh, bottom),
                window_count(w, kw, sw, left, dw, right))

    def macs(self, h, w):
        """Useful multiply-accumulates for an ``h`` x ``w`` input."""
        oh, ow = self.out_size(h, w)
        kh, kw, cin_g, cout = self.weights.shape
        return oh * ow * cout * kh * kw * cin_g


@dataclass
class ConvProgram:
    """The commands of one convolution (no FENCE) and the constants they read."""
    commands: list
    images: list                    # (byte address, bytes)
    macs: int                       # useful multiply-accumulates
    mapping: str = ""               # how the channels met the array, for reports


# -- The mapping: which channels share an array pass, which inputs a chunk holds ------------------

@dataclass
class _Chunk:
    """Up to ``rows`` consecutive input elements of one kernel row ``ky``, ``offset`` elements
    after the window row's first element; ``taps`` are their ``(kx, channel in the unit)``."""
    ky: int
    offset: int
    taps: list


@dataclass
class _Unit:
    """Consecutive groups computed together: input channels ``ci0 ..`` (``nci``), output
    channels ``co0 ..`` (``nco``); ``pairs[t]`` are the chunks output tile ``t`` needs."""
    ci0: int
    nci: int
    co0: int
    nco: int
    chunks: list
    pairs: list
    b_rows: dict = field(default_factory=dict)    # (t, j) -> row of the weights image
    qp_tile: list = field(default_factory=list)   # t -> tile of the QP table


def auto_pack(spec, config):
    """Groups one array pass takes: as many as fit both the rows (their input channels) and
    the columns (their output channels), so a depthwise convolution fills a diagonal."""
    cin_g, cout_g = spec.weights.shape[2], spec.weights.shape[3] // spec.groups
    if spec.groups == 1:
        return 1
    return max(1, min(spec.groups, config.rows // cin_g, config.cols // cout_g))


class _Plan:
    def __init__(self, spec, config, in_pitch, pack, padded=True, in_width=None):
        self.spec, self.config = spec, config
        R, C = config.rows, config.cols
        kh, kw, cin_g, cout = spec.weights.shape
        cout_g = cout // spec.groups
        in_pitch = spec.cin if in_pitch is None else in_pitch
        self.pack = pack = auto_pack(spec, config) if pack is None else pack
        if not isinstance(pack, (int, np.integer)) or pack < 1:
            raise GemmError(f"pack must be a number of groups of at least 1, not {pack!r}")
        dw = spec.dilations[1]
        # Without the padding in the buffer, a chunk must stay within one kernel column, so
        # that a pixel's chunk is wholly inside the tensor or wholly padding.
        self.pad_row = not padded and any(spec.pads)
        self.pad_bytes = self.pad_rows = 0
        if self.pad_row:
            # Room for the longest padded run at the runs' stride: a run is at most one output
            # row and 255 pixels.
            if in_width is None:
                raise GemmError("a convolution padded from a zero-point row needs the input's "
                                "width")
            top, left, bottom, right = spec.pads
            ow = window_count(in_width, kw, spec.strides[1], left, dw, right)
            stride = spec.strides[1] * in_pitch
            self.pad_rows = min(255, max(ow, 1))
            self.pad_bytes = ((self.pad_rows - 1) * stride + R) * config.elem_bytes
        self.units, b_row, qp_tile = [], 0, 0
        for g0 in range(0, spec.groups, pack):
            g = min(pack, spec.groups - g0)
            u = _Unit(g0 * cin_g, g * cin_g, g0 * cout_g, g * cout_g, [], [])
            # A kernel row is one run when the unit takes every channel of each pixel.
            merged = u.nci == in_pitch and dw == 1 and not self.pad_row
            for ky in range(kh):
                runs = ([(0, [(kx, ci) for kx in range(kw) for ci in range(u.nci)])] if merged
                        else [(kx * dw * in_pitch, [(kx, ci) for ci in range(u.nci)])
                              for kx in range(kw)])
                for offset, taps in runs:
                    for s in range(0, len(taps), R):
                        u.chunks.append(_Chunk(ky, offset + s, taps[s:s + R]))
            for t in range(_ceil(u.nco, C)):
                groups_out = {(u.co0 + t * C + n) // cout_g for n in range(min(C, u.nco - t * C))}
                needed = [j for j, ch in enumerate(u.chunks)
                          if {(u.ci0 + ci) // cin_g for _, ci in ch.taps} & groups_out]
                u.pairs.append(needed)
                for j in needed:
                    u.b_rows[t, j] = b_row
                    b_row += len(u.chunks[j].taps)
                u.qp_tile.append(qp_tile)
                qp_tile += 1
            self.units.append(u)
        self.b_total, self.qp_tiles = b_row, qp_tile
        self.pool_taps = shared_taps(spec, config, self.pad_row)
        self.mapping = (f"{len(self.units)} pass(es) of {pack} group(s), "
                        f"{sum(len(u.chunks) for u in self.units)} chunks")

    def sizes(self):
        c = self.config
        pool = 0 if self.pool_taps is None else len(pool_block_image(self)) // c.elem_bytes
        return {"weights": (self.b_total * c.cols + pool) * c.elem_bytes,
                "qp": self.qp_tiles * QP_ROWS * c.cols * 4,
                "pad": self.pad_bytes}

    def pad_image(self):
        """The zero-point row padded taps load (empty when the buffer holds the padding)."""
        if not self.pad_row:
            return b""
        eb = self.config.elem_bytes
        return _element_bytes(np.full(self.pad_bytes // eb, self.spec.in_zero), eb)

    def weights_image(self):
        """The weight tiles, each ``k_valid`` rows of ``cols`` elements, in the order the
        program loads them; entries outside a tile's groups hold the weight zero point."""
        spec, C = self.spec, self.config.cols
        w = spec.weights
        cin_g, cout_g = w.shape[2], w.shape[3] // spec.groups
        image = np.full((self.b_total, C), spec.weight_zero, np.int64)
        for u in self.units:
            for t, needed in enumerate(u.pairs):
                co = u.co0 + t * C + np.arange(min(C, u.nco - t * C))
                for j in needed:
                    ch = u.chunks[j]
                    kx = np.array([k for k, _ in ch.taps])
                    ci = u.ci0 + np.array([c for _, c in ch.taps])
                    same = (ci // cin_g)[:, None] == (co // cout_g)[None, :]
                    values = w[ch.ky, kx[:, None], (ci % cin_g)[:, None], co[None, :]]
                    rows = slice(u.b_rows[t, j], u.b_rows[t, j] + len(ch.taps))
                    image[rows, :len(co)] = np.where(same, values, spec.weight_zero)
        pool = b"" if self.pool_taps is None else pool_block_image(self)
        return _element_bytes(image, self.config.elem_bytes) + pool

    def qp_image(self):
        """Bias and requantisation parameters, ``QP_ROWS`` rows of ``cols`` words a tile, as
        :func:`rvnpu.compiler.gemm.compile_gemm` lays them out."""
        spec, C = self.spec, self.config.cols
        bias = np.zeros(spec.cout, np.int64) if spec.bias is None else spec.bias
        flat = np.zeros((QP_ROWS, spec.cout), np.uint32)
        flat[0] = (bias & 0xffffffff).astype(np.uint32)
        for row, words in spec.requant.param_words(spec.cout).items():
            flat[row] = words
        table = np.zeros((self.qp_tiles, QP_ROWS, C), np.uint32)
        for u in self.units:
            for t, tile in enumerate(u.qp_tile):
                lo = u.co0 + t * C
                hi = min(u.co0 + u.nco, lo + C)
                table[tile, :, :hi - lo] = flat[:, lo:hi]
        return table.astype("<u4").tobytes()


def _check_spec(spec, config):
    c = config
    if not c.with_ws:
        raise GemmError("convolution needs the weight-stationary dataflow; this engine was "
                        "generated without it")
    rq = spec.requant
    if rq.mode not in MODE_NAMES:
        raise GemmError(f"convolution stores requantised outputs: requant mode must be "
                        f"{' or '.join(repr(n) for n in MODE_NAMES)}, not {rq.mode!r}")
    if not c.with_requant_mode(rq.mode):
        raise GemmError(f"this engine was generated without {rq.mode} requantisation "
                        f"(requant_modes={c.requant_modes!r})")
    if not clamp_ok(c.in_width, rq.clamp_min, rq.clamp_max):
        raise GemmError(f"clamp [{rq.clamp_min}, {rq.clamp_max}] does not fit a "
                        f"{c.in_width}-bit output element")
    for name, signed, zero, values in (("input", spec.in_signed, spec.in_zero, None),
                                       ("weight", spec.weight_signed, spec.weight_zero,
                                        spec.weights)):
        lo, hi = element_range(c.in_width, signed)
        kind = f"{'signed' if signed else 'unsigned'} {c.in_width}-bit"
        if not lo <= zero <= hi:
            raise GemmError(f"the {name} zero point {zero} is not a {kind} element")
        if values is not None and (values.min() < lo or values.max() > hi):
            raise GemmError(f"{name}s must be {kind} elements, in [{lo}, {hi}]")


def _plan(spec, config, in_pitch, pack, padded=True, in_width=None):
    _check_spec(spec, config)
    return _Plan(spec, config, in_pitch, pack, padded, in_width)


def conv_constant_sizes(spec, config=EngineConfig(), in_pitch=None, pack=None, padded=True,
                        in_width=None):
    """Bytes of each constant the program reads, ``{"weights": n, "qp": n, "pad": n}``, for
    an input whose pixels are ``in_pitch`` elements apart (default: its channels), ``pack``
    groups an array pass (default :func:`auto_pack`), and whose buffer holds the padding
    (``padded``) or not (then ``pad`` is the size of the zero-point rows, which depends on the
    input's width ``in_width``; else 0)."""
    return _plan(spec, config, in_pitch, pack, padded, in_width).sizes()


def conv_constants(spec, config=EngineConfig(), in_pitch=None, pack=None, padded=True,
                   in_width=None):
    """The bytes of each constant, ``{"weights": bytes, "qp": bytes, "pad": bytes}`` (see
    :func:`conv_constant_sizes`)."""
    plan = _plan(spec, config, in_pitch, pack, padded, in_width)
    return {"weights": plan.weights_image(), "qp": plan.qp_image(), "pad": plan.pad_image()}


def _border_need(spec, x):
    """Border pixels ``(top, left, bottom, right)`` the windows read around ``x``'s interior."""
    kh, kw = spec.weights.shape[:2]
    oh, ow = spec.out_size(x.h, x.w)
    (sh, sw), (dh, dw) = spec.strides, spec.dilations
    top, left, _, _ = spec.pads
    return (top, left, (oh - 1) * sh + (kh - 1) * dh - top - (x.h - 1),
            (ow - 1) * sw + (kw - 1) * dw - left - (x.w - 1))


def holds_padding(spec, x):
    """Whether ``x``'s buffer has all the border the convolution's windows read."""
    return all(n <= have for n, have in zip(_border_need(spec, x), x.border))


def _check_maps(spec, x, y, config, padded=True, pool=None):
    x.check("input", config)
    y.check("output", config)
    kh, kw = spec.weights.shape[:2]
    if x.channels != spec.cin or y.channels != spec.cout:
        raise GemmError(f"the weights take {spec.cin} input and give {spec.cout} output "
                        f"channels; the maps have {x.channels} and {y.channels}")
    oh, ow = spec.out_size(x.h, x.w)
    if not oh or not ow:
        raise GemmError(f"a {kh}x{kw} kernel (dilation {spec.dilations}) does not fit the "
                        f"{x.h}x{x.w} input padded by {spec.pads}")
    if pool is not None:
        ph, pw = pool
        if not oh // ph or not ow // pw:
            raise GemmError(f"a {ph}x{pw} max-pool does not fit the {oh}x{ow} convolution "
                            f"output")
        oh, ow = oh // ph, ow // pw
    if (y.h, y.w) != (oh, ow):
        raise GemmError(f"the output map is {y.h}x{y.w}, the convolution gives {oh}x{ow}")
    if not padded:
        return
    # The rows and columns of the buffer the windows read, against what it holds.
    for side, n, have in zip(("above", "left of", "below", "right of"), _border_need(spec, x),
                             x.border):
        if n > have:
            raise GemmError(f"the input buffer has {have} border pixel(s) {side} the interior; "
                            f"the padding needs {n}")


def compile_conv(spec, x, y, *, weights_addr, qp_addr, pad_addr=None, config=EngineConfig(),
                 pack=None, pool=None, add=None):
    """The :class:`ConvProgram` computing ``spec`` from input map ``x`` into the interior of
    output map ``y``, reading the constants of :func:`conv_constants` at ``weights_addr``,
    ``qp_addr`` and ``pad_addr``.

    With ``pool = (kh, kw)`` a max-pool of that window and stride, without padding, follows
    the convolution and is fused into its stores (STORE_POOL): ``y`` is the pooled map, and
    the convolution's output is never written. Raises :class:`GemmError` if the schedule
    cannot hold the pool's windows or the engine was built without STORE_POOL (the caller then
    pools separately).

    With ``add`` (a :class:`SkipAdd`) a QLinearAdd of the convolution's output and the skip
    tensor ``add.skip`` follows in the stores (STORE_ADD): ``y`` is the Add's output, and the
    convolution's output is never written. The skip tensor must lie as ``y`` does (the same
    buffer width and pitch) and not overlap it unless it is ``y`` itself. Raises
    :class:`GemmError` where it cannot be fused, with ``pool``, or on an engine without
    STORE_ADD (the caller then adds separately).

    Without ``pad_addr`` the input buffer's border must hold the padding (the input zero point);
    with it, padded taps read the zero-point row there instead (build the constants with
    ``padded=False``). Raises :class:`GemmError` with a one-line reason when the convolution
    cannot be mapped.
    """
    c = config
    if pool is not None and not c.store_pool:
        raise GemmError("the engine was built without STORE_POOL (store_pool=0): the max-pool "
                        "runs separately")
    if add is not None and pool is not None:
        raise GemmError("a max-pool and an Add cannot both be fused into the stores")
    if add is not None and not c.with_store_add:
        raise GemmError("the engine was built without STORE_ADD (store_add=0, or not 8-bit "
                        "with requantisation): the Add runs separately")
    padded = pad_addr is None
    plan = _plan(spec, c, x.pitch, pack, padded, x.w)
    _check_maps(spec, x, y, c, padded, pool)
    add_config = None if add is None else skip_add_commands(
        add, skip_offset(add, x, y, spec, c))
    sizes = plan.sizes()
    for name, addr in (("weights", weights_addr), ("qp", qp_addr), ("pad", pad_addr)):
        if addr is None:
            continue
        if addr < 0 or addr + sizes[name] > c.mem_bytes:
            raise GemmError(f"the {name} constant ({sizes[name]} bytes at {addr}) does not fit "
                            f"the engine's {c.mem_bytes}-byte memory window")
    images = [(weights_addr, plan.weights_image()), (qp_addr, plan.qp_image())]
    if plan.pad_row:
        images.append((pad_addr, plan.pad_image()))
    program = ConvProgram([], images, spec.macs(x.h, x.w), plan.mapping)
    schedule = _Schedule(plan, x, y, weights_addr, qp_addr, program.commands, pad_addr, pool,
                         add_config)
    if pool is None and pool_applies(plan, schedule.oh * schedule.ow):
        # Few pixels of many taps shared by every channel: the taps run through the array.
        schedule = OsPoolSchedule(schedule)
        program.mapping += ", output-stationary over the taps"
    elif pool is None and os_applies(plan, schedule.oh * schedule.ow):
        # A row or a few of A: streaming the weights past resident outputs is bus-bound.
        schedule = OsSchedule(schedule)
        program.mapping += ", output-stationary"
    elif schedule.strip_rows:
        program.mapping += f", input strips of {schedule.strip_rows} output row(s)"
    if pool is not None:
        program.mapping += f", {pool[0]}x{pool[1]} max-pool fused into the stores"
    if add is not None:
        program.mapping += ", Add fused into the stores"
    schedule.run()
    return program


class _Schedule:
    """The weight-stationary schedule (see :func:`rvnpu.compiler.gemm._ws_schedule`): for
    each unit and each block of ``mb`` output pixels, every output tile accumulates its chunks
    in one half of the accumulators while the other half is stored."""

    def __init__(self, plan, x, y, weights_addr, qp_addr, commands, pad_addr=None,
                 pool=None, add_config=None):
        self.plan, self.x, self.y = plan, x, y
        self.pad_addr = pad_addr
        self.c = c = plan.config
        self.weights_addr, self.qp_addr, self.commands = weights_addr, qp_addr, commands
        self.oh, self.ow = plan.spec.out_size(x.h, x.w)
        self.pool = pool
        # A fused Add's CONFIG_STORE_ADD / CONFIG_STORE_SKIP; its stores are STORE_ADDs.
        self.add_config = add_config
        if pool is not None:
            # Conv rows below the last whole window row are never pooled: not computed.
            self.oh -= self.oh % pool[0]
        self.load_stride = None
        self.store_config = None
        self.pool_config = None
        self.pending = None
        M = self.oh * self.ow
        half = c.spad_depth // 2
        nch = max(len(u.chunks) for u in plan.units)
        tiles = max(len(u.pairs) for u in plan.units)
        limit = min(M, 1023, c.acc_depth // 2)
        # A block's chunks stay in SPAD_A for all its output tiles (double-buffered) when
        # they fit; otherwise each chunk streams through rotating slots before each use.
        resident_mb = min(limit, half // nch)
        stream_mb = min(limit, c.spad_depth // 4)
        self.a_resident = resident_mb >= stream_mb or (
            tiles > 1 and resident_mb >= min(M, 2 * c.rows))
        self.mb = resident_mb if self.a_resident else stream_mb
        self.b_resident = plan.b_total <= c.spad_depth
        self.qp_resident = plan.qp_tiles * QP_ROWS <= min(c.qp_depth, 255)
        self.strip_rows = self._strip_rows(plan, half, limit)
        if pool is not None:
            self._whole_window_rows(pool[0])
        if self.strip_rows:
            self.a_resident, self.mb = True, self.strip_rows * self.ow

    def _whole_window_rows(self, ph):
        """A fused max-pool's blocks hold whole windows: their pixels are whole bands of
        ``ph`` output rows, so a window's taps are ACC rows of the block's tile."""
        window = {"kernel_h": ph, "kernel_w": self.pool[1], "step": self.pool[1],
                  "pitch": self.ow}
        for name, value in window.items():
            if value > field_of(Funct.CONFIG_STORE_POOL, name).hi:
                raise GemmError(f"CONFIG_STORE_POOL cannot take {name} {value}: the max-pool "
                                f"is not fused")
        self.strip_rows -= self.strip_rows % ph
        band = ph * self.ow
        self.mb -= self.mb % band
        if not self.mb and not self.strip_rows:
            raise GemmError(f"a band of {band} output pixels does not fit half the "
                            f"accumulators or the scratchpad: the max-pool is not fused")

    def _strip_rows(self, plan, half, limit):
        """Output rows a block takes when its A chunks come from *strips*, else 0.

        Kernel row ``ky`` of output row ``oy`` reads input row ``oy * sh + ky * dh``: the
        row kernel row ``ky0`` of output row ``oy + (ky - ky0) * dh / sh`` reads, when that is
        whole. So the kernel rows fall into groups (``ky * dh`` modulo ``sh``; one group at
        stride 1), and a block of whole output rows loads, for each chunk of a group's first
        kernel row, one strip of the input rows the group reads; chunk ``(ky, ..)`` is a strip
        some output rows on. Each input row so crosses the bus once a block instead of once a
        kernel row. Used when a group has several kernel rows and the blocks are at least
        half as long as the chunk-by-chunk schedule's."""
        spec = plan.spec
        kh, sh, dh = spec.weights.shape[0], spec.strides[0], spec.dilations[0]
        groups = {}
        for ky in range(kh):
            groups.setdefault(ky * dh % sh, []).append(ky)
        # (first kernel row, output rows its last kernel row reaches below it) a group.
        self.strip_groups = [(kys[0], (kys[-1] - kys[0]) * dh // sh) for kys in groups.values()]
        if len(groups) == kh or any(len(u.chunks) % kh for u in plan.units):
            return 0
        per_row = max(len(u.chunks) // kh for u in plan.units) * self.ow
        spans = sum(span for _, span in self.strip_groups)
        rows = min(self.oh, limit // self.ow, (half // per_row - spans) // len(groups))
        if rows < 1 or 2 * rows * self.ow < min(self.oh * self.ow, self.mb):
            return 0
        return rows

    def cmd(self, funct, **fields):
        self.commands.append(encode(funct, **fields))

    def config_load(self, stride):
        if stride != self.load_stride:
            self.cmd(Funct.CONFIG_LOAD, stride=stride)
            self.load_stride = stride

    def load(self, dram, space, row, rows, cols, stride):
        """LOAD in pieces of at most 255 rows."""
        self.config_load(stride)
        for done in range(0, rows, 255):
            self.cmd(Funct.LOAD, dram_addr=dram + done * stride, local_row=row + done,
                     space=space, rows=min(255, rows - done), cols=cols)

    def runs(self, m0, rows, across=False):
        """``(first pixel's index in the block, oy, ox, count)`` of each run of output
        pixels within pixels ``m0 .. m0 + rows - 1``: along one output row, or ``across``
        rows when the addresses of consecutive pixels stay evenly spaced from one row into
        the next (so a run is one strided LOAD or STORE of up to 255 rows)."""
        m, end = m0, m0 + rows
        while m < end:
            oy, ox = divmod(m, self.ow)
            n = min(end - m, 255 if across else self.ow - ox, 255)
            yield m - m0, oy, ox, n
            m += n

    def load_a(self, unit, chunk, m0, rows, a_row):
        spec, x, eb = self.plan.spec, self.x, self.c.elem_bytes
        (sh, sw), (dh, dw) = spec.strides, spec.dilations
        top, left, _, _ = spec.pads
        k = len(chunk.taps)
        pieces = []
        # Output row oy + 1 starts sh input rows below row oy, whose last pixel is
        # (ow - 1) * sw columns on: evenly spaced when sh rows are ow * sw pixels.
        across = not self.plan.pad_row and sh * x.width == self.ow * sw
        for i, oy, ox, n in self.runs(m0, rows, across):
            by = x.top - top + oy * sh + chunk.ky * dh
            bx = x.left - left + ox * sw
            if not self.plan.pad_row:
                dram = x.addr(by, bx, unit.ci0, eb) + chunk.offset * eb
                self.load(dram, Space.SPAD_A, a_row + i, n, k, sw * x.pitch * eb)
                continue
            # The chunk lies in kernel column kx: pixels whose tap falls outside the buffer
            # read the zero-point row, the rest one strided run.
            kx = chunk.taps[0][0]
            first = bx + kx * dw                 # buffer column of pixel 0's tap
            lo = min(n, max(0, -(first // sw)))  # the first pixel whose tap is inside
            hi = min(n, max(lo, (x.width - 1 - first) // sw + 1))
            if not 0 <= by < x.height:
                lo = hi = n
            for start, end in ((0, lo), (hi, n)):
                if end > start:
                    pieces.append((None, a_row + i + start, end - start))
            if hi > lo:
                dram = x.addr(by, bx + lo * sw, unit.ci0, eb) + chunk.offset * eb
                pieces.append((dram, a_row + i + lo, hi - lo))
        stride = sw * x.pitch * eb
        for dram, row, n in self._joined(sorted(pieces, key=lambda piece: piece[1]), stride):
            self.load(self.pad_addr if dram is None else dram, Space.SPAD_A, row, n, k, stride)

    def _joined(self, pieces, stride):
        """Consecutive pieces ``(dram or None for zero-point rows, local row, count)`` joined
        into one LOAD where they continue each other: zero-point rows as far as the constant
        reaches, input pixels where the next piece's address is the next stride on (so rows
        evenly spaced in memory become one run)."""
        reach = self.plan.pad_rows
        out = []
        for dram, row, n in pieces:
            if out:
                d0, r0, n0 = out[-1]
                if r0 + n0 == row and (
                        (dram is None and d0 is None and n0 + n <= reach) or
                        (dram is not None and d0 is not None and d0 + n0 * stride == dram)):
                    out[-1] = (d0, r0, n0 + n)
                    continue
            out.append((dram, row, n))
        return out

    def strip_chunk(self, unit, j, m0, rows, a_base, loaded):
        """SPAD_A row of chunk ``j`` of the block at ``m0`` (``rows`` pixels, whole output
        rows) in strip mode, loading its strip first if no chunk has needed it yet."""
        spec = self.plan.spec
        kh, sh, dh = spec.weights.shape[0], spec.strides[0], spec.dilations[0]
        per_ky = len(unit.chunks) // kh
        ky, column = divmod(j, per_ky)
        lengths = [rows + span * self.ow for _, span in self.strip_groups]
        strip = a_base + column * sum(lengths)
        for (ky0, _), length in zip(self.strip_groups, lengths):
            if ky0 * dh % sh == ky * dh % sh:
                break
            strip += length
        if (ky0, column) not in loaded:
            self.load_a(unit, unit.chunks[ky0 * per_ky + column], m0, length, strip)
            loaded.add((ky0, column))
        return strip + (ky - ky0) * dh // sh * self.ow

    def load_b(self, b_row, local_row, rows):
        C, eb = self.c.cols, self.c.elem_bytes
        self.load(self.weights_addr + b_row * C * eb, Space.SPAD_B, local_row, rows, C, C * eb)

    def qp_row(self, tile):
        if self.qp_resident:
            return tile * QP_ROWS
        row = (tile % (self.c.qp_depth // QP_ROWS)) * QP_ROWS
        self.load(self.qp_addr + tile * QP_ROWS * self.c.cols * 4, Space.QP, row, QP_ROWS,
                  self.c.cols, self.c.cols * 4)
        return row

    def emit_store(self, unit, t, acc_base, m0, rows):
        y, C, eb = self.y, self.c.cols, self.c.elem_bytes
        qp_row = self.qp_row(unit.qp_tile[t])
        if self.store_config != (y.pitch * eb, qp_row):
            self.store_config = (y.pitch * eb, qp_row)
            self.cmd(Funct.CONFIG_STORE, stride=y.pitch * eb, qp_row=qp_row)
        cols = min(C, unit.nco - t * C)
        if self.pool is not None:
            self.emit_pooled_store(unit, t, acc_base, m0, rows, cols)
            return
        store = Funct.STORE if self.add_config is None else Funct.STORE_ADD
        for i, oy, ox, n in self.runs(m0, rows, across=y.width == y.w):
            self.cmd(store, dram_addr=y.addr(y.top + oy, y.left + ox, unit.co0 + t * C, eb),
                     acc_row=acc_base + i, rows=n, cols=cols)

    def emit_pooled_store(self, unit, t, acc_base, m0, rows, cols):
        """The tile's pooled output rows: one STORE_POOL a band of ``ph`` conv output rows
        (the block holds whole bands), its windows ``pw`` ACC rows apart."""
        y, eb, ow = self.y, self.c.elem_bytes, self.ow
        ph, pw = self.pool
        if self.pool_config is None:
            self.pool_config = True
            self.cmd(Funct.CONFIG_STORE_POOL, kernel_h=ph, kernel_w=pw, step=pw, pitch=ow)
        for band in range(rows // (ph * ow)):
            py = m0 // (ph * ow) + band
            for px in range(0, y.w, 255):
                self.cmd(Funct.STORE_POOL,
                         dram_addr=y.addr(y.top + py, y.left + px, unit.co0 + t * self.c.cols, eb),
                         acc_row=acc_base + band * ph * ow + px * pw,
                         rows=min(255, y.w - px), cols=cols)

    def store(self, *tile):
        """Store a tile once the next tile's computes are queued, as the GEMM schedule does."""
        self.flush()
        self.pending = tile

    def flush(self):
        if self.pending is not None:
            self.emit_store(*self.pending)
            self.pending = None

    def configure(self, dataflow, swap=False):
        """The layer's CONFIG_EXEC (A the inputs and B the weights, or the other way round
        with ``swap``), its CONFIG_REQUANT, and the requantisation table when it fits."""
        c, plan, spec = self.c, self.plan, self.plan.spec
        rq = spec.requant
        a = (spec.in_signed, spec.in_zero)
        b = (spec.weight_signed, spec.weight_zero)
        if swap:
            a, b = b, a
        self.cmd(Funct.CONFIG_EXEC, dataflow=dataflow, a_signed=int(a[0]), b_signed=int(b[0]),
                 a_zero=a[1], b_zero=b[1])
        self.cmd(Funct.CONFIG_REQUANT, out_zero=rq.out_zero, mode=mode_named(rq.mode).code,
                 clamp_min=rq.clamp_min, clamp_max=rq.clamp_max)
        self.commands += self.add_config or []
        if self.qp_resident:
            self.load(self.qp_addr, Space.QP, 0, plan.qp_tiles * QP_ROWS, c.cols, c.cols * 4)

    def run(self):
        c, plan = self.c, self.plan
        R, mb = c.rows, self.mb
        self.configure(Dataflow.WS)
        M = self.oh * self.ow
        b_loaded, block, tile_count, a_next, b_next = set(), 0, 0, 0, 0
        a_slots = c.spad_depth // mb
        b_slots = c.spad_depth // R
        for unit in plan.units:
            nch = len(unit.chunks)
            for m0 in range(0, M, mb):
                rows = min(mb, M - m0)
                a_base = (block % 2) * (c.spad_depth // 2 if self.strip_rows else nch * mb)
                block += 1
                a_loaded = set()
                for t, needed in enumerate(unit.pairs):
                    acc_base = (tile_count % 2) * mb
                    tile_count += 1
                    if self.b_resident and (unit.co0, t) not in b_loaded and needed:
                        # A tile's weights, loaded once just before first use, stay put.
                        first = unit.b_rows[t, needed[0]]
                        last = unit.b_rows[t, needed[-1]] + len(unit.chunks[needed[-1]].taps)
                        self.load_b(first, first, last - first)
                        b_loaded.add((unit.co0, t))
                    for step, j in enumerate(needed):
                        chunk = unit.chunks[j]
                        k = len(chunk.taps)
                        if self.strip_rows:
                            a_row = self.strip_chunk(unit, j, m0, rows, a_base, a_loaded)
                        elif self.a_resident:
                            a_row = a_base + j * mb
                            if j not in a_loaded:
                                # Just before first use: the load unit runs in order.
                                self.load_a(unit, chunk, m0, rows, a_row)
                                a_loaded.add(j)
                        else:
                            a_row = (a_next % a_slots) * mb
                            a_next += 1
                            self.load_a(unit, chunk, m0, rows, a_row)
                        if self.b_resident:
                            b_row = unit.b_rows[t, j]
                        else:
                            b_row = (b_next % b_slots) * R
                            b_next += 1
                            self.load_b(unit.b_rows[t, j], b_row, k)
                        self.cmd(Funct.COMPUTE, a_row=a_row, b_row=b_row, c_row=acc_base,
                                 steps=rows, k_valid=k, accumulate=int(step > 0))
                    self.store(unit, t, acc_base, m0, rows)
        self.flush()


def run_conv_on_model(program, x, values, spec, y, config=EngineConfig(), model=None):
    """Run a compiled convolution on the golden model: write its constants and the input
    ``values`` into ``x`` (border = the input zero point), run, and return ``(output,
    model)``, the output read from ``y``'s interior."""
    model = model or EngineModel(config)
    eb = config.elem_bytes
    x.write(model.memory, values, eb, border=spec.in_zero)
    for addr, data in program.images:
        model.memory[addr:addr + len(data)] = np.frombuffer(data, np.uint8)
    model.run(program.commands)
    return y.read(model.memory, eb, signed=spec.requant.clamp_min < 0), model
