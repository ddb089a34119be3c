"""The service's state: :class:`Service` (the serving rewriter and its reloads, homes, ingest,
forgetting, health) and the helpers it needs."""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
from pydantic import ValidationError

from selflearn.core.artefacts import DESCRIPTION
from selflearn.core.errors import ConfigError, SelflearnError, StoreError
from selflearn.core.home import Home
from selflearn.core.hooks import RewriteContext
from selflearn.core.schema import LOG_RECORD, DialogueAct, Feedback, Review, Turn
from selflearn.core.store import Quarantined, Store, error_field, scrub_lines
from selflearn.dialogue.concepts import command_shape
from selflearn.rewrite.logs import history
from selflearn.rewrite.review import Reviews
from selflearn.rewrite.rewriter import RewriteDecision, Rewriter, RewriterConfig
from selflearn.service.access import StoreClosed, open_store
from selflearn.service.config import ServiceConfig
from selflearn.service.dialogue import SWEEP_S, ServiceDialogue
from selflearn.service.metrics import _Metrics
from selflearn.service.models import (
    ForgetResponse,
    HealthResponse,
    HomeConfig,
    RejectedRow,
    TurnsResponse,
    UserForgetResponse,
)

LogRecord = Turn | Feedback | DialogueAct

log = logging.getLogger("selflearn.service")  # the package's logger, as before the split

# --- state -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifact:
    """The rewriter serving requests, and how it got there."""

    rewriter: Rewriter
    ok: bool
    """False: a placeholder that only learns; requests pass through."""
    version: str | None
    folder: Path | None
    error: str | None
    loaded_at: datetime
    load_seconds: float = 0.0
    parts: dict[str, bool] = field(default_factory=dict)


class ReloadBusy(Exception):
    """A reload is already running."""


