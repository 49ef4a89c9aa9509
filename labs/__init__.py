"""The course labs, installed as rvnpu.labs.course: data for ``rvnpu lab`` (see README.md)."""
