"""The requantisation modes, written once.

A mode is one framework's convention for turning an int32 sum (plus bias) into a small integer.
Each has a code (:class:`RequantMode`, the ``mode`` field of ``CONFIG_REQUANT``), the
per-channel parameters it reads from the QP memory, and the golden function that defines it
bit for bit. The engine's configuration builds a subset (``EngineConfig.requant_modes``); the
HDL lane, the golden model, the compiler and the command set all read :data:`MODES` rather than
naming the modes themselves.
"""

import enum
from dataclasses import dataclass


__all__ = ["RequantMode", "QpParam", "Mode", "MODES", "MODE_NAMES", "ALL", "NONE", "CHOICES",
           "mode_named", "mode_coded", "modes_built", "reset_mode"]


class RequantMode(enum.IntEnum):
    TFLITE = 0   #: gemmlowp fixed-point multiplier and rounding shift
    ORT    = 1   #: ONNX Runtime: float32 scale, round half to even


@dataclass(frozen=True)
class QpParam:
    """A per-channel parameter a mode reads from its QP rows.

    ``row`` is the QP row after the first (row 0 is the bias, which every mode adds). ``name`` is
    the attribute of :class:`rvnpu.sim.golden.gemm.Requant` holding the values; ``kind`` how a
    value is held in its 32-bit word: ``"int32"`` (two's complement) or ``"float32"`` (the IEEE
    bit pattern).
    """
    name: str
    row: int
    kind: str


@dataclass(frozen=True)
class Mode:
    """One requantisation convention.

    ``golden`` names the function of :mod:`rvnpu.sim.golden.requant` that defines it; it is
    called as ``golden(acc, bias, *params, out_zero, clamp_min, clamp_max)`` with ``params`` in
    the order of :attr:`params`.
    """
    name: str            #: as ``requant_modes`` and ``Requant.mode`` spell it
    code: RequantMode
    params: tuple
    golden: str
    doc: str             #: a few words for the ``mode`` field's documentation


MODES = (
    Mode("tflite", RequantMode.TFLITE,
         (QpParam("multiplier", 1, "int32"), QpParam("shift", 2, "int32")),
         "requantize_tflite", "TFLite/gemmlowp fixed point"),
    Mode("ort", RequantMode.ORT, (QpParam("scale", 1, "float32"),),
         "requantize_ort", "ONNX Runtime float32"),
)

MODE_NAMES = tuple(mode.name for mode in MODES)

#: ``requant_modes`` values that are not one mode's name: every mode, and none (no lane).
ALL = "both"
NONE = "none"
CHOICES = MODE_NAMES + (ALL, NONE)


def mode_named(name):
    """The :class:`Mode` called ``name``; ``KeyError`` if there is none."""
    return {mode.name: mode for mode in MODES}[name]


def modes_built(choice):
    """The modes a ``requant_modes`` value builds, in code order (``()`` for ``"none"``)."""
    if choice == ALL:
        return MODES
    if choice == NONE:
        return ()
    return (mode_named(choice),)


def mode_coded(code):
    """The :class:`Mode` whose code is ``code``; ``KeyError`` if there is none."""
    return {int(mode.code): mode for mode in MODES}[int(code)]


def reset_mode(built):
    """The mode ``CONFIG_REQUANT`` holds at reset: the first of ``built``. An engine with no
    mode built refuses STORE, so its reset mode (the first of all) is never used."""
    return (built or MODES)[0]
