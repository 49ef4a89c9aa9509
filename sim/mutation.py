"""Mutation testing of the RTL: plant one small fault at a time in a block's source, run the
tests that cover the block, and count how many faults they catch.

A test suite that passes says little until it is shown to fail on broken hardware. Each mutant
is the source of one module of :mod:`rvnpu.hdl` with one change of a kind listed in
:data:`KINDS` (an operator swapped or an inversion dropped, a comparison off by one, a
constant changed, an enable or a ``m.d.<domain> +=`` assignment dropped, a ``Mux``'s arms
swapped). Mutants are drawn deterministically from a seed.

The checkout is never touched, and edits made to it while a campaign runs do not reach the
campaign: :func:`snapshot` copies the package's sources and ``tests/`` into a private folder
once, the mutants are drawn from that copy, and each runs in a child ``python`` that imports
``rvnpu`` from the copy, with an import hook serving the mutated text for the one module, and
pytest on the copied tests, without caches or byte code. Before the
tests the child elaborates the block (:attr:`Block.probe`); a mutant that cannot even be
elaborated is *invalid*: reported apart and left out of the score.

Outcomes: ``killed`` (a test failed), ``survived`` (all passed), ``equivalent`` (a survivor
shown to be the same hardware, :data:`EQUIVALENT`), ``timeout`` (the tests ran past the limit:
the fault hangs the hardware, counted as detected, as Stryker does), ``invalid``.
Score = (killed + timeout) / (killed + survived + timeout).
"""

import ast
import dataclasses
import functools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


__all__ = ["Block", "BLOCKS", "KINDS", "EQUIVALENT", "Mutant", "MutationError", "Outcome",
           "mutants_of", "generate", "mutant_replacing", "snapshot", "run_mutant",
           "run_campaign", "annotate", "summarise", "format_table"]


class MutationError(ValueError):
    """A bad request to the mutation tool (unknown block, bad numbers, failing baseline)."""


#: The kinds of fault, in the order the sampler takes turns between them.
KINDS = ("operator", "compare", "constant", "drop-assign", "drop-enable", "swap-mux")

_BINOP_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd,
                ast.BitXor: ast.BitOr, ast.LShift: ast.RShift, ast.RShift: ast.LShift}
_COMPARE_SWAPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
                  ast.Eq: ast.NotEq, ast.NotEq: ast.Eq}

_REPO = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Block:
    """A part of the RTL: its modules, the tests that cover it, and how to elaborate it.

    ``tests`` are pytest arguments relative to ``tests/`` (Amaranth-simulator and golden-model
    tests, fast). ``probe`` is Python run in the child that builds the block's top component;
    it must raise if the mutated source cannot be elaborated.
    """
    name: str
    modules: tuple
    tests: tuple
    probe: str


_ENGINE_PROBE = ("from rvnpu.hdl.engine.engine import MatrixEngine\n"
                 "from rvnpu.spec.config import EngineConfig\n"
                 "top = MatrixEngine(EngineConfig(rows=4, cols=4))\n")
#: Random command programs on a 2x2 engine on Amaranth's simulator against the golden model
#: (memory and every answer): the quickest test that reaches every engine block, valid and
#: refused commands of every kind, both dataflows, both requantisation modes, command lists.
_SMALL = "test_engine_small_programs.py::test_random_programs_on_a_small_engine"
_ENGINE_TESTS = (f"{_SMALL}[2x2-ranges-101-0]",)
#: The cells' raw elements with the zero points off below the array (a zero step a COMPUTE),
#: its sums at their extremes, and the DSP blocks an array of SB_MAC16 pairs takes.
_RAW_CELL_TESTS = (f"{_SMALL}[2x2-zero-point-sums-116-0]", f"{_SMALL}[1x3-zero-point-sums-118-0]",
                   "test_ws_sums.py::test_sums_at_their_extremes_are_exact[0-3-2-True]",
                   "test_cli.py::test_report")
