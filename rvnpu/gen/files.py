"""Writing files so that a failure never leaves half of one behind.

Every file rvnpu writes (Verilog, C headers, linker fragments, docs, firmware images, reports,
benchmark JSON, board builds) goes through here: a reader sees the old file or the new one,
and a run that fails, or is interrupted, leaves what was there before.
"""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


__all__ = ["write_file", "write_files", "replace_directory"]


#: Permissions of every written file: mkstemp makes 0600, and generated and checked-in files are
#: world-readable.
_MODE = 0o644


def _as_bytes(content):
    return content.encode("utf-8") if isinstance(content, str) else bytes(content)


def write_file(path, content, *, only_if_changed=False):
    """Write ``content`` (``str`` or ``bytes``) to ``path`` atomically; returns the path.

    With ``only_if_changed``, a file that already holds ``content`` is left alone, so its
    modification time stays and build caches keyed on it (zig's, make's) stay valid.
    """
    path = Path(path)
    data = _as_bytes(content)
    if only_if_changed and path.is_file() and path.read_bytes() == data:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, _MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_files(files, out_dir):
    """Write ``{name: content}`` into ``out_dir``, all or nothing: every file is produced in a
    temporary directory beside it and moved in only once all exist. Returns the paths."""
    out_dir = Path(out_dir)
    for name in files:
        if Path(name).name != name or name in (".", ".."):
            raise ValueError(f"file names must be bare names, not {name!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".rvnpu-") as tmp:
        for name, content in files.items():
            staged = Path(tmp) / name
            staged.write_bytes(_as_bytes(content))
            os.chmod(staged, _MODE)
        written = []
        for name in files:
            os.replace(Path(tmp) / name, out_dir / name)
            written.append(out_dir / name)
    return written


@contextlib.contextmanager
def replace_directory(out_dir):
    """Build a directory's new contents in a staging directory beside it.

    Yields the staging directory's path. When the block ends normally the staging directory
    takes ``out_dir``'s place (an earlier ``out_dir`` is removed whole, so old and new builds
    never mix); when it raises, the staging directory is removed and ``out_dir`` is untouched.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    # rename() may replace an empty directory, so a fresh one reserves a unique name for the old
    # contents; they come back if the new ones cannot move in.
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-old-", dir=out_dir.parent))
    out_dir.rename(old)
    try:
        staging.rename(out_dir)
    except BaseException:
        old.rename(out_dir)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
