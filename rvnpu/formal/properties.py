"""Named properties: each assertion comes with a cover of its condition, so none passes by
never being exercised.

Every property is a submodule of its own, named after it, so that SymbiYosys reports a failed
assertion or an unreached cover by that name (``top.<checker>.<name>``).
"""

import re

from amaranth.hdl import Assert, Cover, Module


__all__ = ["Properties"]


class Properties:
    """Collects the properties of one checker into its module ``m``."""

    def __init__(self, m):
        self._m = m
        self.names = []

    def _submodule(self, name):
        name = re.sub(r"\W", "_", name)
        if name in self.names:
            raise ValueError(f"property {name!r} is defined twice")
        self.names.append(name)
        sub = Module()
        self._m.submodules[name] = sub
        return sub

    def check(self, name, when, holds):
        """Whenever ``when``, ``holds``; and ``when`` happens within the depth."""
        sub = self._submodule(name)
        sub.d.comb += [Assert(~when | holds), Cover(when)]

    def reach(self, name, when):
        """``when`` happens within the depth (a cover on its own)."""
        sub = self._submodule(name)
        sub.d.comb += Cover(when)
