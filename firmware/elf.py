"""The symbol table of a built firmware's ELF file (ELF32, little-endian, as ``zig cc`` writes
for RV32): where a variable lives, for a host that patches the image, and which function an
address is in, for a report of where a firmware stopped."""

import bisect
import struct
from pathlib import Path


__all__ = ["elf_symbols", "function_finder"]

_SHT_SYMTAB = 2
_STT_FUNC = 2


def _symbol_entries(path):
    """``(name, value, size, type)`` of every named symbol."""
    data = Path(path).read_bytes()
    shoff, = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x2E)
    headers = [struct.unpack_from("<IIIIIIIIII", data, shoff + i * shentsize)
               for i in range(shnum)]
    for _, kind, _, _, offset, size, link, _, _, entsize in headers:
        if kind != _SHT_SYMTAB:
            continue
        strtab = headers[link][4]
        for i in range(size // entsize):
            name_off, value, nbytes, info = struct.unpack_from("<IIIB", data,
                                                               offset + i * entsize)
            if name_off:
                end = data.index(b"\0", strtab + name_off)
                yield data[strtab + name_off:end].decode(), value, nbytes, info & 0xF


def elf_symbols(path):
    """``{name: address}`` of an ELF32 little-endian file's symbols."""
    return {name: value for name, value, _, _ in _symbol_entries(path)}


def function_finder(path):
    """A function ``find(address)`` that names the function of ``path``'s symbol table whose
    code holds ``address`` (``None`` outside every function)."""
    functions = sorted((value, size, name) for name, value, size, kind in _symbol_entries(path)
                       if kind == _STT_FUNC)
    starts = [value for value, _, _ in functions]

    def find(address):
        i = bisect.bisect_right(starts, address) - 1
        if i < 0:
            return None
        value, size, name = functions[i]
        return name if address < value + max(size, 1) else None

    return find
