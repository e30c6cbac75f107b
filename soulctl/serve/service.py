"""`soulctl serve` as a service of the platform's supervisor (platform.py): a systemd user
service with Restart=on-failure on Linux, a launchd agent with KeepAlive on macOS. It starts
at login (or boot, with lingering), is restarted when it fails, and follows `current` on its
own (follow.py), so it wakes each morning as the newest generation. Output: data/serve.log.
"""

from __future__ import annotations

from pathlib import Path

from soulctl import platform
from soulctl.errors import InvalidInput
from soulctl.home import Home
from soulctl.platform import unittext

KIND = "service"


def unit(home: Home, scheduler: str, host: str = "127.0.0.1", port: int = 8710,
         token_file: Path | None = None) -> platform.Unit:
    if scheduler not in ("systemd", "launchd"):
        raise InvalidInput("a service needs a supervisor that restarts it: systemd (a user manager) or launchd",
                           hint="on Linux start a user manager (loginctl enable-linger $USER), "
                                "or pass --scheduler systemd")
    root = home.root.resolve()
    command = serve_command(home, host, port, token_file)
    name = platform.unit_name("serve", home)
    log = str(root / "data" / "serve.log")
    service = platform.Unit(KIND, scheduler, name, command, log,
                            details={"host": host, "port": port, "url": f"http://{host}:{port}/v1"})
    if scheduler == "systemd":
        service.files[str(platform.systemd_dir() / f"{name}.service")] = unittext.systemd_service(
            f"soulctl serve for {root}", root, command, log, supervised=True)
    else:
        label = name.replace("soulctl-serve-", "ai.soulctl.serve.")
        service.files[str(platform.launch_agents_dir() / f"{label}.plist")] = unittext.launchd_plist(
            label, command, root, log, keep_alive=True)
    return service


def serve_command(home: Home, host: str, port: int, token_file: Path | None) -> list[str]:
    """The `serve` command line a supervisor runs (the service's, or the user's own)."""
    args = ["serve", "--host", host, "--port", str(port)]
    if token_file is not None:
        args += ["--token-file", str(Path(token_file).expanduser().resolve())]
    return platform.soulctl_command(home, *args)


def status(home: Home) -> dict:
    record = platform.installed(home, KIND)
    if record is None:
        return {"installed": False}
    return {"installed": True, "name": record["name"], "scheduler": record["scheduler"],
            "active": platform.active(record), **record["details"], "log": record["log"]}
