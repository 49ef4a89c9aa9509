"""Where each tensor and workspace of a compiled model lives in the RAM.

Weights and requantisation constants are read-only data of the firmware image. Activations
and the layers' workspaces (the GEMM's requantisation table, the convolution's patch matrix)
share one arena: each buffer is live from the layer that writes it (or the layer before, whose
stores may write it: a max-pool or an Add fused into a convolution) to the last layer that
reads it, and buffers whose lifetimes overlap never share bytes. Buffers are placed largest
first at the lowest offset that fits (a greedy first fit, as TFLite Micro's planner does).
"""

from dataclasses import dataclass, field

import numpy as np


__all__ = ["MemoryPlan", "plan_memory", "workspace_bytes", "ALIGN"]

#: Every buffer starts on a 64-byte boundary, the engine's widest burst.
ALIGN = 64


def _up(n, a=ALIGN):
    return -(-n // a) * a


@dataclass
class MemoryPlan:
    """Offsets into the arena of each stored tensor and of each layer's workspace."""
    offsets: dict = field(default_factory=dict)       # tensor name -> arena offset
    workspaces: dict = field(default_factory=dict)    # layer index -> (offset, bytes)
    arena_bytes: int = 0
    weight_bytes: int = 0
    lifetimes: dict = field(default_factory=dict)     # buffer -> (first, last) layer index


def workspace_bytes(layer, model, engine):
    """Bytes of arena workspace ``layer`` needs (a convolution's patch matrix): the layer
    kind's own :meth:`~rvnpu.compiler.onnx.layers.Layer.workspace_bytes`."""
    return layer.workspace_bytes(model, engine)


def plan_memory(model, engine):
    """A :class:`MemoryPlan` for ``model`` on an engine configuration."""
    last = len(model.layers)
    live = {}                                   # buffer -> [first, last, bytes]

    def touch(name, index):
        name = model.storage(name)
        t = model.tensors[name]
        span = live.setdefault(name, [index, index, t.nbytes])
        span[0], span[1] = min(span[0], index), max(span[1], index)

    touch(model.chip_input, -1)
    for i, layer in enumerate(model.layers):
        for name in layer.inputs:
            touch(name, i)
        touch(layer.output, i)
    touch(model.chip_output, last)
    from rvnpu.compiler.onnx.engine_lists import fused_after     # it imports ALIGN from here
    for i in range(len(model.layers)):
        fused = fused_after(model, i)
        if fused is not None:
            # Written by layer i's stores if the fusion compiles: apart from what i reads.
            touch(fused.output, i)
    for i, layer in enumerate(model.layers):
        size = workspace_bytes(layer, model, engine)
        if size:
            live[("workspace", i)] = [i, i, size]

    placed = []                                  # (offset, end, first, last)
    offsets = {}
    order = sorted(live.items(), key=lambda kv: (-kv[1][2], str(kv[0])))
    for key, (first, end_index, size) in order:
        offset = 0
        for o, e, f, l in sorted(placed):
            if l < first or f > end_index:       # lifetimes do not overlap
                continue
            if offset + size <= o:
                break
            offset = max(offset, _up(e))
        placed.append((offset, offset + size, first, end_index))
        offsets[key] = offset
    plan = MemoryPlan(arena_bytes=_up(max((e for _, e, _, _ in placed), default=0)))
    for key, offset in offsets.items():
        if isinstance(key, tuple):
            plan.workspaces[key[1]] = (offset, live[key][2])
        else:
            plan.offsets[key] = offset
        plan.lifetimes[key] = tuple(live[key][:2])
    for layer in model.layers:
        for array in (getattr(layer, "weights", None), getattr(layer, "bias", None)):
            if array is not None:
                plan.weight_bytes += _up(np.asarray(array).size * (4 if array is
                                                                   layer.bias else 1))
        if getattr(layer, "scale", None) is not None:
            plan.weight_bytes += _up(layer.scale.size * 4)
    return plan
