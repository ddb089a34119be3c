"""How the service runs: :class:`ServiceConfig` and the service's constants (limits, id patterns,
latency buckets)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from selflearn.core.errors import ConfigError

ID_PATTERN = r"^[A-Za-z0-9_.:\-]+$"
"""Household and user ids, as in the log schema."""

MAX_NBEST_ITEMS = 10
"""Alternative hypotheses a rewrite request may carry."""

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 1.0)


@dataclass(frozen=True)
class ServiceConfig:
    """How the service runs. Paths may be given as strings."""

    rewriter: Path | None = None
    """Rewriter folder (``selflearn train rewriter``); None: pass every request through."""
    store: Path | None = None
    """DuckDB store that ``POST /v1/turns`` writes to; None: turns only feed the personal layer."""
    max_body_bytes: int = 4 * 1024 * 1024
    """Largest request body accepted (413 above)."""
    max_batch_rows: int = 10_000
    """Most records in one ``POST /v1/turns`` (413 above)."""
    request_timeout_ms: float = 50.0
    """A rewrite decision not ready after this long is answered with the original text."""
    decision_threads: int = 1
    """Threads that decide rewrites (one decides at a time). With 1 or more, the answer comes at
    the timeout even while a slow decision still runs, and the parts of a decision that release
    the interpreter lock (LightGBM, faiss, the tokenizer) overlap with the HTTP work of other
    requests. 0: decide on the event loop, which saves a thread hand-off per request (best for a
    table-only rewriter); a decision that ends after the timeout is then answered with the
    original text when it ends."""
    watch_s: float | None = None
    """Poll the rewriter folder every this many seconds and reload when its ``model.json``
    changes (None: reload only through ``POST /v1/admin/reload``)."""
    admin_token: str | None = None
    """When set, every endpoint that reads or changes what the service holds about a household or
    runs it -- ``/v1/admin/*``, ``/v1/turns``, ``/v1/homes``, ``/v1/households``, ``/v1/users``,
    ``/v1/concepts``, ``/v1/dialogue``, ``/v1/reviews`` and the review page -- needs
    ``Authorization: Bearer <token>`` (``POST /v1/rewrite``, ``/healthz`` and ``/metrics`` stay
    open). ``selflearn serve`` refuses to listen beyond loopback without one."""
    models_dir: Path | None = None
    """The folder ``POST /v1/admin/reload`` may load rewriter folders from (anything else is a
    403). Default: the folder holding :attr:`rewriter`; with neither, only a reload of the
    configured folder is possible."""
    snapshot_dir: Path | None = None
    """The folder ``POST /v1/admin/snapshot`` may write into (anything else is a 403). Default:
    the folder holding :attr:`store`."""
    rate_limit: float | None = None
    """Requests per second one client (one IP address) may send, on average (``/healthz`` and
    ``/metrics`` are not counted); above it, 429 with ``Retry-After``. None: no limit (behind a
    proxy every client has the proxy's address: limit there instead)."""
    rate_burst: int | None = None
    """Requests one client may send at once above :attr:`rate_limit` (default: twice the rate,
    at least 10)."""
    shed_lag_ms: float | None = None
    """Shed load when the event loop runs this far behind (measured every 10 ms, smoothed): a
    rewrite is answered at once with the original text (``fail_open``, reason ``overloaded``),
    other requests with 429 and ``Retry-After``, instead of waiting in a growing queue; and a
    ``POST /v1/turns`` batch with 429 when the batches already in the service would hold the store
    this long (they wait in threads, where the event loop's lag does not show them). None: never
    shed."""
    quarantine: Path | None = None
    """Append rejected ``/v1/turns`` records to this JSON-lines file (they are always returned
    in the response)."""
    rebuild: bool = True
    """At start, rebuild what the households taught the service from its store: replay the
    stored turns and feedback into the personal layer (its names, fixes and the answers to "Did
    you mean ...?"), and take the taught concepts and the refusals to teach (off: start empty)."""
    replay_days: float | None = None
    """With :attr:`rebuild`: replay only the store's last this many days (None: all of it)."""
    confirm: str = "guesses"
    """When the rewriter asks instead of acting (``RewriterConfig.confirm``: ``off``,
    ``guesses``, ``unconfirmed`` or ``all``). ``POST /v1/dialogue`` asks "Did you mean ...?";
    ``POST /v1/rewrite`` answers a question with ``text`` the original and a ``confirm`` object,
    so a client that cannot ask acts on no guess (docs/dialogue.md)."""
    dialogue_timeout_ms: float = 200.0
    """An utterance not decided by then is answered ``pass`` (the dialogue runs Home
    Assistant's matcher on failed requests: slower than a rewrite alone)."""
    teach_moments: bool = True
    """Ask to be taught at teachable moments ("I don't know what *mothership* is. Can you teach
    me?"); off: only teaching commands teach ("the big light is the floor lamp")."""
    dialogue_warmup: bool = False
    """Load the dialogue's copy of Home Assistant's matcher at start, in the background (a few
    seconds; ``selflearn serve`` turns it on); otherwise on the first ``POST /v1/dialogue``."""
    store_reopen_batches: int = 5_000
    """Close the store and open it again after this many ``POST /v1/turns`` batches (0: never).
    DuckDB's memory grows with the queries one open database runs (about 1 KB a batch of turns,
    still growing after 70,000 batches, measured) and a new one starts from nothing; a reopen
    takes about 50 ms under the store's lock (docs/reliability.md#load-soak-and-burst)."""
    home_cache: int = 1024
    """Inline home configurations kept parsed (requests repeating one reuse the parsed home)."""
    freeze_gc: bool = False
    """After each load, move every object then alive out of the cyclic garbage collector's reach
    (``gc.freeze``): a large index holds millions of Python objects, and a full collection over
    them stalls every request for a fraction of a second or more. Process-wide, so off by default
    and on in ``selflearn serve``, which owns its process."""

    def __post_init__(self) -> None:
        for name in ("rewriter", "store", "quarantine", "models_dir", "snapshot_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        checks = [
            (self.max_body_bytes >= 1024, f"max_body_bytes must be at least 1024, not {self.max_body_bytes}"),
            (self.max_batch_rows >= 1, f"max_batch_rows must be at least 1, not {self.max_batch_rows}"),
            (
                self.request_timeout_ms > 0,
                f"request_timeout_ms must be positive, not {self.request_timeout_ms}",
            ),
            (
                self.confirm in ("off", "guesses", "unconfirmed", "all"),
                f"confirm must be off, guesses, unconfirmed or all, not {self.confirm!r}",
            ),
            (self.decision_threads >= 0, f"decision_threads must be 0 or more, not {self.decision_threads}"),
            (self.watch_s is None or self.watch_s > 0, f"watch_s must be positive, not {self.watch_s}"),
            (
                self.replay_days is None or self.replay_days > 0,
                f"replay_days must be positive, not {self.replay_days}",
            ),
            (
                self.dialogue_timeout_ms > 0,
                f"dialogue_timeout_ms must be positive, not {self.dialogue_timeout_ms}",
            ),
            (self.home_cache >= 1, f"home_cache must be at least 1, not {self.home_cache}"),
            (
                self.admin_token is None or len(self.admin_token) >= 8,
                "admin_token must have at least 8 characters",
            ),
            (
                self.admin_token is None or self.admin_token.lower() not in PLACEHOLDER_TOKENS,
                f"admin_token {self.admin_token!r} is a placeholder from an example: choose a secret one",
            ),
            (
                self.rate_limit is None or self.rate_limit > 0,
                f"rate_limit must be positive, not {self.rate_limit}",
            ),
            (
                self.rate_burst is None or self.rate_burst >= 1,
                f"rate_burst must be at least 1, not {self.rate_burst}",
            ),
            (
                self.shed_lag_ms is None or self.shed_lag_ms > 0,
                f"shed_lag_ms must be positive, not {self.shed_lag_ms}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.watch_s is not None and self.rewriter is None:
            raise ConfigError("watch_s needs a rewriter folder to watch")

    @property
    def reload_root(self) -> Path | None:
        """The folder reloads may load from (:attr:`models_dir`, else the rewriter's parent)."""
        if self.models_dir is not None:
            return self.models_dir
        return self.rewriter.parent if self.rewriter is not None else None

    @property
    def snapshot_root(self) -> Path | None:
        """The folder snapshots may be written into (:attr:`snapshot_dir`, else the store's)."""
        if self.snapshot_dir is not None:
            return self.snapshot_dir
        return self.store.parent if self.store is not None else None

    @property
    def burst(self) -> int:
        """Requests one client may send at once (see :attr:`rate_burst`)."""
        if self.rate_burst is not None:
            return self.rate_burst
        return max(10, int(2 * (self.rate_limit or 0)))


PLACEHOLDER_TOKENS = frozenset({"change-me", "changeme", "password", "secret-token", "your-token"})
"""Tokens from examples, refused as admin tokens."""


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` reaches only this machine (``localhost``, 127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def check_exposure(host: str, admin_token: str | None) -> None:
    """Refuse (``ConfigError``) to listen beyond loopback without an admin token: anyone who can
    reach the port could read and delete what households taught, post turns, and reload or
    snapshot on the service's machine."""
    if admin_token is None and not is_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host} without an admin token: anyone who can reach the port could "
            "read the homes, post turns and run the admin endpoints. Set --admin-token (or "
            "SELFLEARN_ADMIN_TOKEN) to a secret, or listen on 127.0.0.1"
        )
