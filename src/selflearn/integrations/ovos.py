"""An OVOS utterance transformer that asks a running ``selflearn serve`` to rewrite each request.

OpenVoiceOS runs *utterance transformers* between speech recognition and intent matching;
``ovos-plugin-manager`` (OPM) finds them by the entry point group ``opm.transformer.text``, where
selflearn declares ``selflearn-rewrite-transformer`` (this module's
:class:`SelflearnUtteranceTransformer`). The plugin is thin: for each request it sends the
recogniser's hypotheses to ``POST /v1/rewrite`` (the first as ``text``, the others as ``nbest``)
with ``httpx`` and hands OVOS the answer. It loads no model and imports no part of the rewriter.

Enable it in ``mycroft.conf`` (only ``household_id`` usually needs setting)::

    {
      "utterance_transformers": {
        "selflearn-rewrite-transformer": {
          "url": "http://127.0.0.1:8080",
          "household_id": "home-1",
          "user_id": "unknown",
          "timeout_ms": 200
        }
      }
    }

and run the service next to it: ``selflearn serve --rewriter models/rewriter --port 8080``, with
the home's areas and devices registered under the same id (``PUT /v1/homes/home-1``; without
them "kitchen" is just a word and no area rule applies). Settings:

================== ========================= ===================================================
key                default                   what
================== ========================= ===================================================
``url``            ``http://127.0.0.1:8080`` where ``selflearn serve`` listens
``household_id``   ``ovos``                  pseudonymous id of the home (``A-Za-z0-9_.:-``)
``user_id``        ``unknown``               pseudonymous id of the speaker
``timeout_ms``     ``200``                   give up on the service after this long (each of
                                             connect, send, wait for the answer)
``languages``      ``["en"]``                only requests whose ``lang`` starts with one of
                                             these are sent (the rewriter learned English);
                                             ``[]``: all
``admin_token``    none                      the service's admin token (``--admin-token``):
                                             without it a service that has one decides
                                             without the household's own layer (what it
                                             taught and said before)
``priority``       ``10``                    OPM order: higher runs earlier; OVOS's normalizer
                                             (priority 1) then still sees the rewrite
``active``         ``true``                  ``false``: OVOS does not load the plugin
================== ========================= ===================================================

**Before intent matching.** OVOS asks transformers before its intent service, so the plugin
sends ``failed`` unset: the rewriter must itself predict whether the request will fail. A
request whose delexicalized pattern works for everyone (success rate of at least 0.8 over 4+
logged turns) or has worked in this household is left alone; the mined table and the
household's own fixes apply; the ranked layer must clear its stricter threshold for this mode
(``threshold_unknown``). The recogniser's other hypotheses are read only behind the NLU
(``failed: true``): ``nbest`` is sent, but decides nothing in this mode.

**What comes back.** On a rewrite the utterances are ``[rewritten, *original utterances]`` (later
stages and the intent service still see what was said), and the returned context -- which OVOS
merges into the message context -- holds the provenance under ``"selflearn"``: ``original``,
``rewritten``, ``layer``, ``rule_id``, ``score``, ``version`` (the artefact that decided),
``reasons``, and ``rewrite`` (the trace to log in the turn's ``rewrite`` field,
docs/log-format.md). Otherwise the utterances come back unchanged with an empty context.

**Read from the message context.** ``lang`` (set by ovos-core; else ``session.lang``) for the
language filter; ``area``, the *name* of the area of the device that heard the request, when the
client puts one there, else the session's ``site_id`` (OVOS's placement of the device) unless it
is ``unknown``. ``session``, ``source`` and ``destination`` are not sent anywhere.

**Fails open.** A service that is down, slower than ``timeout_ms``, answering an HTTP error or
something that is not a decision: the utterances come back unchanged with an empty context, the
transformer never raises, and it logs one warning per streak of failures (again every five
minutes while it lasts; an info line when the service answers again) to the
``selflearn.integrations.ovos`` logger.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

import httpx
from ovos_plugin_manager.templates.transformers import UtteranceTransformer

from selflearn.core.schema import MAX_ID_CHARS, MAX_TEXT_CHARS

log = logging.getLogger(__name__)

PLUGIN_NAME = "selflearn-rewrite-transformer"
"""The entry point name (``opm.transformer.text``) and the key in ``utterance_transformers``."""

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT_MS = 200.0
DEFAULT_PRIORITY = 10
MAX_NBEST = 10
"""Alternative hypotheses ``POST /v1/rewrite`` accepts (``selflearn.service.config.MAX_NBEST_ITEMS``;
not imported, as that package loads the web framework)."""
WARN_EVERY_S = 300.0
"""During a streak of failures, repeat the warning at most this often."""

_ID = re.compile(r"^[A-Za-z0-9_.:\-]+$")


def _check_id(value: Any, key: str) -> str:
    if not isinstance(value, str) or not _ID.match(value) or len(value) > MAX_ID_CHARS:
        raise ValueError(
            f"{PLUGIN_NAME}: {key} must be 1-{MAX_ID_CHARS} characters of A-Za-z0-9_.:-, not {value!r}"
        )
    return value


class SelflearnUtteranceTransformer(UtteranceTransformer):  # type: ignore[misc]  # OPM is untyped
    """Rewrites the top hypothesis through ``selflearn serve``; see the module docstring.

    OVOS instantiates it without arguments, and OPM's base class then reads the settings from
    ``mycroft.conf`` (``utterance_transformers`` -> ``selflearn-rewrite-transformer``); pass
    ``config`` to set them directly. A setting that is not usable raises ``ValueError`` here
    (OVOS then logs it and runs without the plugin); :meth:`transform` never raises.
    """

    def __init__(self, config: dict[str, Any] | None = None, name: str = PLUGIN_NAME) -> None:
        super().__init__(name, DEFAULT_PRIORITY, config)  # no config: reads mycroft.conf
        cfg: dict[str, Any] = dict(self.config)
        self.priority = int(cfg.get("priority", DEFAULT_PRIORITY))
        self.url = str(cfg.get("url") or DEFAULT_URL).rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"{PLUGIN_NAME}: url must start with http:// or https://, not {self.url!r}")
        self.household_id = _check_id(cfg.get("household_id", "ovos"), "household_id")
        self.user_id = _check_id(cfg.get("user_id", "unknown"), "user_id")
        timeout_ms = float(cfg.get("timeout_ms", DEFAULT_TIMEOUT_MS))
        if not timeout_ms > 0:
            raise ValueError(f"{PLUGIN_NAME}: timeout_ms must be positive, not {timeout_ms:g}")
        self.timeout_s = timeout_ms / 1000
        languages = cfg.get("languages", ["en"])
        if isinstance(languages, str) or not all(isinstance(lang, str) for lang in languages):
            raise ValueError(f"{PLUGIN_NAME}: languages must be a list of language tags, not {languages!r}")
        self.languages = tuple(lang.lower() for lang in languages)
        token = cfg.get("admin_token")
        if token is not None and (not isinstance(token, str) or not token.strip()):
            raise ValueError(f"{PLUGIN_NAME}: admin_token must be the service's token, a non-empty string")
        headers = {"Authorization": f"Bearer {token.strip()}"} if token else {}
        # No proxies from the environment: the service is normally on this machine.
        self._client = httpx.Client(timeout=httpx.Timeout(self.timeout_s), trust_env=False, headers=headers)
        self._lock = threading.Lock()
        self._failures = 0
        self._last_warning = 0.0

    # --- OPM's interface ---------------------------------------------------------------------

    def transform(
        self, utterances: list[str], context: dict[str, Any] | None = None
    ) -> tuple[list[str], dict[str, Any]]:
        """``utterances`` (the recogniser's hypotheses, best first) -> ``([rewrite, *utterances],
        {"selflearn": provenance})`` on a rewrite, else ``(utterances, {})``."""
        try:
            body = self._request(utterances, context or {})
            if body is None:
                return utterances, {}
            answer = self._ask(body)
            if answer is None:
                return utterances, {}
            rewritten = answer["text"]
            provenance = {
                "original": body["text"],
                "rewritten": rewritten,
                "layer": answer.get("layer"),
                "rule_id": answer.get("rule_id"),
                "score": answer.get("score"),
                "version": answer.get("version"),
                "reasons": answer.get("reasons", []),
                "rewrite": answer.get("rewrite"),
            }
            out = [rewritten, *(u for u in utterances if u != rewritten)]
            return out, {"selflearn": provenance}
        except Exception as exc:  # fail open, whatever happened
            self._failed(f"{type(exc).__name__}: {exc}")
            return utterances, {}

    def default_shutdown(self) -> None:
        """Close the HTTP connections (OPM's name for it)."""
        self._client.close()

    def shutdown(self) -> None:
        """Close the HTTP connections (the name ovos-core's transformer service calls)."""
        self._client.close()

    # --- the request and the answer ----------------------------------------------------------

    def _request(self, utterances: list[str], context: dict[str, Any]) -> dict[str, Any] | None:
        """The body of ``POST /v1/rewrite``, or None when the request is not sent."""
        if not utterances or not isinstance(utterances[0], str) or not utterances[0].strip():
            return None
        text = utterances[0]
        if len(text) > MAX_TEXT_CHARS or not self._language_ok(context):
            return None
        body: dict[str, Any] = {
            "text": text,
            "household_id": self.household_id,
            "user_id": self.user_id,
            "nbest": [u for u in utterances[1:] if isinstance(u, str) and len(u) <= MAX_TEXT_CHARS][
                :MAX_NBEST
            ],
        }
        area = self._area(context)
        if area is not None:
            body["area"] = area
        return body

    def _language_ok(self, context: dict[str, Any]) -> bool:
        if not self.languages:
            return True
        session = context.get("session")
        lang = context.get("lang") or (session.get("lang") if isinstance(session, dict) else None)
        if not isinstance(lang, str) or not lang:
            return True  # unknown: OVOS's default language, which the user configured us for
        return lang.lower().startswith(self.languages)

    @staticmethod
    def _area(context: dict[str, Any]) -> str | None:
        """The ``area`` key of the message context, else the session's ``site_id``."""
        area = context.get("area")
        if not isinstance(area, str) or not area.strip():
            session = context.get("session")
            area = session.get("site_id") if isinstance(session, dict) else None
            if not isinstance(area, str) or area.strip().lower() in ("", "unknown"):
                return None
        area = area.strip()
        return area if len(area) <= 200 else None

    def _ask(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The service's decision when it rewrote the text; None when it did not (or failed)."""
        try:
            response = self._client.post(f"{self.url}/v1/rewrite", json=body)
        except httpx.TimeoutException:
            self._failed(f"no answer within {self.timeout_s * 1000:g} ms")
            return None
        except httpx.HTTPError as exc:
            self._failed(f"{type(exc).__name__}: {exc}")
            return None
        if response.status_code != 200:
            self._failed(f"HTTP {response.status_code}: {response.text[:200]!r}")
            return None
        try:
            answer = response.json()
        except ValueError:
            self._failed(f"the answer is not JSON: {response.text[:200]!r}")
            return None
        if not (
            isinstance(answer, dict)
            and isinstance(answer.get("text"), str)
            and isinstance(answer.get("rewritten"), bool)
        ):
            self._failed(f"the answer is not a rewrite decision: {str(answer)[:200]!r}")
            return None
        self._answered()
        text: str = answer["text"]
        if not answer["rewritten"] or not text.strip() or text == body["text"]:
            return None
        return answer

    # --- failure streaks ---------------------------------------------------------------------

    def _failed(self, why: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._failures += 1
            n = self._failures
            warn = n == 1 or now - self._last_warning >= WARN_EVERY_S
            if warn:
                self._last_warning = now
        if warn:
            log.warning(
                "selflearn rewrite through %s failed (%s); passing utterances through "
                "(%d failed request(s) in a row)",
                self.url,
                why,
                n,
            )
        else:
            log.debug("selflearn service at %s: %s (%d in a row)", self.url, why, n)

    def _answered(self) -> None:
        with self._lock:
            n, self._failures = self._failures, 0
        if n:
            log.info("selflearn service at %s answers again after %d failed request(s)", self.url, n)