class Service:
    """Everything one app holds: the serving artefact, the store, locks, executors, metrics."""

    def __init__(self, config: ServiceConfig, rewriter: Rewriter | None = None) -> None:
        self.config = config
        self.started = time.monotonic()
        self.metrics = _Metrics()
        self.lock = threading.Lock()
        """Guards the rewriter: decisions, learning, homes, forgetting, the swap."""
        self.store_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self.executor = (
            ThreadPoolExecutor(config.decision_threads, thread_name_prefix="selflearn-decide")
            if config.decision_threads > 0
            else None
        )
        self.reloader = ThreadPoolExecutor(1, thread_name_prefix="selflearn-reload")
        self.last_reload_error: str | None = None
        self.lag_ms = 0.0
        """How far behind the event loop runs, smoothed (kept when ``shed_lag_ms`` is set)."""
        self.ingests = 0
        """``POST /v1/turns`` batches in the service now, waiting for the store or being stored
        (counted on the event loop)."""
        self.ingest_ms = 0.0
        """How long one batch takes to store and learn once it has the store, smoothed: times
        :attr:`ingests`, how long a new batch would wait (what load shedding reads)."""
        self.store_batches = 0
        """Batches stored since the store was last opened (:meth:`_reopen_store`)."""
        self._homes: OrderedDict[bytes, Home] = OrderedDict()
        self._watcher: threading.Thread | None = None
        self.store: Store | None = None
        self.store_error: str | None = None
        if config.store is not None:
            try:
                self.store = Store(config.store)
            except Exception as exc:  # the rewrite path must not depend on the store
                self.store_error = f"store {config.store} failed to open: {exc}"
                log.error("%s -- POST /v1/turns answers 503", self.store_error)
        if rewriter is not None:
            self.artifact = Artifact(rewriter, True, _version_of(rewriter, None), rewriter.path, None, _now())
            self.artifact = replace(self.artifact, parts=_parts(rewriter))
        elif config.rewriter is None:
            self.artifact = Artifact(
                self._placeholder(), False, None, None, "no rewriter folder configured", _now()
            )
        else:
            try:
                self.artifact = self._load(config.rewriter, None)
                self.metrics.reloads.labels("ok").inc()
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, SelflearnError) else str(exc)
                log.error("rewriter failed to load: %s -- passing requests through", message)
                self.metrics.reloads.labels("error").inc()
                self.artifact = Artifact(
                    self._placeholder(),
                    False,
                    None,
                    config.rewriter,
                    f"rewriter failed to load: {message}",
                    _now(),
                )
        self._publish(self.artifact, None)
        self.talk = ServiceDialogue(self)
        """The dialogue: questions waiting per conversation, what households taught
        (``POST /v1/dialogue``)."""
        self.rebuilt: dict[str, float] = {}
        """What the start rebuilt from the store (records replayed, concepts, refusals, seconds)."""
        self._sweeper: threading.Thread | None = None
        if self.store is not None:
            try:
                self._load_homes()
                self.artifact.rewriter.reviews_ = Reviews.of(self.store.reviews())
                if config.rebuild:
                    self._rebuild(config.replay_days)
            except Exception as exc:  # a store that opens but cannot be read: serve without it
                self.store_error = f"store {config.store} could not be read: {type(exc).__name__}: {exc}"
                log.error("%s -- POST /v1/turns answers 503", self.store_error)
                self.store.close()
                self.store = None
        self._freeze()
        self.metrics.households.set_function(lambda: len(self.artifact.rewriter.personal.memories))

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start timing garbage collections, the folder watcher (when configured), the sweep of
        unanswered questions and (when configured) loading the dialogue's matcher."""
        if self.metrics.on_gc not in gc.callbacks:
            gc.callbacks.append(self.metrics.on_gc)
        if self.config.watch_s is not None and self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="selflearn-watch", daemon=True)
            self._watcher.start()
        if self.config.dialogue_warmup and not self.talk.ready.is_set():
            self.talk.load_in_background()
        if self._sweeper is None:
            self._sweeper = threading.Thread(target=self._sweep, name="selflearn-sweep", daemon=True)
            self._sweeper.start()

    def _sweep(self) -> None:
        while not self._stop.wait(SWEEP_S):
            try:
                self.talk.sweep()
            except Exception:  # logged; the next sweep tries again
                log.exception("sweeping unanswered questions failed")

    def close(self) -> None:
        """End the questions still waiting (logged unanswered), stop the watcher and the
        executors, close the store."""
        try:
            self.talk.close()
        except Exception:
            log.exception("logging the questions still waiting failed")
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)
        if self.metrics.on_gc in gc.callbacks:
            gc.callbacks.remove(self.metrics.on_gc)
        if self.config.freeze_gc:
            gc.unfreeze()  # let the interpreter finalize what was frozen
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        self.reloader.shutdown(wait=True, cancel_futures=True)
        if self.store is not None:
            with self.store_lock:
                self.store.close()
                self.store = None

    # --- loading ---------------------------------------------------------------------------------

    def _load(self, folder: Path, old: Rewriter | None) -> Artifact:
        """Load and warm up a rewriter folder (no lock held: the old one keeps serving)."""
        started = time.perf_counter()
        try:
            meta_bytes = (folder / DESCRIPTION).read_bytes()
            meta = json.loads(meta_bytes)
        except (OSError, ValueError):
            meta_bytes, meta = b"", {}
        embedder = None
        if old is not None and old.embedder is not None and meta.get("embedder") == str(old.embedder.path):
            embedder = old.embedder  # same static model: share it instead of loading it again
        rewriter = Rewriter.load(folder, embedder=embedder)
        if self.config.confirm != "off":
            rewriter.config = replace(rewriter.config, confirm=self.config.confirm)  # type: ignore[arg-type]
        rewriter.warm_up()
        version = _version_of(rewriter, meta_bytes)
        return Artifact(
            rewriter, True, version, folder, None, _now(), time.perf_counter() - started, _parts(rewriter)
        )

    def _reopen_store(self) -> None:
        """Close the store and open it again (the caller holds :attr:`store_lock`): DuckDB keeps
        memory for the queries an open database has run, which a new one gives back. When it
        cannot be opened again, ``POST /v1/turns`` answers 503 with why, as at a failed start."""
        assert self.store is not None and self.config.store is not None
        self.store_batches = 0
        self.store.close()  # kept in place, closed, until the new one is open: a concept write
        try:  # meeting it waits for the new one (access.CurrentStore)
            self.store = Store(self.config.store)
        except Exception as exc:
            self.store = None
            self.store_error = f"store {self.config.store} failed to reopen: {exc}"
            log.error("%s -- POST /v1/turns answers 503", self.store_error)

    def reload(self, folder: Path | None = None) -> tuple[Artifact, Artifact]:
        """Load ``folder`` (default: the configured one) and swap it in; returns (new, previous).
        Raises :class:`ReloadBusy` when a reload is running, or the load error (the previous
        rewriter keeps serving)."""
        target = folder or self.config.rewriter or self.artifact.folder
        if target is None:
            raise ConfigError("no rewriter folder configured: give one to reload")
        if not self._reload_lock.acquire(blocking=False):
            raise ReloadBusy("a reload is already running")
        try:
            try:
                fresh = self._load(target, self.artifact.rewriter)
            except Exception as exc:
                message = str(exc) if isinstance(exc, SelflearnError) else f"{type(exc).__name__}: {exc}"
                self.metrics.reloads.labels("error").inc()
                serving = self.artifact
                still = f"still serving {serving.version}" if serving.ok else "still passing requests through"
                self.last_reload_error = (
                    f"reload of {target} failed ({_now():%Y-%m-%dT%H:%M:%SZ}): {message}; {still}"
                )
                log.error("%s", self.last_reload_error)
                raise
            with self.lock:
                previous = self.artifact
                new = fresh.rewriter
                old = previous.rewriter
                # Hand over what was learned online. The embedding function becomes the new
                # rewriter's (a bound method of the old one would keep the old index alive),
                # and the new rewriter's own empty layer lets go of it, so no reference cycle is
                # left for the cyclic collector (which gc.freeze puts out of reach).
                own = new.personal
                old.personal.embed = own.embed
                own.embed = None
                new.personal = old.personal
                new.homes = old.homes
                new.reviews_ = old.reviews_
                self.artifact = fresh
                self.last_reload_error = None
            self.metrics.reloads.labels("ok").inc()
            self._publish(self.artifact, previous)
            self._freeze()
            log.info(
                "rewriter %s loaded from %s in %.2f s", self.artifact.version, target, fresh.load_seconds
            )
            return self.artifact, previous
        finally:
            self._reload_lock.release()

    def _freeze(self) -> None:
        if self.config.freeze_gc:
            gc.collect(1)  # young garbage only (cheap): what is frozen is never collected
            gc.freeze()

    def _publish(self, art: Artifact, previous: Artifact | None) -> None:
        m = self.metrics
        if previous is not None and previous.ok:
            m.info.remove(previous.version or "", str(previous.folder or ""))
        m.loaded.set(1 if art.ok else 0)
        if art.ok:
            m.info.labels(art.version or "", str(art.folder or "")).set(1)
            m.loaded_at.set(art.loaded_at.timestamp())

    def _watch(self) -> None:
        folder = self.config.rewriter
        assert folder is not None and self.config.watch_s is not None
        last = _signature(folder)
        while not self._stop.wait(self.config.watch_s):
            sig = _signature(folder)
            if sig is None or sig == last:
                continue
            last = sig
            try:
                self.reload(folder)
            except ReloadBusy:
                last = None  # try again on the next tick
            except Exception:  # logged and counted by reload(); keep serving
                pass

    def _load_homes(self) -> None:
        """Register the home configurations stored in the store's ``homes`` table."""
        assert self.store is not None
        loaded = 0
        for row in self.store.rows("SELECT home_id, config FROM homes"):
            try:
                home = Home.from_dict(json.loads(row["config"]))
            except (SelflearnError, ValueError, TypeError, KeyError) as exc:
                log.warning("stored home %s is unusable (%s); skipped", row["home_id"], exc)
                continue
            self.artifact.rewriter.homes[str(row["home_id"])] = home
            loaded += 1
        if loaded:
            log.info("registered %d home configurations from %s", loaded, self.config.store)

    def _placeholder(self) -> Rewriter:
        """The rewriter of a service with none loaded: the personal layer alone, asking as
        configured."""
        return Rewriter(RewriterConfig(confirm=self.config.confirm))  # type: ignore[arg-type]

    def _rebuild(self, days: float | None) -> None:
        """Rebuild what the households taught from the store: its turns and feedback replayed
        into the personal layer (all of them, or the last ``days``), its concepts and refusals
        taken by the dialogue. Timed in :attr:`rebuilt` and ``/healthz``."""
        started = time.perf_counter()
        replayed = self._replay(days)
        restored = self.talk.restore(self.store) if self.store is not None else {}
        self.rebuilt = {
            "records": replayed,
            **{key: float(value) for key, value in restored.items()},
            "seconds": round(time.perf_counter() - started, 3),
        }
        log.info(
            "rebuilt from %s in %.1f s: %d records replayed, %d concepts, %d refusals to teach",
            self.config.store,
            self.rebuilt["seconds"],
            replayed,
            restored.get("concepts", 0),
            restored.get("declined", 0),
        )

    def _replay(self, days: float | None) -> int:
        """Feed the store's turns and feedback (the last ``days``, or all), in arrival order, to
        the personal layer; returns how many records."""
        assert self.store is not None
        end = self.store.value("SELECT max(timestamp) FROM turns")
        if end is None:
            return 0
        since = end - timedelta(days=days) if days is not None else None
        n = 0
        for record in history(self.store, since):
            self._observe(record)
            n += 1
        return n

    # --- serving ---------------------------------------------------------------------------------

    def parse_home(self, data: dict[str, Any] | HomeConfig) -> Home:
        """A home configuration from JSON data or its validated body (parsed homes are cached
        by content)."""
        if isinstance(data, HomeConfig):
            data = data.model_dump()
        key = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        home = self._homes.get(key)
        if home is None:
            home = Home.from_dict(data)
            self._homes[key] = home
            if len(self._homes) > self.config.home_cache:
                self._homes.popitem(last=False)
        else:
            self._homes.move_to_end(key)
        return home

    def decide(
        self, text: str, ctx: RewriteContext, deadline: float
    ) -> tuple[RewriteDecision, Artifact] | None:
        """Decide in a worker thread; None when the deadline passed before the rewriter was free."""
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not self.lock.acquire(timeout=remaining):
            return None
        try:
            art = self.artifact
            return art.rewriter.rewrite_one(text, ctx), art
        finally:
            self.lock.release()

    def _observe(self, record: LogRecord) -> None:
        with self.lock:
            rewriter = self.artifact.rewriter
            if isinstance(record, Turn):
                rewriter.observe(record)
            elif isinstance(record, Feedback):
                rewriter.observe_feedback(record)

    def log_records(self, records: Sequence[LogRecord]) -> TurnsResponse | None:
        """Store and learn records the service made itself (the questions' acts and asking
        turns); failures are logged, never raised: the dialogue's answer must not depend on them."""
        try:
            out = self.ingest([record.model_dump(mode="json") for record in records], enrich=False)
        except Exception:
            log.exception("logging %d dialogue records failed", len(records))
            return None
        if out.quarantined:
            log.warning("dialogue records rejected: %s", out.rejected)
        return out

    def ingest(self, rows: list[Any], enrich: bool = True) -> TurnsResponse:
        """Validate, store (when a store is configured) and learn one batch of records (failed
        Home Assistant turns get the words the dialogue's matcher could not place: ``enrich``)."""
        started = time.perf_counter()
        if enrich:
            self.talk.enrich(rows)
        batch = f"http:{uuid.uuid4().hex[:12]}"
        rejected: list[Quarantined]
        fresh: list[tuple[int, LogRecord]] = []
        waited = 0.0
        if self.config.store is not None:
            asked = time.perf_counter()
            with self.store_lock:
                waited = time.perf_counter() - asked
                report = open_store(self).ingest_records(
                    rows, source=batch, quarantine_path=self.config.quarantine
                )
                self.store_batches += 1
                if 0 < self.config.store_reopen_batches <= self.store_batches:
                    self._reopen_store()
            for i in report.stored_rows:
                fresh.append((i, LOG_RECORD.validate_python(rows[i])))
            rejected = report.rejected
            stored, present, by_table = report.stored, report.already_present, dict(report.by_table)
        else:
            fresh, rejected = _validate(rows, batch)
            stored, present, by_table = 0, 0, {}
            for _, record in fresh:
                table = "turns" if isinstance(record, Turn) else "feedback"
                by_table[table] = by_table.get(table, 0) + 1
            if rejected and self.config.quarantine is not None:
                with self.store_lock, self.config.quarantine.open("ab") as fh:
                    for q in rejected:
                        fh.write(orjson.dumps(q.__dict__) + b"\n")
        for _, record in fresh:
            self._observe(record)
        took_ms = (time.perf_counter() - started - waited) * 1000
        self.ingest_ms = took_ms if not self.ingest_ms else 0.8 * self.ingest_ms + 0.2 * took_ms
        accepted = len(rows) - len(rejected)
        m = self.metrics.records
        m.labels("stored").inc(stored)
        m.labels("already_present").inc(present)
        m.labels("quarantined").inc(len(rejected))
        m.labels("accepted").inc(accepted)
        self.metrics.observed.inc(len(fresh))
        balanced = (
            len(rows) == stored + present + len(rejected)
            if self.config.store is not None
            else len(rows) == accepted + len(rejected)
        )
        return TurnsResponse(
            batch=batch,
            persisted=self.config.store is not None,
            read=len(rows),
            stored=stored,
            already_present=present,
            quarantined=len(rejected),
            accepted=accepted,
            balanced=balanced,
            by_table=by_table,
            observed=len(fresh),
            rejected=[RejectedRow(index=q.row, field=q.field, reason=q.reason) for q in rejected],
            seconds=round(time.perf_counter() - started, 6),
        )

    def snapshot(self, path: Path) -> dict[str, int]:
        """A consistent copy of the store (see :meth:`Store.snapshot`); ingest waits meanwhile."""
        if self.store is None:
            raise ConfigError("the service has no store to snapshot (start it with --store)")
        with self.store_lock:
            return self.store.snapshot(path)

    def review(self, review: Review) -> Review | None:
        """Store a verdict and apply every verdict in force to the serving rewriter, so the next
        request sees it; returns the verdict it replaced. Raises when there is no store (the
        verdicts must outlive the process)."""
        with self.store_lock:
            if self.store is None:
                raise StoreClosed(self.store_error or "the service has no store (start it with --store)")
            before = self.store.put_review(review)
            reviews = Reviews.of(self.store.reviews())
        with self.lock:
            self.artifact.rewriter.reviews_ = reviews
        return before

    def register_home(self, household_id: str, home: Home) -> None:
        """Serve with this home, and keep it in the store (if any) so that mining and training
        delexicalize the household's logged turns with it."""
        with self.lock:
            self.artifact.rewriter.homes[household_id] = home
        if self.store is not None:
            try:
                with self.store_lock:
                    self.store.put_home(household_id, home.to_dict(), source="http:homes")
            except (StoreError, duckdb.Error) as exc:
                log.warning("home of %s not stored (%s); it serves from memory", household_id, exc)

    def forget(self, household_id: str) -> ForgetResponse:
        """Forget a household: its personal memory, registered home and dialogue state now, its
        stored rows and quarantine lines, and the store file rewritten without their bytes."""
        with self.lock:
            rewriter = self.artifact.rewriter
            had_home = household_id in rewriter.homes
            had_memory = rewriter.forget(household_id)
            self.talk.forget(household_id)
            self._homes.clear()  # parsed inline homes may be this household's
        store_rows = None
        lines = 0
        with self.store_lock:
            if self.config.store is not None:
                store = open_store(self)
                store_rows = store.forget_household(household_id)
                store.compact()
            for path in self._quarantines():
                lines += scrub_lines(path, household_id)
        self.metrics.forgotten.inc()
        return ForgetResponse(
            household_id=household_id,
            personal_memory=had_memory,
            home=had_home,
            store=store_rows,
            quarantine_lines=lines,
            not_deleted=NOT_DELETED,
        )

    def forget_user(self, household_id: str, user_id: str) -> UserForgetResponse:
        """Forget one user of a household: the user's stored rows and quarantine lines (the
        store file rewritten), and the household's personal memory rebuilt from what is left
        (without a store it is forgotten whole: there is nothing to rebuild it from)."""
        store_rows = None
        lines = 0
        rebuilt = 0
        with self.store_lock:
            if self.config.store is not None:
                store = open_store(self)
                store_rows = store.forget_user(household_id, user_id)
                store.compact()
            for path in self._quarantines():
                lines += scrub_lines(path, household_id, user_id)
            with self.lock:
                self.artifact.rewriter.forget(household_id)
                self.talk.forget(household_id)
            if self.store is not None:
                for record in history(self.store, None, household_id=household_id):
                    self._observe(record)
                    rebuilt += 1
                self.talk.restore(self.store)
        self.metrics.forgotten.inc()
        return UserForgetResponse(
            household_id=household_id,
            user_id=user_id,
            store=store_rows,
            quarantine_lines=lines,
            rebuilt_records=rebuilt,
            not_deleted=NOT_DELETED,
        )

    def _quarantines(self) -> list[Path]:
        """The quarantine files this service knows of: its own, and those ingest wrote beside the store."""
        found = [self.config.quarantine] if self.config.quarantine is not None else []
        if self.store is not None:
            found += self.store.quarantine_files()
        return found

    def health(self) -> HealthResponse:
        art = self.artifact
        reasons = [] if art.ok else [f"{art.error} -- passing requests through"]
        if self.store_error is not None:
            reasons.append(f"{self.store_error} -- POST /v1/turns answers 503 and nothing is stored")
        warnings = [self.last_reload_error] if self.last_reload_error else []
        if self._reload_lock.locked():
            warnings.append("a reload is running")
        return HealthResponse(
            status="ok" if not reasons else "degraded",
            reasons=reasons,
            warnings=warnings,
            version=art.version,
            rewriter={
                "folder": str(art.folder) if art.folder else None,
                "loaded_at": art.loaded_at.isoformat(),
                "load_seconds": round(art.load_seconds, 3),
                **art.parts,
            },
            store=str(self.config.store) if self.config.store else None,
            households=len(art.rewriter.personal.memories),
            homes=len(art.rewriter.homes),
            dialogue={
                "ready": self.talk.ready.is_set(),
                "error": self.talk.load_error,
                "waiting": len(self.talk.conversations.questions),
                "rebuilt": self.rebuilt,
                "commands": command_shape(),
            },
            uptime_s=round(time.monotonic() - self.started, 3),
        )


