"""Child processes that cannot outlive the process that started them."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess


def die_with_parent() -> None:
    """``preexec_fn``: the child gets SIGTERM when its parent dies, even by SIGKILL (Linux; a no-op elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(args: list[str], env: dict[str, str] | None = None, *, quiet: bool = False) -> subprocess.Popen[bytes]:
    """Start a child in a session of its own that dies with us (``quiet``: its output is discarded).

    Its own session keeps a terminal's Ctrl-C away from it: the parent alone receives the signal and
    stops its children in order, so nothing is cut off mid-drain.
    """
    output = subprocess.DEVNULL if quiet else None
    return subprocess.Popen(
        args, env=env, stdout=output, stderr=output, preexec_fn=die_with_parent, start_new_session=True
    )
