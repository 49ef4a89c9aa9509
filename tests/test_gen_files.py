"""rvnpu's one file writer (rvnpu.gen.files): a failure never leaves half a file, half a set of
files or half a directory behind, and an unchanged file keeps its modification time."""

import os
import stat

import pytest

from rvnpu.gen.files import replace_directory, write_file, write_files


def _fail_replace(monkeypatch):
    def fail(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", fail)


def _entries(directory):
    return sorted(p.name for p in directory.iterdir())


# -- write_file -------------------------------------------------------------------------------

def test_write_file_writes_text_and_bytes(tmp_path):
    assert write_file(tmp_path / "a" / "b.txt", "héllo\n") == tmp_path / "a" / "b.txt"
    assert (tmp_path / "a" / "b.txt").read_bytes() == "héllo\n".encode()
    write_file(tmp_path / "c.bin", b"\x00\xff")
    assert (tmp_path / "c.bin").read_bytes() == b"\x00\xff"
    assert stat.S_IMODE((tmp_path / "c.bin").stat().st_mode) == 0o644


def test_write_file_keeps_the_old_file_when_it_fails(tmp_path, monkeypatch):
    path = tmp_path / "out.h"
    write_file(path, "old\n")
    _fail_replace(monkeypatch)
    with pytest.raises(OSError, match="disk full"):
        write_file(path, "new\n")
    assert path.read_text() == "old\n"
    assert _entries(tmp_path) == ["out.h"], "the temporary file was left behind"


def test_write_file_never_shows_a_partial_file(tmp_path, monkeypatch):
    """The content goes to a temporary file, which replaces the target only once complete."""
    path = tmp_path / "out.h"
    write_file(path, "old\n")
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        seen.append((path.read_text(), open(src).read()))
        real_replace(src, dst)
    monkeypatch.setattr(os, "replace", replace)
    write_file(path, "new\n")
    assert seen == [("old\n", "new\n")]
    assert path.read_text() == "new\n"


def test_only_if_changed_keeps_the_modification_time(tmp_path):
    path = tmp_path / "rvnpu_soc.h"
    write_file(path, "same\n")
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    write_file(path, "same\n", only_if_changed=True)
    assert path.stat().st_mtime_ns == 1_000_000_000
    write_file(path, "same\n")
    assert path.stat().st_mtime_ns != 1_000_000_000, "without the flag the file is rewritten"
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    write_file(path, "changed\n", only_if_changed=True)
    assert path.read_text() == "changed\n"
    assert path.stat().st_mtime_ns != 1_000_000_000


# -- write_files ------------------------------------------------------------------------------

def test_write_files_writes_all(tmp_path):
    written = write_files({"a.v": "module a;\nendmodule\n", "a.json": b"{}\n"}, tmp_path / "out")
    assert written == [tmp_path / "out" / "a.v", tmp_path / "out" / "a.json"]
    assert (tmp_path / "out" / "a.json").read_bytes() == b"{}\n"
    assert _entries(tmp_path / "out") == ["a.json", "a.v"]


def test_write_files_is_all_or_nothing(tmp_path):
    out = tmp_path / "out"
    write_files({"a.v": "old a", "b.h": "old b"}, out)
    with pytest.raises(TypeError):
        write_files({"a.v": "new a", "b.h": None}, out)   # fails on the second file
    assert (out / "a.v").read_text() == "old a"
    assert (out / "b.h").read_text() == "old b"
    assert _entries(out) == ["a.v", "b.h"], "the staging directory was left behind"


def test_write_files_refuses_paths(tmp_path):
    with pytest.raises(ValueError, match="bare names"):
        write_files({"a.v": "x", "sub/b.v": "y"}, tmp_path)
    assert _entries(tmp_path) == []


# -- replace_directory ------------------------------------------------------------------------

def test_replace_directory_replaces_the_whole_directory(tmp_path):
    out = tmp_path / "build"
    out.mkdir()
    (out / "stale.txt").write_text("from an earlier build")
    with replace_directory(out) as staging:
        assert staging.parent == tmp_path and staging != out
        (staging / "top.bin").write_bytes(b"new")
    assert _entries(out) == ["top.bin"]
    assert _entries(tmp_path) == ["build"]


def test_replace_directory_creates_a_new_directory(tmp_path):
    with replace_directory(tmp_path / "a" / "build") as staging:
        (staging / "x").write_text("x")
    assert (tmp_path / "a" / "build" / "x").read_text() == "x"
    assert _entries(tmp_path / "a") == ["build"]


def test_replace_directory_leaves_the_old_one_on_error(tmp_path):
    out = tmp_path / "build"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="nextpnr failed"):
        with replace_directory(out) as staging:
            (staging / "half.txt").write_text("half")
            raise RuntimeError("nextpnr failed")
    assert _entries(out) == ["old.txt"]
    assert _entries(tmp_path) == ["build"], "the staging directory was left behind"


def test_replace_directory_restores_the_old_one_if_the_swap_fails(tmp_path, monkeypatch):
    out = tmp_path / "build"
    out.mkdir()
    (out / "old.txt").write_text("old")
    real_rename = type(out).rename

    def rename(self, target):
        if self.name.startswith(".build-") and "-old-" not in self.name:
            raise OSError("cannot move the staging directory")
        return real_rename(self, target)
    monkeypatch.setattr(type(out), "rename", rename)
    with pytest.raises(OSError, match="staging"):
        with replace_directory(out) as staging:
            (staging / "new.txt").write_text("new")
    assert _entries(out) == ["old.txt"]
    assert _entries(tmp_path) == ["build"]