#: Every check of the front end one step either side of its bound; its serial hazard scheme
#: and one-deep queues; answers delayed on the bus.
_FRONTEND_TESTS = _ENGINE_TESTS + (
    "test_engine_small_programs.py::test_refusals_at_their_edges_on_a_small_engine[2x2-ranges]",
    f"{_SMALL}[2x2-serial-bus64-103-0]", f"{_SMALL}[2x2-ranges-102-1]")
#: Rows passing one requantisation lane in three slices; pooled stores (STORE_POOL) with
#: windows of every shape, and stores adding a skip tensor (STORE_ADD, its rows read ahead),
#: against the golden model.
_STORE_TESTS = _ENGINE_TESTS + (f"{_SMALL}[2x3-one-lane-104-0]",
                                "test_store_pool.py::test_rtl_store_pool_matches_golden[3x3-ort]",
                                "test_store_add.py::test_rtl_store_add_matches_golden"
                                "[2x4-bus64-lanes2-seeds1417-1419]")
#: An output-stationary-only engine running a compiled GEMM (the cells' OS sums).
_OS_GEMM = ("test_engine_fetch.py::test_gemm_run_as_a_list_equals_the_core_issued_gemm"
            "[3x2-bus64-os]",)

#: The blocks, by name. Each names the fastest tests that cover it (Amaranth's simulator and
#: the golden models; no Verilator build), the one most likely to fail first (pytest runs
#: with ``-x``). Where no test drives a block alone it is covered through the engine.
BLOCKS = {b.name: b for b in (
    Block("pe", ("rvnpu.hdl.engine.pe",), _ENGINE_TESTS + _OS_GEMM, _ENGINE_PROBE),
    Block("array", ("rvnpu.hdl.engine.array",), _ENGINE_TESTS + _OS_GEMM + _RAW_CELL_TESTS,
          _ENGINE_PROBE),
    Block("requant", ("rvnpu.hdl.engine.requant",),
          tuple(f"test_requant.py::test_lane_{name}"
                for name in ("random", "edges_both_modes", "ort_rounding_ties")),
          "from rvnpu.hdl.engine.requant import RequantLane\ntop = RequantLane()\n"),
    Block("load", ("rvnpu.hdl.engine.load",), _ENGINE_TESTS, _ENGINE_PROBE),
    Block("store", ("rvnpu.hdl.engine.store", "rvnpu.hdl.engine.skip_reader"), _STORE_TESTS,
          _ENGINE_PROBE),
    Block("execute", ("rvnpu.hdl.engine.execute",), _ENGINE_TESTS + _RAW_CELL_TESTS,
          _ENGINE_PROBE),
    Block("frontend", ("rvnpu.hdl.engine.frontend",), _FRONTEND_TESTS, _ENGINE_PROBE),
    Block("post", ("rvnpu.hdl.engine.post", "rvnpu.hdl.engine.qadd"),
          tuple(f"test_post_unit.py::test_{name}" for name in (
              "maxpool_random_shapes", "qlinear_add_random", "pipeline_ties_and_extremes",
              "qlinear_add_over_the_whole_window")),
          "from rvnpu.hdl.engine.post import PostUnit\n"
          "from rvnpu.spec.config import EngineConfig\n"
          "top = PostUnit(EngineConfig(rows=4, cols=4))\n"),
    Block("cpu", ("rvnpu.hdl.core.cpu", "rvnpu.hdl.core.csr", "rvnpu.hdl.core.trap",
                  "rvnpu.hdl.core.muldiv"),
          tuple(f"test_cpu.py::test_{name}" for name in (
              "register_register_ops", "immediate_ops", "m_extension", "loads_and_stores",
              "jumps_and_branches", "traps", "csrs", "mret_and_mstatus",
              "x0_is_never_written", "custom0_commands_with_back_pressure",
              "interrupt_priority_masking_and_mstatus_mie",
              "minstret_write_replaces_the_increment")),
          "from rvnpu.hdl.core.cpu import RiscvCore\ntop = RiscvCore()\n"),
)}


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One fault: in ``module``, the text from ``(line, col)`` to ``(end_line, end_col)``
    (1-based lines, 0-based columns, as :mod:`ast` counts) becomes ``after``."""
    block: str
    module: str
    kind: str
    line: int
    col: int
    end_line: int
    end_col: int
    before: str
    after: str

    @property
    def ident(self):
        return f"{self.module.rsplit('.', 1)[-1]}:{self.line}:{self.col}:{self.kind}:{self.after}"

    def apply(self, source):
        """``source`` (the module's text) with this fault planted."""
        lines = source.splitlines(keepends=True)
        starts = [0]
        for text in lines:
            starts.append(starts[-1] + len(text))
        # ast columns count UTF-8 bytes; the sources are ASCII where code is.
        begin = starts[self.line - 1] + _char_col(lines[self.line - 1], self.col)
        end = starts[self.end_line - 1] + _char_col(lines[self.end_line - 1], self.end_col)
        if source[begin:end] != self.before:
            raise MutationError(f"{self.module}:{self.line}: the source changed under the "
                                f"mutant (expected {self.before!r})")
        return source[:begin] + self.after + source[end:]


def _char_col(line, byte_col):
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", "replace"))


def module_path(module, root=None):
    """The source file of ``module`` (an ``rvnpu.hdl...`` name), found without importing it:
    in the installed tree, or in the private copy under ``root`` (see :func:`snapshot`)."""
    if root is not None:
        path = Path(root) / _SOURCES / (module.replace(".", "/") + ".py")
        if not path.is_file():
            raise MutationError(f"no module {module} in {root}")
        return path
    import importlib.util
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise MutationError(f"no module {module}")
    return Path(spec.origin)


# -- Finding the sites -----------------------------------------------------------------------

def _is_domain_target(node):
    """``m.d.<domain>`` (or ``m.d[...]``)."""
    return (isinstance(node, (ast.Attribute, ast.Subscript))
            and isinstance(node.value, ast.Attribute) and node.value.attr == "d")


def _is_raise_guard(node):
    return isinstance(node, ast.If) and node.body and isinstance(node.body[0], ast.Raise)


class _Sites(ast.NodeVisitor):
    """Collects the mutable places inside function bodies, skipping what is not hardware:
    docstrings, error messages, ``raise`` and ``assert`` statements and the tests that guard a
    ``raise`` (argument checking)."""

    def __init__(self, block, module, source):
        self.block, self.module, self.source = block, module, source
        self.found = []
        self.depth = 0

    def _segment(self, node):
        if not hasattr(self, "_lines"):
            self._lines = [line.encode("utf-8") for line in self.source.splitlines(True)]
        first, last = node.lineno - 1, node.end_lineno - 1
        if first == last:
            text = self._lines[first][node.col_offset:node.end_col_offset]
        else:
            text = b"".join([self._lines[first][node.col_offset:], *self._lines[first + 1:last],
                             self._lines[last][:node.end_col_offset]])
        return text.decode("utf-8")

    def _add(self, kind, node, after):
        before = self._segment(node)
        if before == after:
            return
        self.found.append(Mutant(self.block, self.module, kind, node.lineno, node.col_offset,
                                 node.end_lineno, node.end_col_offset, before, after))

    def visit_FunctionDef(self, node):
        self.depth += 1
        for statement in node.body:
            if not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)):
                self.visit(statement)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Raise(self, node):
        pass

    def visit_Assert(self, node):
        pass

    def visit_JoinedStr(self, node):
        pass

    def visit_If(self, node):
        if _is_raise_guard(node):
            for statement in node.orelse:
                self.visit(statement)
            return
        self.generic_visit(node)

    def visit_BinOp(self, node):
        swap = _BINOP_SWAPS.get(type(node.op))
        if self.depth and swap is not None:
            self._add("operator", node, "(" + ast.unparse(
                ast.BinOp(node.left, swap(), node.right)) + ")")
        self.generic_visit(node)

    def visit_UnaryOp(self, node):
        # A dropped inversion: ``~x`` becomes ``x``.
        if self.depth and isinstance(node.op, ast.Invert):
            self._add("operator", node, "(" + ast.unparse(node.operand) + ")")
        self.generic_visit(node)

    def visit_Compare(self, node):
        if self.depth and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE_SWAPS:
            changed = ast.Compare(node.left, [_COMPARE_SWAPS[type(node.ops[0])]()],
                                  node.comparators)
            self._add("compare", node, "(" + ast.unparse(changed) + ")")
        self.generic_visit(node)

    def visit_Constant(self, node):
        value = node.value
        if self.depth and isinstance(value, int) and not isinstance(value, bool):
            self._add("constant", node, str(value + 1))
            if value != 0:
                self._add("constant", node, str(value - 1))

    def visit_Call(self, node):
        # The widths of a component's ports (``In(8)``): a change there breaks the connection
        # to the other side, or widens a port whose extra bits nothing drives.
        if isinstance(node.func, ast.Name) and node.func.id in ("In", "Out"):
            for argument in node.args[1:]:
                self.visit(argument)
            for keyword in node.keywords:
                self.visit(keyword)
            return
        # ``Mux(c, a, b)`` with its arms swapped: the selection inverted.
        if (self.depth and isinstance(node.func, ast.Name) and node.func.id == "Mux"
                and len(node.args) == 3 and not node.keywords):
            swapped = ast.Call(node.func, [node.args[0], node.args[2], node.args[1]], [])
            self._add("swap-mux", node, ast.unparse(swapped))
        self.generic_visit(node)

    def visit_keyword(self, node):
        if node.arg in ("name", "src_loc_at"):
            return
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        if self.depth and isinstance(node.op, ast.Add) and _is_domain_target(node.target):
            if isinstance(node.value, (ast.List, ast.Tuple)) and len(node.value.elts) > 1:
                for element in node.value.elts:
                    kept = [e for e in node.value.elts if e is not element]
                    changed = ast.AugAssign(node.target, ast.Add(), ast.List(kept, ast.Load()))
                    self._add("drop-assign", node, ast.unparse(changed))
            else:
                self._add("drop-assign", node, "pass")
        self.generic_visit(node)

    def visit_With(self, node):
        for item in node.items:
            call = item.context_expr
            if (self.depth and isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and call.func.attr in ("If", "Elif") and len(call.args) == 1):
                # The enable is always on: the guarded assignments happen every cycle.
                self._add("drop-enable", call.args[0], "1")
        self.generic_visit(node)


