"""What a board build came to: nextpnr's report and log read into the figures ``rvnpu build``
prints and ``docs/boards.md`` tabulates, and what ran out when a design did not fit."""

import re


__all__ = ["TABLE_COLUMNS", "parse_report", "format_table", "critical_path", "fit_failure",
           "ff_memories", "clock_domains"]


#: nextpnr's cell types, as the table names them.
_RESOURCE_NAMES = {
    "ICESTORM_LC": "logic cells", "ICESTORM_RAM": "block RAMs", "ICESTORM_DSP": "DSPs",
    "ICESTORM_SPRAM": "SPRAMs", "SB_IO": "I/O pins", "ICESTORM_PLL": "PLLs",
    "TRELLIS_SLICE": "slices", "TRELLIS_COMB": "LUTs", "TRELLIS_FF": "FFs",
    "DP16KD": "block RAMs", "MULT18X18D": "DSP multipliers", "TRELLIS_IO": "I/O pins",
    "TRELLIS_RAMW": "LUT RAM", "EHXPLLL": "PLLs",
    "LUT4": "LUTs", "DFF": "FFs", "ALU": "carry cells", "BSRAM": "block RAMs",
    "MULT9X9": "9x9 multipliers", "MULT18X18": "18x18 multipliers", "IOB": "I/O pins",
    "rPLL": "PLLs", "RAM16SDP4": "LUT RAM",
}

#: A Gowin DSP block is one 18x18 multiplier or two 9x9 ones, which nextpnr counts apart: the
#: table counts blocks.
_GOWIN_DSP = "MULT18X18+MULT9X9"

#: Rows of the table: label, then the nextpnr cell types that count, first found wins.
_TABLE_ROWS = (
    ("LUTs / logic cells", ("TRELLIS_COMB", "ICESTORM_LC", "TRELLIS_SLICE", "LUT4")),
    ("FFs", ("TRELLIS_FF", "FF", "DFF")),
    ("DSPs", ("ICESTORM_DSP", "MULT18X18D", _GOWIN_DSP)),
    ("block RAMs", ("ICESTORM_RAM", "DP16KD", "BSRAM")),
    ("SPRAMs", ("ICESTORM_SPRAM",)),
)

#: The resources a report gives, in the order the tables show them.
TABLE_COLUMNS = tuple(label for label, _ in _TABLE_ROWS)


# -- A design that did not fit ------------------------------------------------------------------

#: nextpnr's multiplier cells, which array cells can do without (``logic_macs``).
_MULTIPLIER_CELLS = ("ICESTORM_DSP", "MULT18X18D", "MULT9X9", "MULT18X18")

_UTILISATION = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.MULTILINE)


def fit_failure(nextpnr_log, *, device):
    """What ran out, and by how much, from nextpnr's log; ``None`` if nothing did."""
    over = [(kind, int(used), int(available))
            for kind, used, available in _UTILISATION.findall(nextpnr_log)
            if int(used) > int(available)]
    if not over:
        return None
    message = f"the design does not fit the {device}: " + "; ".join(
        f"{_RESOURCE_NAMES.get(kind, kind)} ({kind}): {used} needed, {available} available "
        f"({used - available} too many, {100 * used // available}%)"
        for kind, used, available in over)
    if any(kind in _MULTIPLIER_CELLS for kind, _, _ in over):
        message += (" (--logic-macs N builds the multipliers of N array cells from logic "
                    "instead)")
    return message


_FF_MEMORY = re.compile(r"^using FF mapping for memory (\S+)$", re.MULTILINE)


def ff_memories(yosys_log):
    """Memories Yosys could not put in block RAM (a common reason for a design not to fit)."""
    return _FF_MEMORY.findall(yosys_log)


# -- A design that did --------------------------------------------------------------------------

_FF_CELL = re.compile(r"^(SB_DFF\w*|TRELLIS_FF|FD1S3\w+|FD1P3\w+|DFF\w*)$")


def _ff_count(stat):
    """Flip-flops in Yosys's ``stat -json`` of the top module."""
    if not stat:
        return None
    design = stat.get("design") or {}
    cells = design.get("num_cells_by_type") or {}
    return sum(n for cell, n in cells.items() if _FF_CELL.match(cell))