NOT_DELETED = [
    "other replicas: send this DELETE to every replica (personal memory is per process)",
    "rewrite tables, indexes and exports made earlier: they hold patterns pooled over at least k users "
    "with every home's names taken out; the next `selflearn mine`, `train rewriter` and `label export` "
    "are made without this data",
    "the ranker's models: numbers learned from every household's turns, no text or names; "
    "the next training run learns them without this data",
    "copies, snapshots and exports of the store made earlier, and quarantine files this service "
    "does not know of",
]


def _now() -> datetime:
    return datetime.now(UTC)


def _parts(rewriter: Rewriter) -> dict[str, bool]:
    return {
        "knowledge": rewriter.knowledge_ is not None,
        "ranker": rewriter.ranker_ is not None,
        "table": rewriter.table_ is not None,
        "embedder": rewriter.embedder is not None,
    }


def _version_of(rewriter: Rewriter, meta: bytes | None) -> str:
    """Content version of a rewriter artefact: a hash of its ``model.json`` (which records
    its creation time) and of its table's version."""
    h = hashlib.blake2b(digest_size=6)
    h.update(meta or b"")
    if rewriter.table_ is not None:
        h.update(rewriter.table_.version.encode())
    if not meta:
        h.update(str(id(rewriter)).encode())
    return "rwr-" + h.hexdigest()


