"""A community release: written and signed by the aggregator, verified and installed by
``selflearn community pull``.

A release is a folder::

    manifest.json     format, version, period, the privacy parameters (epsilon, delta, the unit,
                      the mechanisms and the library), the bounds, the SHA-256 of every file
    signature.json    the aggregator's Ed25519 signature over manifest.json's bytes
    released.jsonl    every released pair with its noisy count of installs and share of help
    table/            the global rewrite table built from them (``selflearn.rewrites.v2``: the
                      format the rewriter serves)

:func:`verify_release` refuses a folder whose signature does not verify with the aggregator's
public key the install was given, or any of whose files is missing, extra or changed after
signing. :func:`install_release` installs a verified release as a rewriter folder the service
loads (``selflearn serve --rewriter``, its ``--watch`` and ``POST /v1/admin/reload``): the
community table as the precomputed layer, optionally inside a copy of another rewriter (the
starter) whose own table keeps the sources it has.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selflearn.community.aggregate import AggregateConfig, AggregateReport, rules
from selflearn.community.keys import key_id, public_hex, sign, verify
from selflearn.core.artefacts import file_sha256, save_atomically
from selflearn.core.delex import example_values
from selflearn.core.errors import ConfigError
from selflearn.rewrite.table import RewriteTable, rule_id

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

FORMAT = "selflearn.community-release.v1"
MANIFEST = "manifest.json"
SIGNATURE = "signature.json"
INSTALLED = "community.json"
"""The release's manifest as installed beside the rewriter (what the service serves came from)."""


def _library() -> str:
    try:
        return f"pipeline-dp {metadata.version('pipeline-dp')} (python-dp {metadata.version('python-dp')})"
    except metadata.PackageNotFoundError:  # pragma: no cover - depends on the install
        return "pipeline-dp"


def table_of(report: AggregateReport, config: AggregateConfig, version: str) -> RewriteTable:
    """The global rewrite table of the release's rules (:func:`~selflearn.community.aggregate.rules`).
    Counts are the noisy ones, rounded; ``p_target`` is the noisy share of help; a community
    release estimates no success rate of the failing pattern, so ``p_source`` is 0."""
    rows = []
    for r in rules(report.released, config.min_helped):
        installs = max(1, round(r.installs))
        rows.append(
            {
                "rule_id": rule_id(r.failing, r.fixing),
                "source": r.failing,
                "target": r.fixing,
                "source_example": example_values(r.failing),
                "target_example": example_values(r.fixing),
                "p_source": 0.0,
                "p_target": round(r.helped, 6),
                "absorb_source": 0.0,
                "absorb_target": round(r.helped, 6),
                "support": installs,
                "users": installs,
                "households": installs,
                "source_turns": 0,
                "target_turns": 0,
                "source_users": 0,
                "sensitive": False,
                "deployed_turns": 0,
                "deployed_success": 0,
                "p_worse_after": 0.0,
                "status": "active",
            }
        )
    meta = {"source": "community", "release": version, "period": report.period}
    return RewriteTable.from_rows(rows, meta)


def write_release(
    report: AggregateReport, config: AggregateConfig, key: Ed25519PrivateKey, out: str | Path
) -> dict[str, Any]:
    """Write the release of ``report`` into ``out`` (replaced whole, atomically) and sign it with
    the aggregator's ``key``; returns the manifest."""
    released = [
        {
            "failing": r.failing,
            "fixing": r.fixing,
            "installs": round(r.installs, 2),
            "helped": round(r.helped, 4),
        }
        for r in report.released
    ]
    blob = json.dumps([report.period, released], sort_keys=True).encode()
    version = f"community-{report.period}-{hashlib.blake2b(blob, digest_size=6).hexdigest()}"
    table = table_of(report, config, version)
    manifest: dict[str, Any] = {}

    def save(folder: Path) -> None:
        with (folder / "released.jsonl").open("w", encoding="utf-8") as fh:
            for row in released:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        table.save(folder / "table")
        files = {
            p.relative_to(folder).as_posix(): file_sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()
        }
        manifest.update(
            {
                "format": FORMAT,
                "version": version,
                "period": report.period,
                "periods": report.periods or [report.period],
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "privacy": {
                    "unit": "install (its key); one contribution per pair, at most max_patterns pairs",
                    "epsilon": config.epsilon,
                    "delta": config.delta,
                    "mechanisms": f"partition selection over distinct installs ({config.strategy}) with "
                    f"{config.selection_share:g} of epsilon and all of delta, then Laplace noise on the "
                    "count of installs and on the sum of help per selected pair with the rest, split "
                    "evenly (basic sequential composition)",
                    "selection_share": config.selection_share,
                    "library": _library(),
                    "max_patterns": config.max_patterns,
                    "min_installs": config.min_installs,
                    "weeks": config.weeks,
                    "accounting": "this release is (epsilon, delta)-DP for each install's contributions "
                    "of the weeks it pools (their pairs bounded together); an install whose "
                    "contributions are in T releases is protected by (T*epsilon, T*delta) over them",
                },
                "released_pairs": len(released),
                "rules": len(table),
                "min_helped": config.min_helped,
                "aggregator": {"key_id": key_id(key), "public_key": public_hex(key)},
                "files": files,
            }
        )
        body = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()
        (folder / MANIFEST).write_bytes(body)
        signature = {"algorithm": "ed25519", "key_id": key_id(key), "signature": sign(key, body)}
        (folder / SIGNATURE).write_text(json.dumps(signature, indent=2) + "\n", encoding="utf-8")

    save_atomically(out, save)
    return manifest


