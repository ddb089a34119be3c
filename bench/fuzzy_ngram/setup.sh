#!/usr/bin/env bash
# Create the pinned virtualenv for hassil's n-gram fuzzy matcher baseline.
#
# hassil 3.8.1 is the last hassil release with hassil.fuzzy.FuzzyNgramMatcher,
# and home-assistant-intents 2026.6.1 is the newest release (<= 2026.6.1) that
# still ships the fuzzy n-gram models (home_assistant_intents/fuzzy/...).
# The main project pins hassil 3.12.1, so this lives in its own venv.
#
# Idempotent: exits 0 immediately if the venv already has the right versions.
# Override the location with FUZZY_VENV=/some/path.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${FUZZY_VENV:-$REPO_ROOT/.venv-fuzzy}"
PYTHON="${PYTHON:-python3}"

HASSIL_VERSION="3.8.1"
INTENTS_VERSION="2026.6.1"
# Transitive deps pinned to what was verified (hassil needs PyYAML<7, unicode-rbnf<3).
PYYAML_VERSION="6.0.3"
UNICODE_RBNF_VERSION="2.4.1"

check() {
    [ -x "$VENV/bin/python" ] || return 1
    "$VENV/bin/python" - "$HASSIL_VERSION" "$INTENTS_VERSION" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version
assert version("hassil") == sys.argv[1], version("hassil")
assert version("home-assistant-intents") == sys.argv[2]
import yaml  # noqa: F401
from hassil.fuzzy import FuzzyNgramMatcher  # noqa: F401
from home_assistant_intents import get_fuzzy_config, get_fuzzy_language
get_fuzzy_config()
assert get_fuzzy_language("en") is not None
PY
}

if check; then
    echo "fuzzy venv already set up: $VENV"
    exit 0
fi

echo "creating fuzzy venv: $VENV"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
elif ! "$VENV/bin/python" -c "import sys" >/dev/null 2>&1; then
    # Broken venv (e.g. its base interpreter moved): rebuild it.
    "$PYTHON" -m venv --clear "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "hassil==$HASSIL_VERSION" \
    "home-assistant-intents==$INTENTS_VERSION" \
    "PyYAML==$PYYAML_VERSION" \
    "unicode-rbnf==$UNICODE_RBNF_VERSION"

if ! check; then
    echo "ERROR: fuzzy venv at $VENV failed verification" >&2
    exit 1
fi
"$VENV/bin/python" -m pip freeze --disable-pip-version-check > "$VENV/freeze.txt"
echo "fuzzy venv ready: $VENV"
cat "$VENV/freeze.txt"
