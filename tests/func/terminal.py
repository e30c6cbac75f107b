"""A real command on a real terminal (a pty): what a user at a keyboard sees and types."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

from conftest import BASE_ENV


def _own_terminal() -> None:
    """In the child: a session of its own whose controlling terminal is the pty, as a login
    shell's is, so that Ctrl-C typed there reaches it as SIGINT."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """`soulctl ARGS` on a pty: `expect` reads until a marker appears after the last one,
    `send` types, `interrupt` presses Ctrl-C."""

    def __init__(self, *args: str, cwd: Path, env: dict | None = None):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen([sys.executable, "-m", "soulctl", *map(str, args)],
                                     stdin=slave, stdout=slave, stderr=slave, cwd=cwd, close_fds=True,
                                     env={**BASE_ENV, "TERM": "dumb", **(env or {})}, preexec_fn=_own_terminal)
        os.close(slave)
        self.seen, self.pos = b"", 0

    def expect(self, marker: bytes, timeout: float = 180) -> bytes:
        """Read until `marker` appears after the previous match; what came before it."""
        deadline = time.time() + timeout
        while self.seen.find(marker, self.pos) < 0:
            ready, _, _ = select.select([self.master], [], [], max(0.0, deadline - time.time()))
            if not ready:
                raise AssertionError(f"no {marker!r} in {self.seen[-2000:]!r}")
            try:
                self.seen += os.read(self.master, 4096)
            except OSError:
                raise AssertionError(f"terminal closed before {marker!r}: {self.seen[-2000:]!r}")
        at = self.seen.find(marker, self.pos)
        before, self.pos = self.seen[self.pos:at], at + len(marker)
        return before

    def send(self, text: bytes) -> None:
        os.write(self.master, text)

    def interrupt(self) -> None:
        """Ctrl-C as the terminal sends it: the line discipline turns it into SIGINT."""
        os.write(self.master, b"\x03")

    def reply(self) -> str:
        """The reply after "soul> ": up to the next prompt, without the sources listed under it."""
        self.expect(b"soul> ")
        text = self.expect(b"you> ").decode("utf-8", "replace").replace("\r\n", "\n")
        text = text.rsplit("\n", 1)[0]  # the next prompt's "[n%] " prefix
        return "\n".join(line for line in text.split("\n") if not line.startswith("  [")).strip()

    def close(self) -> int | None:
        """Wait for the command to end (killed after a minute); its exit code."""
        if self.master is None:
            return self.proc.returncode
        try:
            return self.proc.wait(timeout=60)
        finally:
            self.proc.kill()
            os.close(self.master)
            self.master = None
