"""Lab 6: an ONNX model on the chip, and what a board build of the chip came to.

``run_on_chip`` compiles an int8 ONNX model to firmware and runs it on the simulated SoC, as
``rvnpu run`` does; ``utilisation`` reads the resources a nextpnr report says the design used;
``largest_square_array`` says how big an array a device would hold, from the cost of one
multiply-accumulate cell measured between two builds. The autograder compares the first with
onnxruntime and the cycles the project's own flow measures, the others with the project's
report reader and its own arithmetic on the lab's reports (and on reports it varies).
"""


def run_on_chip(onnx_path, x, out_dir):
    """``(output, cycles)`` of one input ``x`` (a float array of the model's input shape) run
    on the simulated SoC: the model's float output as the chip computes it, and the core's
    cycles for the inference. ``out_dir`` is a new folder for the firmware build."""
    # lab 6 hole begin: compile the model and run one input on the chip
    from rvnpu.flows.model import compile_model, run_model

    compiled = compile_model(onnx_path, out_dir)
    result = run_model(compiled, [x])[0]
    return result.output, result.cycles
    # lab 6 starter:
    # import numpy as np
    # return np.zeros((1, 10), np.float32), 0
    # lab 6 hole end


#: nextpnr's cell types of the four resources the lab asks about, by family (iCE40, ECP5).
RESOURCE_CELLS = {
    "logic": ("ICESTORM_LC", "TRELLIS_COMB"),
    "flip-flops": ("TRELLIS_FF",),
    "multipliers": ("ICESTORM_DSP", "MULT18X18D"),
    "block RAMs": ("ICESTORM_RAM", "DP16KD"),
}


def utilisation(report):
    """``{resource: (used, available)}`` from nextpnr's ``--report`` JSON (a dict), for each
    resource of :data:`RESOURCE_CELLS` whose cell type the report has (the first found)."""
    # lab 6 hole begin: read the used and available cells of each resource
    util = report.get("utilization") or report.get("utilisation") or {}
    found = {}
    for resource, cells in RESOURCE_CELLS.items():
        for cell in cells:
            if cell in util:
                found[resource] = (util[cell]["used"], util[cell]["available"])
                break
    return found
    # lab 6 starter:
    # util = report.get("utilization") or {}
    # return {resource: (0, util[cells[0]]["available"]) for resource, cells
    #         in RESOURCE_CELLS.items() if cells[0] in util}
    # lab 6 hole end


def largest_square_array(small, large, small_macs, large_macs, available):
    """The largest ``n`` such that an ``n x n`` array fits a device with ``available``
    (``{resource: cells}``), from two builds of the same design: ``small`` and ``large`` are
    their :func:`utilisation` results, with ``small_macs`` and ``large_macs`` array cells.
    Each resource grows linearly with the cells, at the cost the two builds measure; a
    resource the builds use equally does not limit the array. ``0`` if not even 1 x 1 fits;
    at most 32 (the generator's limit)."""
    # lab 6 hole begin: the cost of one array cell, and the largest square array that fits
    from fractions import Fraction      # exact: a resource may be filled to the last cell

    def fits(n):
        for resource, cells in available.items():
            (used_s, _), (used_l, _) = small[resource], large[resource]
            per_mac = Fraction(used_l - used_s, large_macs - small_macs)
            if used_s + per_mac * (n * n - small_macs) > cells:
                return False
        return True

    n = 0
    while n < 32 and fits(n + 1):
        n += 1
    return n
    # lab 6 starter:
    # resource = "logic"
    # used_l, _ = large[resource]
    # return int((available[resource] / used_l * large_macs) ** 0.5)
    # lab 6 hole end
