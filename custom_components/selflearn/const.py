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
ISSUE_AUTH = "service_refuses_token"
"""Translation key and id of the repair issue raised when the service answers 401 or 403: the
admin token configured here is missing or not the service's (not a service that is away)."""
ISSUE_ALIAS = "alias"
"""Translation key of the repair issue that offers a taught name as an alias (its id:
``alias_<concept id>``)."""

ISSUE_SENTENCES = "sentences"
"""Translation key of the repair issue that offers to write what was taught as custom sentences."""
SENTENCES_FILE = ("custom_sentences", "en", "selflearn.yaml")
"""Where those sentences go, under Home Assistant's configuration folder."""

QUESTION_WAIT_S = 60.0
"""How long this side remembers that a question of the service waits in a conversation (the
service's own answer window is shorter and decides); meanwhile the next utterance of that
conversation goes to the dialogue first."""
MAX_OPEN_QUESTIONS = 256
"""Conversations remembered with a waiting question (the oldest are forgotten first)."""
MAX_RUN_SENTENCES = 8
"""Most sentences one answer of the service runs (a taught routine's steps)."""

BUFFER_MAX = 5000
"""Turns kept while the service cannot take them (the oldest are dropped past that, and counted)."""
SEND_BATCH = 500
"""Turns sent in one ``POST /v1/turns``."""
FLUSH_INTERVAL_S = 60.0
"""How often turns that wait are sent again."""
OFFER_INTERVAL_S = 3600.0
"""How often the integration asks the service what the household taught, to offer it."""

SYNC_COOLDOWN_S = 5.0
"""Registry changes within this many seconds are sent to the service as one home update."""

FAILED_CODES = frozenset({"no_intent_match", "no_valid_targets"})
"""Home Assistant's error codes on which a rewrite is worth asking for."""
