"""Where ``selflearn wyoming`` gets the home it answers for: a file, a store, or a running
``selflearn serve`` (:func:`load_home`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml

from selflearn.core.errors import ConfigError, SelflearnError, StoreError
from selflearn.core.home import Home, read_home_text

log = logging.getLogger("selflearn.integrations.wyoming")

__all__ = ["load_home", "load_home_file", "load_service_home", "load_store_home"]


def load_home_file(path: Path) -> Home:
    """A home from a YAML or JSON file in the shape of :meth:`Home.to_dict`."""
    raw = read_home_text(path)
    try:
        data = json.loads(raw) if path.suffix.lower() == ".json" else yaml.safe_load(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"home file {path} is not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"home file {path} must hold a mapping with areas and entities (see Home.to_dict)")
    return _home_from(data, str(path))


def load_store_home(store: Path, household_id: str | None) -> Home | None:
    """The home of ``household_id`` in the store's ``homes`` table (``None`` if it has none);
    without a household id, the store's only home."""
    from selflearn.core.store import Store

    try:
        with Store(store, read_only=True) as opened:
            rows = opened.rows("SELECT home_id, config FROM homes ORDER BY home_id")
    except StoreError as exc:
        raise StoreError(
            f"{exc} (a store another process writes, e.g. `selflearn serve --store`, cannot be opened: "
            "save the home from GET /v1/homes/ID to a file and pass --home)"
        ) from exc
    if household_id is None:
        if len(rows) != 1:
            raise ConfigError(
                f"store {store} holds {len(rows)} homes; name one with --household-id"
                + (f" (e.g. {rows[0]['home_id']})" if rows else "")
            )
        return _home_from(json.loads(rows[0]["config"]), f"{store} (home {rows[0]['home_id']})")
    for row in rows:
        if str(row["home_id"]) == household_id:
            return _home_from(json.loads(row["config"]), f"{store} (home {household_id})")
    return None


def _home_from(data: dict[str, Any], where: str) -> Home:
    try:
        return Home.from_dict(data)
    except SelflearnError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{where}: not a home configuration ({type(exc).__name__}: {exc})") from exc


def load_service_home(url: str, household_id: str | None, timeout_s: float = 10.0) -> Home:
    """The home a running ``selflearn serve`` holds for the household (``GET /v1/homes/{id}``):
    the one the Home Assistant integration keeps in sync with Home Assistant's registries."""
    import httpx

    if not household_id:
        raise ConfigError(
            "--service needs --household-id (the integration's household id, e.g. ha-1a2b3c4d5e6f)"
        )
    where = f"{url.rstrip('/')}/v1/homes/{household_id}"
    try:
        res = httpx.get(where, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise ConfigError(f"cannot read the home from {where}: {type(exc).__name__}: {exc}") from exc
    if res.status_code == 404:
        raise ConfigError(
            f"{where}: the service has no home for {household_id!r} (is the integration set up?)"
        )
    if res.status_code != 200:
        raise ConfigError(f"{where}: HTTP {res.status_code}: {res.text[:200]}")
    try:
        data = res.json()
    except ValueError as exc:
        raise ConfigError(f"{where}: not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a home object, got {type(data).__name__}")
    return _home_from({**data, "home_id": household_id}, where)


def load_home(
    home_file: Path | None, store: Path | None, household_id: str | None, service: str | None = None
) -> Home:
    """The home to answer for: the service's home of the household if ``service`` is given;
    else the store's home of the household when it has one, else the file.

    The household is ``household_id``, else the file's ``home_id``, else (store only) the
    store's only home."""
    if service is not None:
        return load_service_home(service, household_id)
    if home_file is None and store is None:
        raise ConfigError(
            "give --home FILE, --store FILE or --service URL: the NLU needs the home's areas and entities"
        )
    from_file = load_home_file(home_file) if home_file is not None else None
    if store is not None:
        wanted = household_id or (from_file.home_id if from_file is not None else None)
        found = load_store_home(store, wanted)
        if found is not None:
            return found
        if from_file is None:
            raise ConfigError(f"store {store} has no home for household {wanted!r} (table homes)")
        log.info("store %s has no home for %s; using %s", store, wanted, home_file)
    assert from_file is not None
    return from_file
