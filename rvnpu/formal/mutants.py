"""Deliberately broken copies of the checked blocks: each proof must fail on its mutant, which
shows that its properties can fail at all (no vacuous pass).

A mutant is the block's module re-executed from its source with one line changed, so the
checked block itself is untouched; if the line is no longer in the source, the mutant cannot
be made and says so rather than silently checking the original.
"""

import importlib
import inspect
import types


__all__ = ["MutationError", "mutant"]


class MutationError(ValueError):
    """The text a mutant changes is not (exactly once) in its module's source."""


def mutant(module_name, attribute, old, new):
    """``attribute`` of a copy of module ``module_name`` whose source has ``old`` replaced by
    ``new``."""
    module = importlib.import_module(module_name)
    source = inspect.getsource(module)
    if source.count(old) != 1:
        raise MutationError(f"{module_name}: expected the line {old!r} once, found it "
                            f"{source.count(old)} times; update the mutant in rvnpu/formal")
    copy = types.ModuleType(f"{module_name}__mutant")
    copy.__file__ = module.__file__
    exec(compile(source.replace(old, new), module.__file__, "exec"), copy.__dict__)
    return getattr(copy, attribute)
