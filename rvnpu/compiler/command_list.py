"""A compiled program as a command list in main memory, run by one RUN.

The GEMM scheduler's programs are core-issued command streams; the engine's command fetcher
runs the same commands from main memory (``RUN``). FENCE and STATUS answer the core, which a
list cannot, so they stay with the core: the list holds every other command, and the core
issues RUN and then the program's final FENCE.
"""

import dataclasses

from rvnpu.compiler.gemm import GemmError
from rvnpu.spec.commands import Funct, LIST_ENTRY_BYTES, encode, pack_list


__all__ = ["list_commands", "as_command_list", "image_end"]


def list_commands(program):
    """The commands of ``program`` a list can hold: all but FENCE and STATUS.

    Dropping a FENCE in the middle changes no result: the engine keeps commands in program
    order itself; a FENCE only makes the core wait.
    """
    return [tuple(int(x) for x in c) for c in program
            if c[0] not in (Funct.FENCE, Funct.STATUS)]


def image_end(job):
    """First byte above everything ``job`` (a :class:`.gemm.GemmJob`) places or writes."""
    ends = [addr + len(data) for addr, data in job.image]
    ends.append(job.out_addr + job.out_shape[0] * job.out_shape[1] * job.out_bytes)
    return max(ends)


def as_command_list(job, list_addr=None):
    """``job`` with its commands as a list in main memory (at ``list_addr``, by default the
    first aligned address above its operands and output) and a program of RUN then FENCE.

    Raises :class:`.gemm.GemmError` if the list does not fit the engine's window or
    ``list_addr`` is not a multiple of ``LIST_ENTRY_BYTES``.
    """
    commands = list_commands(job.program)
    if list_addr is None:
        list_addr = -(-image_end(job) // LIST_ENTRY_BYTES) * LIST_ENTRY_BYTES
    if list_addr % LIST_ENTRY_BYTES:
        raise GemmError(f"a command list starts at a multiple of {LIST_ENTRY_BYTES} bytes, "
                        f"not {list_addr:#x}")
    data = pack_list(commands)
    if list_addr + len(data) > job.config.mem_bytes:
        raise GemmError(f"the command list of {len(commands)} commands needs "
                        f"{list_addr + len(data)} bytes of main memory, the engine has "
                        f"{job.config.mem_bytes}")
    program = [encode(Funct.RUN, list_addr=list_addr, count=len(commands)),
               encode(Funct.FENCE)]
    return dataclasses.replace(job, image=[*job.image, (list_addr, data)], program=program)