def mutants_of(block, root=None):
    """Every mutant of ``block`` (a :class:`Block` or its name), in source order, drawn from
    the installed sources or from the copy under ``root``."""
    block = _block(block)
    return list(_mutants(block, tuple(module_path(m, root).read_text() for m in block.modules)))


@functools.lru_cache(maxsize=32)
def _mutants(block, sources):
    found = []
    for module, source in zip(block.modules, sources):
        sites = _Sites(block.name, module, source)
        sites.visit(ast.parse(source))
        found += sorted(sites.found, key=lambda m: (m.line, m.col, m.kind, m.after))
    # Each mutant must still be Python. Expressions are replaced parenthesised and constants
    # by literals, so only a replaced statement (a drop in a one-line body, say) could fail.
    source_of = dict(zip(block.modules, sources))
    result = []
    for mutant in found:
        try:
            if mutant.kind == "drop-assign":
                ast.parse(mutant.apply(source_of[mutant.module]))
        except SyntaxError:
            continue
        result.append(mutant)
    return tuple(result)


def mutant_replacing(block, module, before, after, kind="custom", root=None):
    """A hand-made mutant of ``block``: the one occurrence of ``before`` in ``module``'s
    source becomes ``after`` (for tests of the tool, and to replay a fault by hand)."""
    block = _block(block)
    source = module_path(module, root).read_text()
    if module not in block.modules or source.count(before) != 1:
        raise MutationError(f"{module}: {before!r} must occur once in a module of block "
                            f"{block.name}")
    begin = source.index(before)
    end = begin + len(before)

    def position(offset):
        line = source.count("\n", 0, offset) + 1
        start = source.rfind("\n", 0, offset) + 1
        return line, len(source[start:offset].encode("utf-8"))

    (line, col), (end_line, end_col) = position(begin), position(end)
    return Mutant(block.name, module, kind, line, col, end_line, end_col, before, after)


