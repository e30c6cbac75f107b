"""The SoulError hierarchy and the one exit-code table.

Every failure a user can cause or fix is a SoulError: one line saying what is wrong, and a
hint naming the fix. The CLI maps the class to its exit code in one place (cli/main.py).
"""

from __future__ import annotations

# The exit-code table (README and docs/reference.md mirror it; a unit test keeps them in step).
EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # a check ran and said no: over budget, verify mismatch, drift past limit
EXIT_USAGE = 2  # bad flags or arguments (click's own code)
EXIT_NOT_FOUND = 3  # no soul home, unknown generation / packet / corpus, missing file
EXIT_EXISTS = 4  # refusing to overwrite: a home, corpus or name that already exists
EXIT_INVALID = 5  # bad input data: corrupt model file, bad soul.yaml / recipe, malformed lines
EXIT_MISSING_DEP = 6  # an optional package (backend) is not installed
EXIT_UNAVAILABLE = 7  # a server or backend refused, timed out or is busy
EXIT_CANNOT_WRITE = 8  # the machine refused: permission denied, disk full, read-only, file size limit
EXIT_STEP_FAILED = 9  # a step of an evolution cycle failed (logged; `current` did not move)
EXIT_QUIET = 10  # a night with too little to learn from: nothing changed; scheduled units count it a success
EXIT_INTERNAL = 70  # a bug in soulctl: report it (traceback with -v)
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_BROKEN_PIPE = 141  # stdout closed early (`| head`)

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_CHECK_FAILED: "a check failed (over budget, verify mismatch, drift past a limit)",
    EXIT_USAGE: "usage error (unknown flag, bad argument)",
    EXIT_NOT_FOUND: "not found (soul home, generation, packet, corpus, file)",
    EXIT_EXISTS: "already exists (refused to overwrite)",
    EXIT_INVALID: "invalid input (corrupt model, bad config or recipe, malformed data)",
    EXIT_MISSING_DEP: "missing optional dependency (install the extra named in the hint)",
    EXIT_UNAVAILABLE: "backend or server unavailable (refused, timed out, busy)",
    EXIT_CANNOT_WRITE: "the machine refused (permission denied, disk full, read-only file system, file size limit)",
    EXIT_STEP_FAILED: "a step of an evolution cycle failed (its record is logged; current did not move)",
    EXIT_QUIET: "a quiet night: too few new moments to learn from, nothing changed (schedules count it a success)",
    EXIT_INTERNAL: "internal error (a bug: rerun with -v and report it)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
    EXIT_BROKEN_PIPE: "output pipe closed early (e.g. `| head`)",
}


class SoulError(Exception):
    """A failure with a one-line message and an optional hint that names the fix."""

    exit_code = EXIT_INVALID

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class CheckFailed(SoulError):
    exit_code = EXIT_CHECK_FAILED


class UsageError(SoulError):
    exit_code = EXIT_USAGE


class NotFound(SoulError):
    exit_code = EXIT_NOT_FOUND


class HomeNotFound(NotFound):
    def __init__(self, start: str, env: str | None = None):
        where = f"no soul home found in {start} or any parent (no soul.yaml)"
        if env is not None:
            where += f", nor at SOUL_HOME={env}"
        super().__init__(
            where, hint="run `soulctl init DIR`, cd into a soul home, or pass --home / set SOUL_HOME",
        )


class AlreadyExists(SoulError):
    exit_code = EXIT_EXISTS


class InvalidInput(SoulError):
    exit_code = EXIT_INVALID


class ConfigError(InvalidInput):
    """soul.yaml or a recipe does not validate; the message carries file:line."""


class MissingDependency(SoulError):
    exit_code = EXIT_MISSING_DEP

    def __init__(self, package: str, extra: str | None = None, why: str = ""):
        fix = f"pip install 'soulctl[{extra}]'" if extra else f"pip install {package}"
        super().__init__(
            f"{package} is not installed{': ' + why if why else ''}", hint=f"install it: {fix}"
        )


class Unavailable(SoulError):
    exit_code = EXIT_UNAVAILABLE


class TimedOut(Unavailable):
    """Work stopped at its time limit (a `log sql` query, a wait for a lock or a server)."""


class CannotWrite(SoulError):
    exit_code = EXIT_CANNOT_WRITE
