"""Client for the pinned hassil-3.8.1 n-gram fuzzy matcher baseline.

Importable from the main project: it never imports hassil itself. It spawns
the pinned venv's python on ``run_fuzzy.py`` and talks JSONL over pipes.

    from bench.fuzzy_ngram.client import available, fuzzy_match
    if available():
        rows = fuzzy_match([{"id": "1", "text": "kill the lights", "home": home,
                             "context_area": None}])

Set up the venv first with ``bash bench/fuzzy_ngram/setup.sh``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
RUNNER = HERE / "run_fuzzy.py"
SETUP_HINT = "run bash bench/fuzzy_ngram/setup.sh"

__all__ = ["FuzzyBaselineError", "available", "default_venv", "fuzzy_match"]


class FuzzyBaselineError(RuntimeError):
    """The fuzzy baseline venv is missing or the subprocess failed."""


def default_venv() -> Path:
    """``$FUZZY_VENV`` or ``<repo>/.venv-fuzzy``."""
    env = os.environ.get("FUZZY_VENV")
    return Path(env) if env else REPO_ROOT / ".venv-fuzzy"


def _venv_python(venv: str | Path | None) -> Path:
    venv_path = Path(venv) if venv is not None else default_venv()
    return venv_path / "bin" / "python"


_CHECK = (
    "from importlib.metadata import version\n"
    "assert version('hassil') == '3.8.1'\n"
    "import hassil.fuzzy, home_assistant_intents\n"
    "assert home_assistant_intents.get_fuzzy_language('en') is not None\n"
)


def available(venv: str | Path | None = None) -> bool:
    """True if the pinned venv exists and has hassil 3.8.1 + fuzzy models."""
    python = _venv_python(venv)
    if not python.exists():
        return False
    try:
        proc = subprocess.run(
            [str(python), "-c", _CHECK],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def fuzzy_match(
    requests: list[dict[str, Any]],
    venv: Path | None = None,
    timeout_s: float = 600,
    *,
    request_timeout_s: float = 60.0,
    language: str = "en",
) -> list[dict[str, Any]]:
    """Run the fuzzy matcher on ``requests``; return one response per request.

    Each request: ``{"id", "text", "home": {...}, "context_area": str|None}``.
    Each response: ``{"id", "matched", "intent", "slots", "score", "error", ...}``
    (see run_fuzzy.py for the extra fields). A bad request yields a row with
    ``error`` set; only a missing venv or a dead subprocess raises.
    """
    if not requests:
        return []
    python = _venv_python(venv)
    if not python.exists():
        raise FuzzyBaselineError(f"fuzzy n-gram venv not found at {python.parent.parent}: {SETUP_HINT}")

    lines = []
    unserialisable: set[int] = set()
    for i, req in enumerate(requests):
        try:
            lines.append(json.dumps(req, ensure_ascii=False))
        except (TypeError, ValueError) as err:
            # Keep positions aligned: send a request that yields an error row.
            unserialisable.add(i)
            lines.append(
                json.dumps({"id": _safe_id(req, i), "text": None, "_client_error": f"unserialisable: {err}"})
            )
    payload = "\n".join(lines) + "\n"

    cmd = [
        str(python),
        str(RUNNER),
        "--preload",
        "--language",
        language,
        "--request-timeout",
        str(request_timeout_s),
    ]
    try:
        proc = subprocess.run(
            cmd,
            input=payload.encode("utf-8"),
            capture_output=True,
            timeout=timeout_s,
            check=False,
            # A fixed hash seed: hassil 3.8.1's fuzzy matcher breaks ties in set order, so with
            # Python's per-process hash randomization two runs on the same requests differed
            # (3,981 vs 4,004 correct of the 5,151 requests of `--limit 3000`).
            env={**os.environ, "PYTHONIOENCODING": "utf-8", "PYTHONUNBUFFERED": "1", "PYTHONHASHSEED": "0"},
        )
    except subprocess.TimeoutExpired as err:
        raise FuzzyBaselineError(f"fuzzy matcher timed out after {timeout_s}s") from err
    except OSError as err:
        raise FuzzyBaselineError(f"could not start {python}: {err}; {SETUP_HINT}") from err

    stderr = proc.stderr.decode("utf-8", "replace")
    out_lines = [ln for ln in proc.stdout.decode("utf-8", "replace").splitlines() if ln.strip()]
    if proc.returncode != 0 or len(out_lines) != len(requests):
        raise FuzzyBaselineError(
            f"fuzzy matcher failed (exit {proc.returncode}, {len(out_lines)}/"
            f"{len(requests)} rows); stderr tail:\n{stderr[-2000:]}"
        )

    rows = [json.loads(ln) for ln in out_lines]
    for i, (req, row) in enumerate(zip(requests, rows, strict=True)):
        if i not in unserialisable and isinstance(req, dict) and row.get("id") != req.get("id"):
            raise FuzzyBaselineError(f"response {i} id {row.get('id')!r} != request id {req.get('id')!r}")
    return rows


def _safe_id(req: Any, i: int) -> Any:
    if isinstance(req, dict):
        rid = req.get("id")
        if isinstance(rid, (str, int, float)) or rid is None:
            return rid
    return f"#{i}"