def _signature(folder: Path) -> tuple[int, int, int, str] | None:
    """What changes when a new rewriter is written into (or symlinked to) ``folder``."""
    try:
        st = (folder / DESCRIPTION).stat()
        return st.st_mtime_ns, st.st_size, st.st_ino, str(folder.resolve())
    except OSError:
        return None


def _validate(rows: list[Any], source: str) -> tuple[list[tuple[int, LogRecord]], list[Quarantined]]:
    """Validate records without a store (same messages; duplicates within the batch rejected)."""
    good: list[tuple[int, LogRecord]] = []
    bad: list[Quarantined] = []
    seen: dict[tuple[str, str], int] = {}
    for i, raw in enumerate(rows):
        snippet = json.dumps(raw, default=str)[:300]
        if not isinstance(raw, dict):
            bad.append(
                Quarantined(
                    source, i, "(record)", "expected a JSON object (a turn or feedback record)", snippet
                )
            )
            continue
        try:
            record = LOG_RECORD.validate_python(raw)
        except ValidationError as exc:
            name, reason = error_field(exc)
            bad.append(Quarantined(source, i, name, reason, snippet))
            continue
        if isinstance(record, Turn):
            key, ident = "turn_id", record.turn_id
        elif isinstance(record, Feedback):
            key, ident = "feedback_id", record.feedback_id
        else:
            key, ident = "act_id", record.act_id
        first = seen.get((key, ident))
        if first is not None:
            bad.append(
                Quarantined(source, i, key, f"duplicate {key} {ident!r} (first at {source}:{first})", "")
            )
            continue
        seen[(key, ident)] = i
        good.append((i, record))
    return good, bad
