"""Lab holes: the regions of the project's own sources that a lab takes out.

The reference solution of every lab is the project's code, so the holes are marked in place
with comments that leave the reference running unchanged (``#`` in Python, ``//`` in C)::

    # lab 1 hole begin: the multiply-accumulate
    m.d.comb += total.eq(acc + Mux(self.valid_in, product, 0))
    # lab 1 starter:
    # m.d.comb += total.eq(acc)
    # lab 1 hole end

The ``starter:`` part is optional; its lines are comments at the marker's indentation, which the
student's copy gets uncommented in place of the reference lines. Holes do not nest. A student's
copy of lab N has lab N's holes cut and the markers of the other labs removed (their reference
code stays).
"""

import dataclasses
import re


__all__ = ["Hole", "HoleError", "find_holes", "cut_holes"]

_MARKER = re.compile(r"^(?P<indent>[ \t]*)(?P<prefix>#|//) lab (?P<lab>\d+) "
                     r"(?P<kind>hole begin: (?P<title>\S.*)|starter:|hole end)\s*$")
# Anything that looks like a marker, to catch misspelt ones.
_LOOSE = re.compile(r"^\s*(#|//)\s*lab\s*\d+\s*(hole|starter)", re.IGNORECASE)
#: The lines that frame a cut hole in a student's copy.
HOLE_BEGIN = "{indent}{prefix} >>> lab {lab}: {title} (your code here)"
HOLE_END = "{indent}{prefix} <<< lab {lab}"


class HoleError(ValueError):
    """A malformed hole marker."""


@dataclasses.dataclass
class Hole:
    """One hole: its lab, title, comment prefix, indentation and line numbers (0-based;
    ``starter`` is None without a starter part), and the starter's uncommented lines."""
    lab: int
    title: str
    prefix: str
    indent: str
    begin: int
    starter: int | None
    end: int
    starter_lines: list


def _markers(lines, where):
    for i, line in enumerate(lines):
        match = _MARKER.match(line)
        if match:
            yield i, match
        elif _LOOSE.match(line):
            raise HoleError(f"{where}:{i + 1}: malformed lab marker: {line.strip()!r}")


def find_holes(text, where="<text>"):
    """The holes of a source text, checking that their markers are well formed."""
    lines = text.splitlines()
    holes, open_ = [], None
    for i, match in _markers(lines, where):
        kind, lab = match["kind"], int(match["lab"])
        if kind.startswith("hole begin"):
            if open_:
                raise HoleError(f"{where}:{i + 1}: lab {lab} hole begins inside the lab "
                                f"{open_.lab} hole of line {open_.begin + 1}")
            open_ = Hole(lab, match["title"].strip(), match["prefix"], match["indent"], i,
                         None, -1, [])
            continue
        if not open_ or open_.lab != lab or open_.indent != match["indent"]:
            raise HoleError(f"{where}:{i + 1}: 'lab {lab} {kind}' without its 'hole begin' "
                            "at the same indentation")
        if kind == "starter:":
            if open_.starter is not None:
                raise HoleError(f"{where}:{i + 1}: a second starter in one hole")
            open_.starter = i
            continue
        open_.end = i
        if open_.starter is not None:
            open_.starter_lines = [_uncomment(line, open_, where, n)
                                   for n, line in enumerate(lines[open_.starter + 1:i],
                                                            open_.starter + 2)]
        holes.append(open_)
        open_ = None
    if open_:
        raise HoleError(f"{where}:{open_.begin + 1}: lab {open_.lab} hole never ends")
    return holes


def _uncomment(line, hole, where, number):
    head = hole.indent + hole.prefix
    if line.strip() == hole.prefix:
        return ""
    if not line.startswith(head + " "):
        raise HoleError(f"{where}:{number}: a starter line must be a '{hole.prefix} ' comment "
                        "at the marker's indentation")
    return hole.indent + line[len(head) + 1:]


def cut_holes(text, lab, where="<text>", *, cut=None):
    """``text`` as lab ``lab``'s student gets it: that lab's holes replaced by their starters
    (framed by :data:`HOLE_BEGIN`/:data:`HOLE_END` lines), every other lab's markers and
    starters dropped and its reference lines kept. ``cut(hole)``, if given, picks which of the
    lab's holes to cut (the others keep their reference). Returns ``(text, the lab's
    holes)``."""
    lines = text.splitlines(keepends=True)
    newline = "\n"
    out, holes, last = [], [], 0
    for hole in find_holes(text, where):
        out.extend(lines[last:hole.begin])
        last = hole.end + 1
        fields = dict(indent=hole.indent, prefix=hole.prefix, lab=hole.lab, title=hole.title)
        if hole.lab == lab:
            holes.append(hole)
        if hole.lab == lab and (cut is None or cut(hole)):
            out.append(HOLE_BEGIN.format(**fields) + newline)
            out.extend(line + newline for line in hole.starter_lines)
            out.append(HOLE_END.format(**fields) + newline)
        else:
            stop = hole.starter if hole.starter is not None else hole.end
            out.extend(lines[hole.begin + 1:stop])
    out.extend(lines[last:])
    return "".join(out), holes