def _net_name(net):
    """A clock net as nextpnr names it in ``fmax`` and in paths' ends, without the global
    buffer's prefix or the edge: ``"posedge $glbnet$engine_clk"`` is ``"engine_clk"``."""
    return net.split(" ")[-1].removeprefix("$glbnet$")


def _domain_of(net):
    """The clock domain an Amaranth clock net belongs to (``clk`` is ``sync``'s)."""
    name = _net_name(net)
    return "sync" if name == "clk" else name.removesuffix("_clk")


def clock_domains(report, targets):
    """Each clock domain's target and achieved Fmax from nextpnr's ``--report`` JSON.

    ``targets`` maps a domain's name (``"sync"``, ``"engine"``) to its target clock in Hz.
    nextpnr lists an Fmax for each clock net; a domain's net is the one Amaranth named after
    it (``clk`` for ``sync``, ``engine_clk`` for ``engine``) or else the unclaimed one
    constrained nearest its target. Returns a list, in the order of ``targets``, of
    dictionaries: ``name``, ``net`` (``None`` if nextpnr gave no figure), ``target_mhz``,
    ``fmax_mhz``, ``met`` (``None`` without a figure) and ``critical_path``
    (:func:`critical_path` of the paths within that clock).
    """
    clocks = dict(report.get("fmax") or {})
    nets = {}
    for name in targets:
        named = [net for net in clocks if _domain_of(net) == name and net not in nets.values()]
        if named:
            nets[name] = named[0]
    for name, hz in targets.items():
        free = [net for net in clocks if net not in nets.values()]
        if name not in nets and free:
            nets[name] = min(free, key=lambda net: abs(clocks[net].get("constraint", 0)
                                                       - hz / 1e6))
    domains = []
    for name, hz in targets.items():
        net = nets.get(name)
        fmax = None if net is None else clocks[net].get("achieved")
        domains.append({
            "name": name, "net": None if net is None else _net_name(net),
            "target_mhz": hz / 1e6, "fmax_mhz": None if fmax is None else round(fmax, 2),
            "met": None if fmax is None else fmax >= hz / 1e6,
            # With one clock every register-to-register path is that clock's.
            "critical_path": critical_path(report, None if len(targets) == 1 else net),
        })
    return domains


def critical_path(report, net=None):
    """The blocks nextpnr's worst register-to-register path runs through, in order (cell
    names without their last part, e.g. ``soc.engine.load``), or ``None``. With ``net``, the
    worst path launched and captured by that clock net (paths between two clocks pass
    through the clock crossing's synchronisers and do not set a domain's Fmax)."""
    paths = [p for p in report.get("critical_paths", [])
             if "async" not in f"{p.get('from')}{p.get('to')}"
             and (net is None or _net_name(p.get("from", "")) == _net_name(net)
                  == _net_name(p.get("to", "")))]
    if not paths:
        return None
    blocks = []
    # lab 6 hole begin: the blocks of the worst path, in order, each once a run
    for segment in paths[0].get("path", []):
        for end in ("from", "to"):
            cell = segment.get(end, {}).get("cell", "")
            parts = [p for p in cell.split(".")[:-1] if not p.startswith("$")]
            block = ".".join(parts[:3])
            if block and (not blocks or blocks[-1] != block):
                blocks.append(block)
    # lab 6 starter:
    # blocks.append(paths[0]["path"][0]["from"]["cell"])
    # lab 6 hole end
    return blocks or None


