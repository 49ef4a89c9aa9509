"""The C program of a compiled model: ``model_data.h`` (weights and requantisation constants)
and ``model.c`` (layer calls into the firmware library, cycle counts, output over the UART).

``model.c`` runs the model on ``rvnpu_model_count`` inputs held in ``rvnpu_model_inputs``;
both are initialised data, so the host can write other inputs into a built image (see
``rvnpu.flows.model``) instead of compiling again. For each input it prints::

    out <n> <output bytes in hex, in storage order>
    cycles <n> <cycles of layer 0> <layer 1> ... <total>
    sleep <n> <cycles of the total the core spent asleep in WFI>
"""

from dataclasses import dataclass

from rvnpu.compiler.onnx.emit import CContext, c_array, c_comment
from rvnpu.compiler.onnx.engine_lists import (AddressSpace, EngineStep, address_operands,
                                              engine_step, fusable_add, fusable_pool,
                                              input_border, post_step)
from rvnpu.compiler.onnx.planner import ALIGN
from rvnpu.spec.commands import LIST_ENTRY_BYTES
from rvnpu.spec.config import EngineConfig


__all__ = ["generate_c", "Program", "input_bytes", "input_storage", "plan_lists"]


@dataclass
class Program:
    """The C of a compiled model, and how the host lays out its input: the chip input's buffer
    has a border of ``input_border`` pixels (top, left, bottom, right) the host fills with the
    input's zero point, so that the first convolution reads its padding from there."""
    model_c: str
    model_data_h: str
    input_border: tuple = (0, 0, 0, 0)
    engine_layers: int = 0
    list_bytes: int = 0         # of the engine command lists


def _engine_steps(model, plan, engine, border):
    """Each layer that runs from a command list: ``{index: EngineStep}`` and the address space
    of their constants."""
    space = AddressSpace()
    arena = space.add("arena", plan.arena_bytes)
    inputs = space.add("rvnpu_model_inputs", input_bytes(model, border))
    chip_input = model.storage(model.chip_input)

    def addr_of(name):
        name = model.storage(name)
        return inputs if name == chip_input else arena + plan.offsets[name]

    steps = {}
    for i, layer in enumerate(model.layers):
        if i in steps:
            continue                    # a max-pool or Add fused into the convolution before it
        reads_input = chip_input in (model.storage(name) for name in layer.inputs)
        layer_border = border if reads_input else (0, 0, 0, 0)
        pool = fusable_pool(model, i)
        add = fusable_add(model, i) if getattr(engine, "with_store_add", False) else None
        step = pool and engine_step(layer, model, engine, space, addr_of, f"l{i}",
                                    layer_border, pool)
        if step:
            # The convolution's stores write the pooled tensor; the pool has nothing left.
            steps[i + 1] = EngineStep([], {}, 0, "max-pool fused into the stores above")
        elif add and (step := engine_step(layer, model, engine, space, addr_of, f"l{i}",
                                          layer_border, add=add)):
            # The stores add the skip tensor and write the sum; the Add has nothing left.
            steps[i + 1] = EngineStep([], {}, 0, "QLinearAdd fused into the stores above")
        else:
            step = engine_step(layer, model, engine, space, addr_of, f"l{i}", layer_border) \
                or post_step(layer, model, engine, space, addr_of, f"l{i}")
        if step is not None:
            steps[i] = step
    return steps, space


def input_bytes(model, border=(0, 0, 0, 0)):
    """Bytes of the chip input as the host writes it (with its border)."""
    t = model.tensors[model.chip_input]
    if len(t.shape) != 4:
        return t.nbytes
    _, ch, h, w = t.shape
    top, left, bottom, right = border
    return (h + top + bottom) * (w + left + right) * ch * t.nbytes // t.size


