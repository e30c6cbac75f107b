"""The soulctl command line: global flags, command registration, exit codes, error mapping."""

from __future__ import annotations

import errno
import logging
import math
import os
import sys
import traceback
import warnings

import typer

from soulctl import __version__
from soulctl.cli import state
from soulctl.cli.output import Output, PipeClosed
from soulctl.commands import (
    anchor,
    budget,
    chat,
    dream,
    evolve,
    gen,
    gen_upkeep,
    hands,
    init,
    log,
    log_data,
    log_import,
    merge,
    mount,
    notebook,
    resonate,
    schedule,
    serve,
    service,
    status,
    store,
)
from soulctl.errors import EXIT_BROKEN_PIPE, EXIT_CANNOT_WRITE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, SoulError


def new_app() -> typer.Typer:
    return typer.Typer(
        name="soulctl",
        help="A git-like toolchain for a self-evolving local LLM: memory, corpora, evolution, budget.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def _version(value: bool) -> None:
    if value:
        print(f"soulctl {__version__}")
        raise typer.Exit()


def root(
    json_: bool = typer.Option(False, "--json", help="Machine output: one JSON object, or JSON lines for listings."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only ids / essential data; no hints."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging and tracebacks on errors."),
    home: str = typer.Option(None, "--home", envvar=None, help="The soul home (default: walk up to soul.yaml, else $SOUL_HOME)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Global flags work before or after the command: `soulctl --json gen ls` = `soulctl gen ls --json`."""
    state.out = Output(json_mode=json_, quiet=quiet, verbose=verbose)
    if not verbose:  # library deprecation chatter is not for the user; -v shows it
        warnings.simplefilter("ignore")
        os.environ.setdefault("TQDM_DISABLE", "1")
    state.home_flag = home
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING,
        # for people a library's warning reads like the CLI's own; -v names where it came from
        format="%(levelname)s %(name)s: %(message)s" if verbose else "%(levelname_lower)s: %(message)s",
        stream=sys.stderr,
    )
    from soulctl.secrets import RedactingFilter

    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
        handler.addFilter(_lower_level)


def _lower_level(record: logging.LogRecord) -> bool:
    record.levelname_lower = record.levelname.lower()
    return True


# Every command, registered in one visible place: a function, or a sub-app of verbs.
COMMANDS: dict[str, tuple] = {
    "init": (init.run, init.HELP),
    "budget": (budget.run, budget.HELP),
    "chat": (chat.run, chat.HELP),
    "notebook": (notebook.app,),
    "gen": (gen.app, gen_upkeep.app),  # one noun, its verbs in two modules
    "log": (log.app, log_data.app, log_import.app),  # one noun, its verbs in three modules
    "mount": (mount.app,),
    "resonate": (resonate.app,),
    "dream": (dream.run, dream.HELP),
    "merge": (merge.run, merge.HELP),
    "anchor": (anchor.app,),
    "evolve": (evolve.run, evolve.HELP),
    "schedule": (schedule.app,),
    "service": (service.app,),
    "status": (status.run, status.HELP),
    "store": (store.app,),
    "hands": (hands.run, hands.HELP),
    "serve": (serve.run, serve.HELP),
    "mcp": (serve.mcp, serve.MCP_HELP),
}


def app_for(args: list[str]) -> typer.Typer:
    """The app with the command `args` names, or with all of them (for the root's help and
    usage errors). Typer turns every registered signature into click options at start-up; a
    shell query should pay for one command, not fourteen."""
    named = command_named(args)
    app = new_app()
    app.callback()(root)
    for name, entry in COMMANDS.items():
        if named in COMMANDS and name != named:
            continue
        if isinstance(entry[0], typer.Typer):
            app.add_typer(_verbs(*entry), name=name)
        else:
            app.command(name, help=entry[1])(entry[0])
    return app


def finite_numbers(command) -> None:
    """Every number a flag or argument takes is finite: `nan`, `inf` and `-inf` are refused as
    a usage error by every command, at the root (range checks let NaN through, since every
    comparison with it is false)."""
    for param in command.params:
        param.process_value = _finite(param.process_value, param)
    for sub in getattr(command, "commands", {}).values():
        finite_numbers(sub)


def _finite(process, param):
    def checked(ctx, value):
        value = process(ctx, value)
        for number in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(number, float) and not math.isfinite(number):
                raise typer.BadParameter(f"{number} is not a finite number", ctx=ctx, param=param)
        return value

    return checked


def _verbs(first: typer.Typer, *more: typer.Typer) -> typer.Typer:
    """A noun's sub-app with the verbs of every module that defines some."""
    for other in more:
        for command in other.registered_commands:
            if command not in first.registered_commands:
                first.registered_commands.append(command)
    return first


_GLOBAL_FLAGS = {"--json", "-q", "--quiet", "-v", "--verbose"}
_GLOBAL_WITH_VALUE = {"--home"}


def hoist_global_flags(argv: list[str]) -> list[str]:
    """Move global flags written after the command to the front, where click expects them."""
    front, rest = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        if arg in _GLOBAL_FLAGS:
            front.append(arg)
        elif arg in _GLOBAL_WITH_VALUE and i + 1 < len(argv):
            front += [arg, argv[i + 1]]
            i += 1
        elif any(arg.startswith(flag + "=") for flag in _GLOBAL_WITH_VALUE):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


def command_named(args: list[str]) -> str | None:
    """The command in hoisted `args` (global flags first), if any."""
    i = 0
    while i < len(args):
        if args[i] in _GLOBAL_WITH_VALUE:
            i += 2
        elif args[i].startswith("-"):
            if args[i] == "--":
                return None
            i += 1
        else:
            return args[i]
    return None


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from soulctl.processes import keep_private

    keep_private()  # a soul home's state is its user's alone; named outputs keep the user's umask
    args = hoist_global_flags(list(sys.argv[1:] if argv is None else argv))
    sys.exit(run(args))


def run(args: list[str]) -> int:
    try:
        _check_utf8(args)
        try:
            command = typer.main.get_command(app_for(args))
            finite_numbers(command)
            result = command(args=args, prog_name="soulctl", standalone_mode=False)
        finally:
            state.close()
        code = result if isinstance(result, int) else 0
        sys.stdout.flush()
        return code
    except SoulError as exc:
        if state.out.verbose:
            _traceback()
        state.out.error(exc.message, exc.hint)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors: click's words, on one line
        ctx = getattr(exc, "ctx", None)
        path = ctx.command_path if ctx is not None else "soulctl"
        state.out.error(exc.format_message(), hint=f"see `{path} --help`")
        return exc.exit_code or EXIT_USAGE
    except (KeyboardInterrupt, typer.Abort):
        state.out.error("interrupted")
        return EXIT_INTERRUPTED
    except (BrokenPipeError, PipeClosed):
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # the machine's state (exit 8), else a bug: one line, traceback with -v
        refused = machine_state(exc)
        if refused is None:
            return _internal(exc)
        if state.out.verbose:
            _traceback()
        state.out.error(*refused)
        return EXIT_CANNOT_WRITE


# errno → (what it means, the fix); the text a library puts in its own exceptions, for those
# that do not raise OSError (DuckDB, tantivy, safetensors)
_MACHINE = {
    errno.ENOSPC: ("No space left on device", "the disk is full", "free some space and retry"),
    errno.EDQUOT: ("Disk quota exceeded", "the disk quota is used up", "free some space and retry"),
    errno.EROFS: ("Read-only file system", "the file system is read-only: reads work, writes do not",
                  "use a writable soul home"),
    errno.EFBIG: ("File too large", "a file reached its size limit (ulimit -f)", "raise the limit: ulimit -f unlimited"),
    errno.EACCES: ("Permission denied", "permission denied", "check the permissions of the soul home"),
    errno.EPERM: ("Operation not permitted", "operation not permitted", "check the permissions of the soul home"),
}


def machine_state(exc: BaseException) -> tuple[str, str] | None:
    """(message, hint) when `exc` — or what caused it — is the machine refusing: a full disk,
    a read-only file system, a file size limit, a permission; None for anything else."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in _MACHINE:
            _, why, fix = _MACHINE[exc.errno]
            where = exc.filename or "a file of the soul home"
            verb = "access" if exc.errno in (errno.EACCES, errno.EPERM) else "write"
            return f"cannot {verb} {where}: {why}", fix
        text = str(exc)
        for marker, why, fix in _MACHINE.values():
            if marker in text:
                return f"{why}: {text.strip().splitlines()[0][:200]}", fix
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _traceback() -> None:
    from soulctl.secrets import redact

    sys.stderr.write(redact(traceback.format_exc()))


def _internal(exc: BaseException) -> int:
    if state.out.verbose:
        _traceback()
    state.out.error(f"internal error: {type(exc).__name__}: {exc}",
                    hint="run again with -v for the traceback and report it")
    return EXIT_INTERNAL


def _check_utf8(args: list[str]) -> None:
    """Bytes that are not UTF-8 reach Python as lone surrogates: refuse them here, naming the
    argument, rather than deep in a library that cannot encode them."""
    from soulctl.errors import UsageError

    for arg in args:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError as exc:
            raw = arg.encode("utf-8", "surrogateescape")
            raise UsageError(f"argument {str(raw)[1:]} is not valid UTF-8 (byte {exc.start})",
                             hint="pass UTF-8 text (e.g. convert with iconv -t utf-8)") from None


def _silence_stdout() -> None:
    """After `| head` closes the pipe, point stdout at /dev/null so exit prints nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    main()
