"""The engine's main-memory port: a minimal pipelined request/response bus.

Why not Wishbone or AXI: the engine only ever streams whole words, so one request stream and one
in-order response stream are enough, and any of those buses can be bridged to it in a few lines.

* ``req`` (engine -> memory, valid/ready): ``addr`` is a *word* address, ``write`` selects a write
  of ``data`` under the byte-enable ``mask``; a read returns one word on ``rsp``.
* ``rsp`` (memory -> engine): read data, in request order. The engine holds ``ready`` at 1 and
  only issues as many reads as it has room for, so a memory may ignore ``ready``.
"""

from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out


__all__ = ["BusRequest", "BusSignature", "word_address_width", "unit_request_signature"]


def BusRequest(addr_width, data_width):
    return data.StructLayout({
        "addr":  addr_width,
        "write": 1,
        "data":  data_width,
        "mask":  data_width // 8,
    })


def word_address_width(bus_bytes):
    """Width of the word addresses of a 32-bit byte space with ``bus_bytes``-byte words."""
    return 32 - (bus_bytes.bit_length() - 1)


def unit_request_signature(bus_bytes, data_width):
    """The request stream an engine unit drives towards the engine's bus arbiter."""
    return stream.Signature(BusRequest(word_address_width(bus_bytes), data_width))


class BusSignature(wiring.Signature):
    """The main-memory port as seen from the engine (the initiator).

    Parameters
    ----------
    addr_width : int
        Width of word addresses.
    data_width : int
        Width of a word, a multiple of 8.
    """

    def __init__(self, addr_width, data_width):
        self.addr_width = addr_width
        self.data_width = data_width
        super().__init__({
            "req": Out(stream.Signature(BusRequest(addr_width, data_width))),
            # Not ``always_ready``: that would make ``ready`` a constant, which cannot be a
            # port of a generated top level. The initiator drives it to 1 all the same.
            "rsp": In(stream.Signature(data_width)),
        })
