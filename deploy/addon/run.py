"""Start ``selflearn serve`` with the add-on's options.

The Supervisor writes the options a user set on the add-on's Configuration tab to
``/data/options.json`` (validated against config.yaml's ``schema``) and keeps ``/data`` across
restarts and updates: the store (``/data/logs.duckdb``) and the admin token live there.

The service listens on every interface of the add-on's container, so it needs an admin token:
the one in the options, else one generated at the first start and kept in ``/data/admin_token``.
The log shows it at every start; give the same token to the Home Assistant integration.

Only the standard library: this runs with the image's Python before selflearn starts.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

CONFIRM = ("off", "guesses", "unconfirmed", "all")
DEFAULTS: dict[str, Any] = {"admin_token": "", "confirm": "guesses", "ask_to_be_taught": False}


class OptionsError(ValueError):
    """An option the add-on cannot start with; the message names it."""


def read_options(path: Path) -> dict[str, Any]:
    """The add-on's options (``DEFAULTS`` for the ones not given); a clear error for bad ones."""
    if not path.exists():
        given: dict[str, Any] = {}
    else:
        try:
            given = json.loads(path.read_text(encoding="utf-8") or "{}")
        except json.JSONDecodeError as exc:
            raise OptionsError(f"{path}: not JSON ({exc})") from exc
        if not isinstance(given, dict):
            raise OptionsError(f"{path}: expected an object of options, got {type(given).__name__}")
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise OptionsError(f"{path}: unknown option {', '.join(unknown)} (known: {', '.join(DEFAULTS)})")
    options = DEFAULTS | {k: v for k, v in given.items() if v is not None}
    if options["confirm"] not in CONFIRM:
        raise OptionsError(f"{path}: confirm is {options['confirm']!r}; one of {', '.join(CONFIRM)}")
    if not isinstance(options["ask_to_be_taught"], bool):
        raise OptionsError(f"{path}: ask_to_be_taught must be true or false")
    if not isinstance(options["admin_token"], str):
        raise OptionsError(f"{path}: admin_token must be a string")
    return options


def admin_token(options: dict[str, Any], data: Path) -> tuple[str, str]:
    """The admin token and where it came from: the options, or ``data/admin_token`` (written with
    a new random token at the first start)."""
    chosen = options["admin_token"].strip()
    if chosen:
        return chosen, "the add-on's options"
    kept = data / "admin_token"
    known = kept.read_text(encoding="utf-8").strip() if kept.exists() else ""
    if known:
        return known, f"{kept}"
    token = secrets.token_hex(16)
    kept.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token + "\n")
    return token, f"generated now, kept in {kept}"


def serve_argv(options: dict[str, Any], data: Path, port: int) -> list[str]:
    """The ``selflearn serve`` command line for these options (the token goes in the environment,
    not on the command line other processes can read)."""
    taught = "--ask-to-be-taught" if options["ask_to_be_taught"] else "--no-ask-to-be-taught"
    return [
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        str(port),
        "--store",
        str(data / "logs.duckdb"),
        "--confirm",
        options["confirm"],
        taught,
    ]


def main() -> None:
    data = Path(os.environ.get("SELFLEARN_ADDON_DATA", "/data"))
    port = int(os.environ.get("SELFLEARN_ADDON_PORT", "8080"))  # the Supervisor maps 8080 itself
    try:
        options = read_options(data / "options.json")
    except OptionsError as exc:
        sys.exit(f"selflearn add-on: {exc}")
    token, source = admin_token(options, data)
    print(f"selflearn add-on: admin token ({source}): {token}", flush=True)
    print("selflearn add-on: give the integration this token and the URL http://<this host>:8080", flush=True)
    selflearn = str(Path(sys.executable).with_name("selflearn"))
    env = dict(os.environ, SELFLEARN_ADMIN_TOKEN=token)
    os.execve(selflearn, [selflearn, *serve_argv(options, data, port)], env)


if __name__ == "__main__":
    main()