def plan_lists(model, plan, engine):
    """``(steps, space, border)``: the layers that run from command lists, the virtual layout
    of what they read, and the chip input's border."""
    border = input_border(model)
    steps, space = _engine_steps(model, plan, engine, border)
    chip_input = model.storage(model.chip_input)
    readers = [i for i, layer in enumerate(model.layers)
               if chip_input in (model.storage(name) for name in layer.inputs)]
    if any(border) and not all(i in steps for i in readers):
        # A reader on the firmware's path wants the input without a border.
        border = (0, 0, 0, 0)
        steps, space = _engine_steps(model, plan, engine, border)
    return steps, space, border


def input_storage(model, q, border=(0, 0, 0, 0)):
    """The quantised input ``q`` as the host writes it for the chip (rank 4: NHWC, inside a
    border of the zero point): ``input_bytes(model, border)`` bytes."""
    import numpy as np

    t = model.tensors[model.chip_input]
    q = np.asarray(q).reshape(t.shape)
    if q.ndim == 4:
        top, left, bottom, right = border
        q = np.pad(q.transpose(0, 2, 3, 1), ((0, 0), (top, bottom), (left, right), (0, 0)),
                   constant_values=t.zero)
    return q.astype(t.dtype).tobytes()


def generate_c(model, plan, batch=1, engine=None):
    """The :class:`Program` of a compiled model.

    Convolutions and GEMMs run from command lists the compiler writes whole (see
    :mod:`.engine_lists`); consecutive ones share a list, which the core starts with one
    command and sleeps through. The other layers write their own C (``emit_c`` of their kind
    in :mod:`rvnpu.compiler.onnx.layers`); this adds the checks and cycle counts between layers
    and the program around them. The cycles of a list are counted on its last layer.
    """
    engine = engine or EngineConfig()
    steps, space, border = plan_lists(model, plan, engine)
    c = CContext(model, plan, engine, data=[
        "/* Generated by rvnpu compile: weights and requantisation constants. */",
        "#include <stdint.h>", ""])
    lists = []
    for i, layer in enumerate(model.layers):
        c.index = i
        c.code.append(f"    /* layer {i}: {c_comment(layer.op)} '{c_comment(layer.name)}' */")
        if i in steps:
            if not lists or lists[-1][-1] != i - 1:
                lists.append([])
            lists[-1].append(i)
            for symbol, data in steps[i].constants.items():
                c.data.append(c_array("uint8_t", symbol, (str(b) for b in data)))
            if i + 1 in steps:
                c.code.append("    /* runs in the list that ends with the next layer */\n"
                              "    result = RVNPU_GEMM_OK;")
            else:
                c.code.append(_run_list(c, len(lists) - 1, lists[-1], steps, space))
        else:
            layer.emit_c(c)
        c.code.append(f"    if (result != RVNPU_GEMM_OK || rvnpu_status_error(status))\n"
                      f"        return fail({i}, result, status);\n"
                      f"    now = rvnpu_rdcycle();\n"
                      f"    cycles[{i}] = (uint32_t)(now - then);\n    then = now;")
    list_bytes = sum(len(step.commands) for step in steps.values()) * LIST_ENTRY_BYTES
    return Program(_program(c, batch, border), "\n".join(c.data), border, len(steps),
                   list_bytes)


def _run_list(c, number, layers, steps, space):
    """The list of ``layers`` (consecutive engine layers) as a global, and its run."""
    entries = []
    for i in layers:
        entries.append(f"    /* layer {i}: {steps[i].mapping} */")
        for funct, *ops in steps[i].commands:
            texts = []
            for operand, value in enumerate(ops, 1):
                if operand in address_operands(funct):
                    texts.append("ADDR({}, {})".format(*space.resolve(value)))
                else:
                    texts.append(f"0x{value:08x}u")
            entries.append(f"    {{0x{funct:02x}, {texts[0]}, {texts[1]}, 0}},")
    count = sum(len(steps[i].commands) for i in layers)
    c.globals.append(f"static const rvnpu_list_entry_t list{number}[{count}] "
                     f"RVNPU_LIST_ALIGNED = {{\n" + "\n".join(entries) + "\n};")
    return (f"    /* layers {layers[0]}..{layers[-1]}: one RUN, asleep until the engine's "
            f"interrupt */\n"
            f"    rvnpu_run_list(list{number}, {count});\n"
            f"    status = rvnpu_list_wait();\n    result = RVNPU_GEMM_OK;")


