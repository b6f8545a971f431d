"""Commands printed for the user to copy and paste into a shell.

Every argument is quoted with :func:`shlex.quote`, so a URL such as
``postgresql://app@db/app?schema=wf&table_prefix=x_`` is pasted as one argument (an
unquoted ``&`` would send the command to the background and run the rest as another).
"""

from __future__ import annotations

import shlex


def shell_command(*args: str) -> str:
    """``args`` as one POSIX shell command line, each argument quoted where needed."""
    return " ".join(shlex.quote(arg) for arg in args)


__all__ = ["shell_command"]