def generate(block, *, seed, max_mutants, root=None):
    """Up to ``max_mutants`` mutants of ``block``, the same for the same seed and source.

    The sampler takes the kinds in turn (each shuffled by the seed), so that a small sample
    still has operators, comparisons, constants and dropped assignments.
    """
    block = _block(block)
    rng = random.Random(f"{seed}/{block.name}")
    by_kind = {kind: [m for m in mutants_of(block, root) if m.kind == kind] for kind in KINDS}
    for kind in KINDS:
        rng.shuffle(by_kind[kind])
    chosen = []
    while len(chosen) < max_mutants and any(by_kind.values()):
        for kind in KINDS:
            if by_kind[kind] and len(chosen) < max_mutants:
                chosen.append(by_kind[kind].pop())
    return chosen


def _block(block):
    if isinstance(block, Block):
        return block
    if block not in BLOCKS:
        raise MutationError(f"no block {block!r}; the blocks are {', '.join(BLOCKS)}")
    return BLOCKS[block]


# -- Running one mutant ----------------------------------------------------------------------

#: The child: installs the import hook for the mutated module, elaborates the block, runs pytest.
_CHILD = r'''
import importlib.abc, importlib.util, json, sys
spec_file, status_file = sys.argv[1], sys.argv[2]
with open(spec_file) as f:
    job = json.load(f)

class MutantLoader(importlib.abc.Loader):
    def __init__(self, origin, source):
        self.origin, self.source = origin, source
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        module.__file__ = self.origin
        exec(compile(self.source, self.origin, "exec"), module.__dict__)

class MutantFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != job["module"]:
            return None
        return importlib.util.spec_from_loader(name, MutantLoader(job["origin"], job["source"]),
                                               origin=job["origin"])

sys.path.insert(0, job["sources"])
sys.meta_path.insert(0, MutantFinder())
import rvnpu
if not rvnpu.__file__.startswith(job["sources"]):
    sys.exit(f"rvnpu imported from {rvnpu.__file__}, not from the private copy")
import pytest
code = int(pytest.main(job["pytest_args"]))
status = {"elaborates": True, "error": ""}
if code != 0 and job["probe"]:
    # Only a failing mutant needs telling apart: killed by a test, or not hardware at all.
    try:
        from amaranth.hdl import Fragment
        scope = {}
        exec(job["probe"], scope)
        Fragment.get(scope["top"], None).prepare()
    except Exception as error:
        status = {"elaborates": False, "error": f"{type(error).__name__}: {error}"[:300]}
with open(status_file, "w") as f:
    json.dump(status, f)
sys.exit(code)
'''


