"""Names and defaults of the selflearn integration."""

from __future__ import annotations

DOMAIN = "selflearn"

CONF_URL = "url"
CONF_ADMIN_TOKEN = "admin_token"
CONF_HOUSEHOLD_ID = "household_id"
CONF_SALT = "salt"

OPT_REWRITE = "rewrite"
"""When to ask selflearn: ``behind`` (only after Home Assistant failed), ``before`` (every
request, before Home Assistant matches it) or ``off`` (log only)."""
OPT_TIMEOUT_MS = "timeout_ms"
"""Budget of one call to the service; a later answer is ignored and Home Assistant's own answer
stands."""
OPT_LOG_TURNS = "log_turns"
"""Send every turn with its outcome to ``POST /v1/turns`` (in the background)."""
OPT_AGENT_ID = "agent_id"
"""The conversation agent selflearn wraps (default: Home Assistant's own)."""

REWRITE_BEHIND = "behind"
REWRITE_BEFORE = "before"
REWRITE_OFF = "off"

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_REWRITE = REWRITE_BEHIND
DEFAULT_TIMEOUT_MS = 250
DEFAULT_LOG_TURNS = True

FAILURES_BEFORE_REPAIR = 3
"""Consecutive failed calls to the service before a repair issue tells the user."""
ISSUE_UNREACHABLE = "service_unreachable"

SYNC_COOLDOWN_S = 5.0
"""Registry changes within this many seconds are sent to the service as one home update."""

FAILED_CODES = frozenset({"no_intent_match", "no_valid_targets"})
"""Home Assistant's error codes on which a rewrite is worth asking for."""
