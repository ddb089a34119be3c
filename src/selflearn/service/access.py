"""What several groups of routes share: the admin token check and work on the store under its lock.

It knows the service only as :class:`HoldsStore` (its configuration, its store and the store's
lock), so the modules that hold the service's state (:mod:`selflearn.service.state`,
:mod:`selflearn.service.dialogue`) can use it without it importing them back.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

import duckdb
from fastapi import HTTPException, Request

from selflearn.core.errors import SelflearnError, StoreError
from selflearn.core.schema import Concept
from selflearn.core.store import Store
from selflearn.service.config import ServiceConfig

_T = TypeVar("_T")


class StoreClosed(Exception):
    """The store was closed while a request wanted it."""


class HoldsStore(Protocol):
    """What access needs of the service (:class:`selflearn.service.state.Service`)."""

    @property
    def config(self) -> ServiceConfig:
        """The service's configuration (its admin token, its store's path)."""

    @property
    def store(self) -> Store | None:
        """The open store (``None``: none, or closed)."""

    @property
    def store_error(self) -> str | None:
        """Why the store is not open, if it failed."""

    @property
    def store_lock(self) -> threading.Lock:
        """Held while the store is used."""


class CurrentStore:
    """The service's store as it is open at the moment of each write, for a writer that outlives
    a reopen (``ServiceConfig.store_reopen_batches`` closes the store and opens a new one): the
    dialogue's concept book, which held the store it was given and, after the first reopen, wrote
    what households taught to a closed connection. Not under :attr:`HoldsStore.store_lock`: the
    dialogue writes while holding its conversations' lock, and the paths that forget a household
    take the two the other way round; the store writes concepts on a connection of their own, so
    a write beside another thread's turns neither waits nor fails."""

    REOPEN_WAIT_S = 2.0
    """How long a write that met a reopen waits for the new store (opening one takes milliseconds)."""

    def __init__(self, service: HoldsStore) -> None:
        self.service = service

    def put_concept(self, concept: Concept) -> Concept | None:
        return self._write(lambda store: store.put_concept(concept))

    def forget_concept(self, concept_id: str) -> bool:
        return self._write(lambda store: store.forget_concept(concept_id))

    def _write(self, work: Callable[[Store], _T]) -> _T:
        """``work`` on the store open now; when a reopen closed that store first (between the
        write taking it and writing), on the store opened in its place."""
        store = open_store(self.service)
        try:
            return work(store)
        except (StoreError, duckdb.ConnectionException):
            if not store.closed:
                raise
        deadline = time.monotonic() + self.REOPEN_WAIT_S
        while self.service.store is store and time.monotonic() < deadline:
            time.sleep(0.005)  # the reopen keeps the closed store in place until the new one is open
        return work(open_store(self.service))


def open_store(service: HoldsStore) -> Store:
    """The service's store as it is open now; :class:`StoreClosed` (with why) when it is not."""
    store = service.store
    if store is None:
        raise StoreClosed(service.store_error or "the store is closed (the service is shutting down)")
    return store


def bearer_ok(config: ServiceConfig, request: Request) -> bool:
    """Whether ``request`` may use the admin endpoints: the service has no admin token, or the
    request carries it as ``Authorization: Bearer <token>``."""
    token = config.admin_token
    if token is None:
        return True
    given = request.headers.get("authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def anonymous(household_id: str) -> str:
    """The household a request without the admin token is decided for: no household's own --
    not a valid id (``A-Za-z0-9_.:-``), so no memory was ever learned for it -- yet one per
    household, so the request is still read in its home. A caller who knows a household's id
    but not the token learns nothing of what the household said (issue 53)."""
    return f"{household_id} (without the admin token)"


def check_admin(config: ServiceConfig, request: Request) -> None:
    """401 unless :func:`bearer_ok`."""
    if not bearer_ok(config, request):
        raise HTTPException(
            401, "admin endpoints need 'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"}
        )


def require_token(request: Request) -> None:
    """FastAPI dependency of the routes that read or change what the service holds about a
    household, or run it: 401 unless :func:`bearer_ok` (nothing to check without a token)."""
    service: HoldsStore = request.app.state.service
    if not bearer_ok(service.config, request):
        raise HTTPException(
            401,
            "this endpoint needs 'Authorization: Bearer <token>' (the service's admin token)",
            {"WWW-Authenticate": "Bearer"},
        )


def on_store(service: HoldsStore, work: Callable[[Store], _T], what: str = "taught concepts") -> _T:
    """``work`` done on the service's store under its lock (409 without a store -- "so no
    ``what``" --, 503 when it is unusable or closed)."""
    if service.config.store is None:
        raise HTTPException(409, f"the service has no store, so no {what} (start it with --store)")
    try:
        with service.store_lock:
            return work(open_store(service))
    except (SelflearnError, StoreClosed, duckdb.Error) as exc:
        raise HTTPException(503, f"store unavailable: {exc}") from exc


__all__ = [
    "CurrentStore",
    "HoldsStore",
    "StoreClosed",
    "bearer_ok",
    "check_admin",
    "on_store",
    "open_store",
    "require_token",
]