@dataclasses.dataclass
class Outcome:
    """What the tests made of one mutant (``mutant`` is None for the unmutated baseline)."""
    mutant: Mutant
    status: str                 # killed, survived, timeout, invalid (or error for a baseline)
    seconds: float
    tests_failed: bool
    detail: str = ""

    def as_dict(self):
        out = {"status": self.status, "seconds": round(self.seconds, 2),
               "tests_failed": self.tests_failed, "detail": self.detail}
        if self.mutant is not None:
            out = {**dataclasses.asdict(self.mutant), "id": self.mutant.ident, **out}
        return out


#: Where :func:`snapshot` puts the package inside its folder, and which folder of the
#: checkout becomes which subpackage (as ``[tool.setuptools.package-dir]`` says).
_SOURCES = "src"
_PACKAGE_DIRS = {"rvnpu": "rvnpu", "hdl": "rvnpu/hdl", "sim": "rvnpu/sim",
                 "boards": "rvnpu/boards", "firmware": "rvnpu/firmware"}


def snapshot(into):
    """Copy the package's sources (laid out as installed, under ``into/src``), ``tests/`` and
    the pytest settings into the folder ``into``; returns it.

    Mutants are drawn from, and run against, this copy: other work on the checkout during a
    long campaign neither changes the mutants nor mixes into their runs.
    """
    into = Path(into)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info")
    for folder, target in _PACKAGE_DIRS.items():
        shutil.copytree(_REPO / folder, into / _SOURCES / target, ignore=skip)
    shutil.copytree(_REPO / "tests", into / "tests", ignore=skip)
    shutil.copy(_REPO / "pyproject.toml", into / "pyproject.toml")
    return into