def pack_release(folder: str | Path, archive: str | Path) -> Path:
    """``folder`` as one ``.tar.gz`` file (what an install downloads); returns the archive."""
    src, out = Path(folder), Path(archive)
    with tarfile.open(out, "w:gz") as tar:
        for path in sorted(src.rglob("*")):
            tar.add(path, arcname=path.relative_to(src).as_posix(), recursive=False)
    return out


def verify_release(folder: str | Path, public: Ed25519PublicKey) -> dict[str, Any]:
    """The manifest of the release in ``folder`` once verified: its signature with the trusted
    aggregator key ``public``, then every file against the manifest's hashes, with no file missing
    or added. Raises :class:`ConfigError` saying what failed (the release is refused)."""
    src = Path(folder)
    if not (src / MANIFEST).is_file() or not (src / SIGNATURE).is_file():
        raise ConfigError(f"{src} is not a community release (no {MANIFEST} and {SIGNATURE})")
    body = (src / MANIFEST).read_bytes()
    try:
        signature = json.loads((src / SIGNATURE).read_text(encoding="utf-8"))
        signed = str(signature["signature"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{src}/{SIGNATURE} is unreadable: refused") from exc
    trusted = key_id(public)
    if not verify(public, body, signed):
        raise ConfigError(
            f"{src}: the signature does not verify with the aggregator key {trusted}: refused "
            "(signed by another key, or the manifest was changed)"
        )
    manifest: dict[str, Any] = json.loads(body)
    if manifest.get("format") != FORMAT:
        raise ConfigError(f"{src}: format {manifest.get('format')!r}, expected {FORMAT!r}: refused")
    files: dict[str, str] = manifest.get("files") or {}
    present = {p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()} - {MANIFEST, SIGNATURE}
    for name in sorted(set(files) - present):
        raise ConfigError(f"{src}: {name} is missing: refused")
    for name in sorted(present - set(files)):
        raise ConfigError(f"{src}: {name} is not part of the signed release: refused")
    for name, digest in sorted(files.items()):
        if file_sha256(src / name) != digest:
            raise ConfigError(f"{src}: {name} was changed after signing: refused")
    return manifest


def load_release(folder: str | Path, public: Ed25519PublicKey) -> tuple[RewriteTable, dict[str, Any]]:
    """The verified release's rewrite table and manifest (:func:`verify_release`)."""
    manifest = verify_release(folder, public)
    return RewriteTable.load(Path(folder) / "table"), manifest


def install_release(
    release: str | Path, public: Ed25519PublicKey, out: str | Path, base: str | Path | None = None
) -> dict[str, Any]:
    """Verify ``release`` (a folder, or a ``.tar.gz`` of one) and install it into ``out`` as a
    rewriter folder whose precomputed layer is the community table (written atomically: a
    service watching ``out`` reloads it whole). With ``base`` (a rewriter folder, e.g. the
    starter), ``out`` is a copy of that rewriter whose table gains the community rules for the
    sources its own table lacks. Returns the release's manifest."""
    from selflearn.rewrite.rewriter import Rewriter  # loads the embedder's stack: only when pulling

    src = Path(release)
    with tempfile.TemporaryDirectory(prefix="selflearn-release-") as tmp:
        if src.is_file():
            folder = _unpack(src, Path(tmp))
        elif src.is_dir():
            folder = src
        else:
            raise ConfigError(f"no release at {src}")
        table, manifest = load_release(folder, public)
        rewriter = Rewriter.load(base) if base is not None else Rewriter.from_parts()
        if rewriter.table_ is not None:
            table = _merged(rewriter.table_, table, manifest)
        rewriter.table_ = table
        installed = {**manifest, "installed_at": datetime.now(UTC).isoformat(timespec="seconds")}
        installed["base"] = str(base) if base is not None else None

        def save(target: Path) -> None:
            (target / INSTALLED).write_text(json.dumps(installed, indent=2) + "\n", encoding="utf-8")
            shutil.copy2(folder / SIGNATURE, target / "community.signature.json")
            rewriter.save(target)  # its model.json last

        save_atomically(out, save)
    return manifest


def _merged(own: RewriteTable, community: RewriteTable, manifest: dict[str, Any]) -> RewriteTable:
    rows = own.rows()
    mine = {r["source"] for r in rows if r["status"] == "active"}
    extra = [r for r in community.rows() if r["source"] not in mine]
    rows += extra
    meta = {
        **own.metadata,
        "community": manifest.get("version"),
        "community_rules": len(extra),
        "community_rule_ids": sorted(r["rule_id"] for r in extra),
    }
    meta.pop("version", None)
    return RewriteTable.from_rows(rows, meta)


def _unpack(archive: Path, into: Path) -> Path:
    if not hasattr(tarfile, "data_filter"):  # Python < 3.11.4: no safe extraction
        raise ConfigError(
            f"unpacking {archive} safely needs Python 3.11.4 or later: unpack it and give the folder"
        )
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(into, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ConfigError(f"{archive} is not a readable release archive (.tar.gz): {exc}") from exc
    if (into / MANIFEST).exists():
        return into
    inner = [p for p in into.iterdir() if p.is_dir()]
    if len(inner) == 1 and (inner[0] / MANIFEST).exists():
        return inner[0]
    raise ConfigError(f"{archive} holds no community release ({MANIFEST} not found)")
