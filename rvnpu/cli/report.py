"""``rvnpu report``: what an engine configuration amounts to, without building it."""

from rvnpu.cli.options import add_engine_options, engine_config


HELP = "describe an engine configuration: MACs, memories, commands"


def add_arguments(parser):
    add_engine_options(parser)
    parser.add_argument("--clock-mhz", type=float, default=100.0,
                        help="clock for the peak-throughput figure (default: 100)")
    parser.add_argument("--json", action="store_true", help="print the full JSON description")


def run(args):
    import json
    from rvnpu.gen.verilog import engine_description
    from rvnpu.hdl.engine.array import dsp_blocks

    c = engine_config(args)
    description = engine_description(c)
    if args.json:
        print(json.dumps(description, indent=2))
        return 0
    mem_bits = {
        "scratchpad A": c.spad_depth * c.rows * c.in_width,
        "scratchpad B": c.spad_depth * c.cols * c.in_width,
        "accumulators": c.acc_depth * c.cols * c.acc_width,
        "requant params": c.qp_depth * c.cols * 32,
    }
    macs = c.rows * c.cols
    print(f"rvnpu engine: {c.rows}x{c.cols} int{c.in_width} systolic array, "
          f"dataflow {c.dataflow}, int{c.acc_width} accumulators")
    print(f"  {macs} MACs: {2 * macs} ops/cycle, "
          f"{2 * macs * args.clock_mhz / 1000:.2f} GOPS at {args.clock_mhz:g} MHz")
    blocks = dsp_blocks(rows=c.rows, cols=c.cols, logic_macs=c.logic_macs,
                        sb_mac16_pairs=c.sb_mac16_pairs)
    shared = (f" ({blocks} SB_MAC16s, two products a block)"
              if blocks != macs - c.logic_macs else "")
    print(f"  multipliers: {macs - c.logic_macs} for DSP blocks{shared}, "
          f"{c.logic_macs} in logic")
    for name, bits in mem_bits.items():
        print(f"  {name:15} {bits // 8:8d} bytes")
    print(f"  main memory     {c.mem_bytes:8d} bytes through a {c.bus_width}-bit port")
    print(f"  {len(description['commands'])} commands; parameters: "
          + ", ".join(f"{k}={v}" for k, v in c.to_dict().items()))
    return 0