def parse_report(report, *, board, engine, clock_hz, engine_clock_hz=None, stat=None):
    """The table's figures from nextpnr's ``--report`` JSON (and Yosys's ``stat -json``).

    ``clock_hz`` is the core's (``sync``) target; with ``engine_clock_hz`` the engine has a
    clock of its own and each domain gets its target and Fmax (``clock_domains``), ``misses``
    names the domains below their targets, the peak throughput is at the engine's Fmax, and
    ``critical_path`` is that of the domain furthest below (or least above) its target.
    """
    util = dict(report.get("utilization") or report.get("utilisation") or {})
    if "MULT18X18" in util and "MULT9X9" in util:
        whole, halves = util["MULT18X18"], util["MULT9X9"]
        util[_GOWIN_DSP] = {"used": whole["used"] + (halves["used"] + 1) // 2,
                            "available": whole["available"]}
    resources = {}
    for label, kinds in _TABLE_ROWS:
        for kind in kinds:
            if kind in util:
                resources[label] = {"used": util[kind]["used"],
                                    "available": util[kind]["available"], "cell": kind}
                break
        else:
            if label == "FFs" and _ff_count(stat) is not None:
                lc = resources.get("LUTs / logic cells")
                resources[label] = {"used": _ff_count(stat),
                                    "available": lc["available"] if lc else None,
                                    "cell": "yosys stat"}
    targets = {"sync": clock_hz}
    if engine_clock_hz:
        targets["engine"] = engine_clock_hz
    domains = clock_domains(report, targets)
    core, engine_domain = domains[0], domains[-1]
    macs = engine.rows * engine.cols
    fmax = engine_domain["fmax_mhz"]
    # The domain furthest below (or least above) its target limits the design.
    measured = [d for d in domains if d["fmax_mhz"] is not None]
    limiting = min(measured, key=lambda d: d["fmax_mhz"] / d["target_mhz"], default=core)
    return {
        "board": board.name,
        "device": board.platform.device,
        "array": f"{engine.rows}x{engine.cols}",
        "macs": macs,
        "target_mhz": core["target_mhz"],
        "fmax_mhz": core["fmax_mhz"],
        "engine_target_mhz": engine_domain["target_mhz"],
        "engine_fmax_mhz": engine_domain["fmax_mhz"],
        "split_clocks": len(domains) > 1,
        "clock_domains": domains,
        "timing_met": None if not measured else all(d["met"] for d in measured),
        "misses": [d["name"] for d in domains if d["met"] is False],
        "peak_gops_at_fmax": None if fmax is None else round(2 * macs * fmax / 1e3, 3),
        "peak_gops_at_target": round(2 * macs * engine_domain["target_mhz"] / 1e3, 3),
        "resources": resources,
        "critical_path": limiting["critical_path"],
        "engine": engine.to_dict(),
    }


def format_table(report):
    """The report as the table ``rvnpu build`` prints."""
    lines = [f"{report['board']} ({report['device']}), {report['array']} array "
             f"({report['macs']} MACs)", ""]
    rows = []
    for label, r in report["resources"].items():
        available = r["available"]
        share = f"{100 * r['used'] / available:5.1f}%" if available else ""
        rows.append((label, f"{r['used']}", f"{available if available else '?'}", share))
    split = len(report["clock_domains"]) > 1
    for domain in report["clock_domains"]:
        fmax = domain["fmax_mhz"]
        met = "" if fmax is None else ("met" if domain["met"] else "NOT MET")
        label = f"Fmax {domain['name']} (MHz)" if split else "Fmax (MHz)"
        rows.append((label, "?" if fmax is None else f"{fmax:.1f}",
                     f"{domain['target_mhz']:g} target", met))
    gops = report["peak_gops_at_fmax"]
    rows.append(("peak GOPS", "?" if gops is None else f"{gops:.2f}",
                 f"{report['peak_gops_at_target']:.2f} at target", ""))
    width = max(len(r[0]) for r in rows)
    lines.append(f"{'resource':{width}}  {'used':>8}  {'of':>15}")
    for label, used, of, note in rows:
        lines.append(f"{label:{width}}  {used:>8}  {of:>15}  {note}".rstrip())
    if report["misses"]:
        lines += ["", "misses timing: " + ", ".join(
            f"the {name} domain" for name in report["misses"])]
    if split:
        lines.append("")
        lines += [f"critical path ({d['name']}): " + " -> ".join(d["critical_path"])
                  for d in report["clock_domains"] if d["critical_path"]]
    elif report.get("critical_path"):
        lines += ["", "critical path: " + " -> ".join(report["critical_path"])]
    if report.get("toolchain"):
        seed = report.get("placement_seed")
        stalled = ["nextpnr's own" if s is None else str(s)
                   for s in report.get("stalled_seeds") or ()]
        lines += ["", f"built with {report['toolchain']['summary']}"
                  + (f", placement seed {seed}" if seed is not None else "")
                  + (f" (routing stalled from seed{'s' * (len(stalled) > 1)} "
                     f"{', '.join(stalled)})" if stalled else "")]
    return "\n".join(lines)
