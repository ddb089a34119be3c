"""The Home Assistant OS add-on (deploy/addon): its options become a ``selflearn serve`` command
line the real CLI accepts, the admin token is generated once and kept, bad options are named, and
config.yaml, build.yaml, repository.yaml and run.py agree with each other and with the package.
(The image itself is built and run by ``bench/install.py --image``.)"""

from __future__ import annotations

import importlib.util
import json
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import typer
import yaml

from selflearn.cli import app

ROOT = Path(__file__).resolve().parent.parent
ADDON = ROOT / "deploy" / "addon"


@pytest.fixture(scope="module")
def run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("addon_run", ADDON / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ADDON / "config.yaml").read_text(encoding="utf-8"))
    return loaded


def _options(tmp_path: Path, **given: object) -> Path:
    path = tmp_path / "options.json"
    path.write_text(json.dumps(given), encoding="utf-8")
    return path


def test_options_become_a_command_line_the_cli_accepts(run: ModuleType, tmp_path: Path) -> None:
    options = run.read_options(_options(tmp_path, confirm="all", ask_to_be_taught=True, admin_token=""))
    argv = run.serve_argv(options, tmp_path, 8080)
    assert argv[argv.index("--confirm") + 1] == "all" and "--ask-to-be-taught" in argv
    assert argv[argv.index("--store") + 1] == str(tmp_path / "logs.duckdb")
    serve = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    ctx = serve.make_context("serve", argv[1:])  # parses every flag as the real command would
    assert ctx.params["confirm"] == "all" and ctx.params["ask_to_be_taught"] is True
    assert ctx.params["host"] == "0.0.0.0" and ctx.params["port"] == 8080
    assert ctx.params["admin_token"] is None  # the token travels in the environment, not in argv
    defaults = run.read_options(tmp_path / "absent.json")
    plain = serve.make_context("serve", run.serve_argv(defaults, tmp_path, 8080)[1:])
    assert plain.params["confirm"] == "guesses" and plain.params["ask_to_be_taught"] is False


def test_bad_options_are_named(run: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(run.OptionsError, match="confirm is 'maybe'; one of off, guesses"):
        run.read_options(_options(tmp_path, confirm="maybe"))
    with pytest.raises(run.OptionsError, match="unknown option port"):
        run.read_options(_options(tmp_path, port=9000))
    with pytest.raises(run.OptionsError, match="ask_to_be_taught must be true or false"):
        run.read_options(_options(tmp_path, ask_to_be_taught="yes"))
    bad = tmp_path / "options.json"
    bad.write_text("{confirm: all", encoding="utf-8")
    with pytest.raises(run.OptionsError, match=r"options\.json: not JSON"):
        run.read_options(bad)


def test_token_generated_once_kept_private_and_the_options_win(run: ModuleType, tmp_path: Path) -> None:
    options = run.read_options(_options(tmp_path))
    first, source = run.admin_token(options, tmp_path)
    assert len(first) == 32 and source.startswith("generated now")
    kept = tmp_path / "admin_token"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    again, source = run.admin_token(options, tmp_path)
    assert again == first and source == str(kept)
    chosen, source = run.admin_token(run.read_options(_options(tmp_path, admin_token=" s3cret ")), tmp_path)
    assert (chosen, source) == ("s3cret", "the add-on's options")


def test_a_bad_options_file_stops_the_start_with_its_name(tmp_path: Path) -> None:
    _options(tmp_path, confirm="sometimes")
    env = {"SELFLEARN_ADDON_DATA": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, str(ADDON / "run.py")], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1
    assert "selflearn add-on:" in done.stderr and "confirm is 'sometimes'" in done.stderr
    assert not (tmp_path / "admin_token").exists()


def test_config_agrees_with_run_and_the_package(run: ModuleType, config: dict[str, Any]) -> None:
    assert set(config["options"]) == set(config["schema"]) == set(run.DEFAULTS)
    assert config["options"] == run.DEFAULTS
    assert config["schema"]["confirm"] == f"list({'|'.join(run.CONFIRM)})"
    assert config["schema"]["admin_token"] == "password?" and config["schema"]["ask_to_be_taught"] == "bool"
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert config["version"] == version
    build = yaml.safe_load((ADDON / "build.yaml").read_text(encoding="utf-8"))
    assert build["args"]["SELFLEARN_SOURCE"] == f"selflearn[train]=={version}"  # it mines and trains too
    assert sorted(build["build_from"]) == sorted(config["arch"])
    assert all(image.endswith("-base-debian:bookworm") for image in build["build_from"].values())
    assert config["ports"] == {"8080/tcp": 8080} and "[PORT:8080]" in config["webui"]
    for field in ("name", "version", "slug", "description", "arch"):  # the Supervisor requires these
        assert config.get(field), field
    assert "ARG BUILD_FROM" in (ADDON / "Dockerfile").read_text(encoding="utf-8")


def test_the_supervisor_finds_this_one_addon(config: dict[str, Any]) -> None:
    """The Supervisor reads repository.yaml at the root and every ``config.{json,yaml,yml}`` below
    it (outside hidden folders and ``rootfs``): only the add-on's must be there."""
    repository = yaml.safe_load((ROOT / "repository.yaml").read_text(encoding="utf-8"))
    assert repository["name"] and repository["url"].startswith("https://")
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    found = [
        p
        for p in tracked
        if Path(p).stem == "config"
        and Path(p).suffix in (".json", ".yaml", ".yml")
        and not any(part.startswith(".") or part == "rootfs" for part in Path(p).parts)
    ]
    assert found == ["deploy/addon/config.yaml"]
