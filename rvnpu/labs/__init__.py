"""Course labs on rvnpu's own sources (``rvnpu lab``; instructors: ``labs/README.md``).

:mod:`.holes` cuts the marked holes out of the sources, :mod:`.catalog` reads the labs'
definitions, :mod:`.workspace` writes a student's copy, :mod:`.grading` runs a lab's autograder
on it (with :mod:`.plugin` inside pytest, and the simulation benches of :mod:`.benches`).
"""