def _program(c, batch, border):
    """``model.c``: the arena, the layers' globals, ``record``, ``infer`` and the loop over
    the inputs the host wrote into the image. The first slot of the inputs is the chip input's
    buffer: the layers read it where the host wrote it, and a later input is copied there."""
    model, plan = c.model, c.plan
    t_in = model.tensors[model.chip_input]
    out_name = model.storage(model.chip_output)
    t_out = model.tensors[model.chip_output]
    n_layers = len(model.layers)
    in_bytes = input_bytes(model, border)
    in_stride = -(-in_bytes // ALIGN) * ALIGN
    return f"""/*
 * Generated by rvnpu compile: the model's {n_layers} layers on the rvnpu SoC.
 * Input {c_comment(t_in.name)}: {t_in.dtype} {list(t_in.shape)}; output {c_comment(t_out.name)}:
 * {t_out.dtype} {list(t_out.shape)} (rank-4 tensors are stored NHWC).
 */
#include "rvnpu.h"
#include "model_data.h"

#define LAYERS {n_layers}
#define BATCH {batch}
#define IN_BYTES {in_bytes}
#define IN_STRIDE {in_stride}
#define OUT_BYTES {t_out.nbytes}

/* A main-memory address in a command list: resolved by the linker. */
#define ADDR(symbol, offset) ((uint32_t)(uintptr_t)((const uint8_t *)(symbol) + (offset)))

static uint8_t arena[{max(plan.arena_bytes, ALIGN)}] __attribute__((aligned({ALIGN})));

/* Written into the image by the host before a run (initialised, so they are in the image). */
volatile uint32_t rvnpu_model_count = 1;
uint8_t rvnpu_model_inputs[BATCH * IN_STRIDE] __attribute__((aligned({ALIGN}))) = {{1}};

{chr(10).join(c.globals)}

static int fail(int layer, int result, uint32_t status)
{{
    printf("error layer %d result %d status 0x%08x\\n", layer, result, (unsigned)status);
    return 3;
}}

/* Record each layer's engine commands and requantisation table once. */
static int record(void)
{{
{chr(10).join(c.record)}
    return 0;
}}

static int infer(uint32_t *cycles)
{{
    uint32_t status = 0;
    int result;
    uint64_t then = rvnpu_rdcycle(), now;
    (void)status;
{chr(10).join(c.code)}
    return 0;
}}

int main(void)
{{
    int failed = record();
    if (failed)
        return failed;
    uint32_t count = rvnpu_model_count;
    for (uint32_t n = 0; n < count && n < BATCH; n++) {{
        if (n) {{
            const uint32_t *src = (const uint32_t *)(rvnpu_model_inputs + n * IN_STRIDE);
            uint32_t *dst = (uint32_t *)rvnpu_model_inputs;
            for (uint32_t i = 0; i < IN_STRIDE / 4; i++)
                dst[i] = src[i];
        }}
        uint32_t cycles[LAYERS];
        rvnpu_status(1);
        uint64_t slept = rvnpu_sleep_cycles();
        uint64_t start = rvnpu_rdcycle();
        failed = infer(cycles);
        uint32_t total = (uint32_t)(rvnpu_rdcycle() - start);
        slept = rvnpu_sleep_cycles() - slept;
        if (failed)
            return failed;
        const uint8_t *out = arena + {plan.offsets[out_name]};
        printf("out %u ", (unsigned)n);
        for (uint32_t i = 0; i < OUT_BYTES; i++)
            printf("%02x", out[i]);
        printf("\\ncycles %u", (unsigned)n);
        for (uint32_t i = 0; i < LAYERS; i++)
            printf(" %u", (unsigned)cycles[i]);
        printf(" %u\\nsleep %u %u\\n", (unsigned)total, (unsigned)n, (unsigned)slept);
    }}
    return 0;
}}
"""
