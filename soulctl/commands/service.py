"""soulctl service: `soulctl serve` under the platform's supervisor (systemd, launchd)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from soulctl.cli import state

app = typer.Typer(help="Run `soulctl serve` as a service: restarted when it fails, following `current`.",
                  no_args_is_help=True)

Scheduler = Annotated[str, typer.Option("--scheduler", help="auto, systemd (a user service) or launchd.")]


@app.command("install")
def install(
    host: Annotated[str, typer.Option(help="Address to bind (anything but loopback needs --token-file).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.", min=1, max=65535)] = 8710,
    token_file: Annotated[Optional[Path], typer.Option("--token-file", help="The bearer token's file (chmod 600).")] = None,
    scheduler: Scheduler = "auto",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the unit; install nothing.")] = False,
) -> None:
    """Install and start the service: a systemd user service (Restart=on-failure) on Linux, a
    launchd agent (KeepAlive) on macOS. Output goes to data/serve.log. Replaces this home's
    previous service.

    Example:

      soulctl service install --port 8710 --dry-run
    """
    import shlex

    from soulctl import platform
    from soulctl.errors import Unavailable, UsageError
    from soulctl.serve import service
    from soulctl.serve.gate import is_loopback, read_token

    home = state.home()
    if token_file is None and not is_loopback(host):
        raise UsageError(f"a service on {host} needs a token", hint="give --token-file FILE, or bind 127.0.0.1")
    if token_file is not None:
        read_token(token_file)  # missing, open to others or not a token: refused now, not in a crash loop
    picked = platform.pick(scheduler, ("auto", "systemd", "launchd", "cron"))
    command = shlex.join(service.serve_command(home, host, port, token_file))
    if scheduler == "auto" and picked == "cron":  # no supervisor runs here
        if not dry_run:
            raise Unavailable(f"cannot install a service: {platform.absent('systemd')}",
                              hint=f"run it under a supervisor of your own: {command}")
        picked = platform.native()
    unit = service.unit(home, picked, host, port, token_file)
    if dry_run:
        preview = platform.preview(unit)
        if why := platform.absent(unit.scheduler):
            preview["unavailable"] = why
            state.out.warn(f"{why}: this unit cannot be installed here; run `{command}` under a supervisor "
                           "of your own instead")
        state.out.record(preview, id_key="name", human=platform.preview_text)
        return
    record = platform.install(home, unit)
    state.out.record(record, id_key="name", human=lambda r: (
        f"installed {r['name']} ({r['scheduler']}): serving at {r['details']['url']}; output → {r['log']}"))


@app.command("remove")
def remove() -> None:
    """Stop the service and remove its unit."""
    from soulctl import platform

    record = platform.remove(state.home(), "service")
    state.out.record({"removed": record["name"], "scheduler": record["scheduler"]}, id_key="removed",
                     human=lambda r: f"removed {r['removed']} ({r['scheduler']})")


@app.command("status")
def status() -> None:
    """Whether the service is installed and running (see also `soulctl status`)."""
    from soulctl.serve import service

    record = service.status(state.home())
    state.out.record(record, id_key="name", human=lambda r: (
        f"{r['name']} ({r['scheduler']}): {'running' if r['active'] else 'not running' if r['active'] is False else 'installed'}"
        f" at {r['url']}" if r["installed"] else "no service installed (soulctl service install)"))
