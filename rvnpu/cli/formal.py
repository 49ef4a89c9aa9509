"""``rvnpu formal``: bounded proofs of the core's ISA behaviour and of the blocks' handshakes."""

HELP = "prove the formal properties (SymbiYosys) and print a table"
DESCRIPTION = ("Bounded model checking of the control core through its retire port, of the "
               "stream and bus handshakes and of the engine's front end (hazards, refusals, "
               "command order, the main-memory window, command lists, the post unit's "
               "barrier); every property also has a cover that must be reached. See "
               "docs/verification.md.")


def add_arguments(parser):
    parser.add_argument("--depth", type=int, default=None,
                        help="cycles after reset to prove (default: each set's own)")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this property set (repeatable)")
    parser.add_argument("--solver", default="yices", choices=("yices", "z3"),
                        help="SMT solver (default: yices; z3 is far slower on the core)")
    parser.add_argument("--broken", action="store_true",
                        help="prove each set's deliberately broken block instead (must FAIL)")


def run(args):
    from rvnpu.formal.checks import CHECKS, check_named
    from rvnpu.formal.sby import prove

    if args.depth is not None and args.depth < 1:
        raise ValueError(f"--depth must be a positive number of cycles, not {args.depth}")
    checks = [check_named(name) for name in args.only] if args.only else list(CHECKS)
    width = max(len("property set"), *(len(check.name) for check in checks))
    print(f"{'property set':{width}} {'depth':>5}  {'result':14} {'seconds':>8}  detail")
    failed = 0
    for check in checks:
        depth = args.depth or check.depth
        outcome = prove(check.name, check.build(broken=args.broken), depth, solver=args.solver)
        failed += not outcome.passed
        print(f"{check.name:{width}} {depth:5d}  {outcome.result:14} {outcome.seconds:8.1f}  "
              f"{outcome.detail}", flush=True)
    return 1 if failed and not args.broken else 0
