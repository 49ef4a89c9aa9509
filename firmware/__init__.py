"""The SoC's firmware as C sources: start-up code (``crt0.S``), linker script (``link.ld``),
the library's headers (``include/``) and code (``lib/``) and the example programs
(``examples/``).

This folder installs as ``rvnpu.firmware`` and its sources ship in the wheel, because they are
compiled for each SoC configuration (:mod:`rvnpu.firmware.build`) rather than prebuilt. Builds
only read this folder: it may be a read-only site-packages.
"""
