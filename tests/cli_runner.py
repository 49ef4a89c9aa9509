"""Runs the installed ``rvnpu`` console script the way a user does, for the CLI tests."""

import os
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent


def rvnpu(*args, cwd=None):
    """Run the installed console script, sharing the repository's simulator build cache."""
    script = Path(sys.executable).parent / "rvnpu"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "rvnpu"]
    env = dict(os.environ, RVNPU_SIM_BUILD=str(REPO / "build" / "sim"))
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=900)
