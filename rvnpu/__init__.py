"""rvnpu: a generator for a small inference chip, a RISC-V control core driving a systolic
matrix engine, written in Amaranth and verified against numpy golden models."""

__version__ = "0.1.0"
