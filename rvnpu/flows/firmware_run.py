"""Firmware from source to result: build it, run it on the simulated SoC, and check the
examples that have a numpy golden model.

This is what ``rvnpu sim FILE.c`` does before printing; it lives here, above both the firmware
builder and the simulator, so that the simulator itself never builds firmware.
"""

import os
from pathlib import Path

from rvnpu.firmware.build import EXAMPLES, build_firmware
from rvnpu.sim.rtl import default_build_root
from rvnpu.sim.soc_sim import DEFAULT_MAX_CYCLES, SocSimulator
from rvnpu.spec.memory_map import SocConfig


__all__ = ["run_firmware", "check_example", "symboliser"]


def run_firmware(program, *, config=SocConfig(), defines=None, max_cycles=DEFAULT_MAX_CYCLES,
                 waves=False, uart_input=b"", build_root=None, firmware_dir=None):
    """Build (if need be) and run a program on the SoC.

    Parameters
    ----------
    program : path-like or list of path-like
        C or assembly sources (built with :func:`rvnpu.firmware.build.build_firmware`), or one
        ``.bin`` RAM image.
    defines : dict, optional
        Preprocessor definitions for the build.
    firmware_dir : path-like, optional
        Where the build goes (default: ``<build root>/firmware/<name>``).

    Returns
    -------
    (FirmwareImage or None, SocRun)
    """
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


def symboliser(firmware):
    """``find(pc)``, naming the firmware's function at an address, or ``None`` for a bare
    ``.bin`` image (no ELF, no symbols)."""
    if firmware is None or not Path(firmware.elf).is_file():
        return None
    from rvnpu.firmware.elf import function_finder
    return function_finder(firmware.elf)


def check_example(program, config, defines, text):
    """For the examples with a Python golden (matmul, conv), ``(ok, line)`` comparing the
    checksums they printed with the golden model's; ``None`` for other programs."""
    if not isinstance(program, (str, os.PathLike)):
        return None
    path = Path(program).resolve()
    if path == EXAMPLES["matmul"].resolve():
        from rvnpu.sim.golden.examples import matmul_example, parse_checksum
        shape = {name: int(defines.get(name, 64)) for name in ("M", "N", "K")}
        golden = {"C": matmul_example(shape["M"], shape["N"], shape["K"],
                                      seed=int(defines.get("SEED", 1)), config=config.engine,
                                      relu="RELU" in defines).checksum}
        got = {"C": parse_checksum(text)}
    elif "conv" in EXAMPLES and path == EXAMPLES["conv"].resolve():
        from rvnpu.sim.golden.examples import conv_example, parse_checksums
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