def run_mutant(block, mutant, *, workdir, timeout_s):
    """Run ``block``'s tests against ``mutant`` (None: the unmutated source) in a child.

    ``workdir`` holds the private copy of the sources and tests (:func:`snapshot`).
    """
    block = _block(block)
    workdir = Path(workdir)
    module = mutant.module if mutant is not None else block.modules[0]
    origin = module_path(module, workdir)
    source = origin.read_text()
    if mutant is not None:
        source = mutant.apply(source)
    with tempfile.TemporaryDirectory(prefix="mutant-", dir=workdir) as scratch:
        scratch = Path(scratch)
        job = {"module": module, "origin": str(origin), "source": source,
               "sources": str(workdir / _SOURCES), "probe": block.probe,
               "pytest_args": ["-q", "-x", "-p", "no:cacheprovider", "-p", "no:xdist",
                               "-p", "no:randomly", "--no-header", "-rfE",
                               *[str(workdir / "tests" / t) for t in block.tests]]}
        (scratch / "job.json").write_text(json.dumps(job))
        (scratch / "child.py").write_text(_CHILD)
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONWARNINGS": "error::DeprecationWarning"}
        start = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, str(scratch / "child.py"), str(scratch / "job.json"),
             str(scratch / "status.json")], cwd=workdir, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True)
        try:
            output, _ = child.communicate(timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            output, _ = child.communicate()
            timed_out = True
        seconds = time.perf_counter() - start
        status_file = scratch / "status.json"
        probe = json.loads(status_file.read_text()) if status_file.exists() else \
            {"elaborates": True, "error": ""}
    text = output.decode("utf-8", "replace")
    failed = timed_out or child.returncode != 0
    if not probe["elaborates"]:
        return Outcome(mutant, "invalid", seconds, failed, probe["error"])
    if timed_out:
        return Outcome(mutant, "timeout", seconds, True, f"over {timeout_s:g} s")
    if child.returncode not in (0, 1):
        # 2..5: interrupted, internal error, usage error, no tests: not a verdict on the RTL.
        if mutant is None or child.returncode != 2:
            return Outcome(mutant, "error", seconds, True, _error_detail(text))
    status = ("killed" if failed else "survived") if mutant is not None else \
        ("passed" if not failed else "error")
    return Outcome(mutant, status, seconds, failed, _failing_test(text) if failed else "")


def _failing_test(text):
    for line in text.splitlines():
        if line.startswith(("FAILED", "ERROR")):
            return line[:200]
    return _last_lines(text)


def _error_detail(text):
    """The failing test or file, and the first exception pytest shows (``E   NameError: ...``)."""
    raised = next((line[1:].strip() for line in text.splitlines()
                   if line.startswith("E ") and "Error" in line), "")
    return " | ".join(filter(None, [_failing_test(text), raised]))[:300]


def _last_lines(text, n=3):
    return " | ".join(text.strip().splitlines()[-n:])[:300]


# -- A campaign ------------------------------------------------------------------------------

def run_campaign(blocks, *, seed, max_mutants, jobs=1, timeout_factor=4.0, min_timeout_s=60,
                 on_outcome=None, on_block=None, only=None, tests=None):
    """Mutate each of ``blocks`` (names) and run its tests; returns the report as a dict.

    ``max_mutants`` is a number for every block, or a dict from block name to number.
    ``only`` (a set of :attr:`Mutant.ident`) replays those mutants instead of sampling: to
    show that a new test catches a survivor. ``tests`` (pytest arguments relative to
    ``tests/``) replaces every block's own selection.

    ``on_outcome(outcome)`` is called after every mutant, ``on_block(report so far)`` after
    every block. Each block's tests first run on the unmutated source: they must pass (a block
    whose tests fail is skipped, and listed under ``skipped``), and their time sets the
    block's limit (``timeout_factor`` times it, at least ``min_timeout_s``).
    """
    from concurrent.futures import ThreadPoolExecutor

    limits = max_mutants if isinstance(max_mutants, dict) else {}
    for n in [max_mutants] if not limits else limits.values():
        if n < 1:
            raise MutationError(f"a block's number of mutants must be at least 1, not {n}")
    if jobs < 1:
        raise MutationError(f"--jobs must be at least 1, not {jobs}")
    blocks = [_block(b) for b in blocks]
    if tests:
        blocks = [dataclasses.replace(b, tests=tuple(tests)) for b in blocks]
    started = time.perf_counter()
    report = {"seed": seed, "max_mutants": max_mutants, "blocks": {}, "mutants": []}
    if only is not None:
        report["only"] = sorted(only)
    with tempfile.TemporaryDirectory(prefix="rvnpu-mutation-") as workdir:
        snapshot(workdir)
        baselines = {}
        for block in blocks:
            if block.tests not in baselines:      # blocks sharing their tests share this run
                baselines[block.tests] = run_mutant(block, None, workdir=workdir,
                                                    timeout_s=3600)
            baseline = baselines[block.tests]
            if baseline.status != "passed":
                if len(blocks) == 1:
                    raise MutationError(f"{block.name}: the tests fail without a mutant "
                                        f"({baseline.detail}); fix them first")
                # A long campaign goes on with the other blocks; the report says why not this.
                report.setdefault("skipped", {})[block.name] = \
                    f"the tests fail without a mutant: {baseline.detail}"
                continue
            timeout_s = max(min_timeout_s, timeout_factor * baseline.seconds)
            if only is not None:
                chosen = [m for m in mutants_of(block, workdir) if m.ident in only]
            else:
                chosen = generate(block, seed=seed, root=workdir, max_mutants=limits.get(
                    block.name, max_mutants) if limits else max_mutants)
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                outcomes = list(pool.map(
                    lambda m: _reported(run_mutant(block, m, workdir=workdir,
                                                   timeout_s=timeout_s), on_outcome), chosen))
            report["blocks"][block.name] = {
                "modules": list(block.modules), "tests": list(block.tests),
                "baseline_s": round(baseline.seconds, 1), "timeout_s": round(timeout_s, 1),
                "sites": len(mutants_of(block, workdir))}
            report["mutants"] += [o.as_dict() for o in outcomes]
            if on_block is not None:       # the report so far, for a long campaign
                on_block(annotate({**report, "mutants": [dict(r) for r in report["mutants"]]}))
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    return annotate(report)


def _reported(outcome, on_outcome):
    if on_outcome is not None:
        on_outcome(outcome)
    return outcome


#: Survivors shown equivalent to the original (no input can tell them apart), by
#: ``(module, line, before, after)`` (or ``(module, line, col, before, after)`` where a line
#: holds the same text twice), with the reason (an entry the source has moved away from
#: no longer matches, so the survivor shows again). A survivor listed here is reported as
#: ``equivalent`` and left out of the score, as an invalid mutant is.
EQUIVALENT = {
    ("rvnpu.hdl.engine.requant", 239, "shift > 0", "(shift >= 0)"):
        "at shift = 0 the right shift is (-0)[:5] = 0 either way",
    ("rvnpu.hdl.engine.requant", 176, "y6 < lo", "(y6 <= lo)"):
        "at the bound the sum out_zero + v is clamp_min, which `below` would choose",
    ("rvnpu.hdl.engine.requant", 176, "y6 > neg_lo", "(y6 >= neg_lo)"):
        "at the bound the sum out_zero - y6 is clamp_min, which `below` would choose",
    ("rvnpu.hdl.engine.requant", 177, "y6 > hi", "(y6 >= hi)"):
        "at the bound the sum out_zero + v is clamp_max, which `above` would choose",
    ("rvnpu.hdl.engine.requant", 177, "y6 < neg_hi", "(y6 <= neg_hi)"):
        "at the bound the sum out_zero - y6 is clamp_max, which `above` would choose",
    ("rvnpu.hdl.engine.load", 72, 47, "1", "2"):
        "the row descriptor's byte count widened from range(maxb + 1) to range(maxb + 2): it "
        "holds cols * element bytes <= maxb (the front end refuses wider rows), which fits "
        "either width; only the FIFO entry may grow a bit",
    ("rvnpu.hdl.core.csr", 89, "32 - at", "(32 + at)"):
        "the mie/mip read words padded with more zeros above bit 31: the CSR read reaches the "
        "ALU operand b_x, a 32-bit signal, through ORs and ANDs, so the extra bits (zeros) "
        "are cut off",
    ("rvnpu.hdl.engine.pe", 117, "1", "2"):
        "the fixed dataflow of a one-dataflow cell as Const(0 or 1, 2) instead of 1 bit: it "
        "only selects (Mux, m.If) and, with WS built (then it is 0), masks mark_in through "
        "~os, which is all ones at either width",
    ("rvnpu.hdl.engine.execute", 221, "zero - top_bit", "(zero + top_bit)"):
        "a zero point moved up 2**(w-1) instead of down is the same in_width-bit value",
    ("rvnpu.hdl.engine.execute", 315, 43, "1", "2"):
        "a step's sum of corrected elements one bit wider than its values need",
    ("rvnpu.hdl.engine.execute", 315, "c.rows - 1", "(c.rows + 1)"):
        "a step's sum of corrected elements wider than its values need",
    ("rvnpu.hdl.engine.execute", 315, 57, "1", "0"):
        "a step's sum of corrected elements as wide or a bit wider (rows.bit_length())",
}


def annotate(report):
    """Mark the survivors listed in :data:`EQUIVALENT` and recompute the summary (in place);
    returns ``report``."""
    for row in report["mutants"]:
        reason = EQUIVALENT.get((row["module"], row["line"], row["before"], row["after"])) or \
            EQUIVALENT.get((row["module"], row["line"], row.get("col"), row["before"],
                            row["after"]))
        if row["status"] == "survived" and reason is not None:
            row["status"], row["detail"] = "equivalent", reason
    report["summary"] = summarise(report["mutants"], list(report["blocks"]))
    return report


def summarise(outcomes, blocks):
    """Per block and in total: mutants, killed, survived, equivalent, timeout, invalid, error
    and the score (equivalent and invalid mutants are not counted in it)."""
    def counts(rows):
        c = {s: sum(r["status"] == s for r in rows)
             for s in ("killed", "survived", "equivalent", "timeout", "invalid", "error")}
        scored = c["killed"] + c["survived"] + c["timeout"]
        c = {"mutants": len(rows), **c}
        c["score"] = round((c["killed"] + c["timeout"]) / scored, 4) if scored else None
        return c
    table = {b: counts([r for r in outcomes if r["block"] == b]) for b in blocks}
    table["total"] = counts(outcomes)
    return table


def format_table(summary):
    """The summary as a text table."""
    head = f"{'block':10} {'mutants':>7} {'killed':>6} {'survived':>8} {'equivalent':>10} " \
           f"{'timeout':>7} {'invalid':>7} {'score':>6}"
    lines = [head, "-" * len(head)]
    for name, c in summary.items():
        score = "-" if c["score"] is None else f"{100 * c['score']:.1f}%"
        lines.append(f"{name:10} {c['mutants']:7d} {c['killed']:6d} {c['survived']:8d} "
                     f"{c['equivalent']:10d} {c['timeout']:7d} {c['invalid']:7d} {score:>6}")
    return "\n".join(lines)
