#!/usr/bin/env bash
# Home Assistant 2026.11 on this machine. Since 2026.5 the core needs Python >= 3.14.2, which is
# not installed here and has no source within reach; Debian sid's python3.14 is. So the core runs
# in a debootstrap chroot of sid (built once, cached in $SELFLEARN_HA_CHROOT), where it installs
# with pip. The integration's tests run inside it; `selflearn serve`, which they start, runs on
# this machine's own Python (the host's root is bound at /host), as it would beside a real core.
#
#   tests_ha/core2026.sh build            the chroot and the core (a few minutes the first time)
#   tests_ha/core2026.sh test [ARGS...]   tests_ha/ on the core (ARGS go to pytest)
#   tests_ha/core2026.sh mypy             custom_components/selflearn against the core's types
#   tests_ha/core2026.sh version          the core's version
#   tests_ha/core2026.sh run CMD...       a command in it (hass -c DIR: the core, to try in a browser;
#                                         its frontend: pip install home-assistant-frontend there)
#
# Needs root (debootstrap, chroot, bind mounts). SELFLEARN_PYTHON_HOST: the Python with selflearn
# (default: the repository's .venv); SELFLEARN_DEBIAN_MIRROR: where debootstrap fetches sid.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CHROOT=${SELFLEARN_HA_CHROOT:-$HOME/.cache/selflearn/ha-2026.11}
MIRROR=${SELFLEARN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
HOST_PYTHON=${SELFLEARN_PYTHON_HOST:-$ROOT/.venv/bin/python}
REQS=$ROOT/tests_ha/requirements-2026.11.txt
# No pytest-homeassistant-custom-component for 2026.11.0 is on the index yet: 0.13.375 (the test
# helpers of 2026.10.4) without its pin of the core, patched where 2026.11 moved a helper.
HARNESS=pytest-homeassistant-custom-component==0.13.375
BUILD=1  # raise when build() changes: the venv is rebuilt
STAMP=$CHROOT/.installed-$( (cat "$REQS"; echo "$BUILD") | cksum | cut -d' ' -f1)
SITE=/opt/ha/lib/python3.14/site-packages

die() { echo "core2026: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot and bind mounts)"

in_chroot() {  # a clean environment inside the chroot
  chroot "$CHROOT" /usr/bin/env -i PATH=/opt/ha/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt "$@"
}

build() {
  if [ ! -x "$CHROOT/usr/bin/python3.14" ]; then
    command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }
    rm -rf "$CHROOT.tmp"
    mkdir -p "$(dirname "$CHROOT")"
    echo "core2026: debootstrap sid into $CHROOT (python3.14, a compiler for pymicro-vad)"
    debootstrap --variant=minbase --include=python3.14,python3.14-venv,python3.14-dev,g++,ca-certificates \
      sid "$CHROOT.tmp" "$MIRROR" >"$CHROOT.log" 2>&1 || { tail -20 "$CHROOT.log" >&2; die "debootstrap failed"; }
    mv "$CHROOT.tmp" "$CHROOT"
  fi
  [ -f "$STAMP" ] && return 0
  # the host's certificate bundle (it may hold a proxy's) and resolver
  cp /etc/ssl/certs/ca-certificates.crt "$CHROOT/etc/ssl/certs/ca-certificates.crt"
  cp -L /etc/resolv.conf "$CHROOT/etc/resolv.conf"
  rm -rf "$CHROOT/opt/ha"
  in_chroot python3.14 -m venv /opt/ha
  cp "$REQS" "$CHROOT/root/requirements.txt"
  echo "core2026: pip install homeassistant==2026.11.0 and the test harness (pip warns the harness wants 2026.10.4)"
  in_chroot /opt/ha/bin/pip install -q --disable-pip-version-check --no-deps "$HARNESS"
  in_chroot /opt/ha/bin/pip install -q --disable-pip-version-check -r /root/requirements.txt
  in_chroot /opt/ha/bin/python - <<'PY'
from pathlib import Path

import pytest_homeassistant_custom_component as harness

common = Path(harness.__file__).parent / "common.py"
text = common.read_text()
old = """from homeassistant.components.logger import (
    DOMAIN as LOGGER_DOMAIN,
    SERVICE_SET_LEVEL,
    _clear_logger_overwrites,
)"""
new = """from homeassistant.components.logger import DOMAIN as LOGGER_DOMAIN, SERVICE_SET_LEVEL
from homeassistant.components.logger.helpers import _clear_logger_overwrites  # 2026.11"""
if old not in text and new not in text:
    raise SystemExit("core2026: the harness changed; its logger import was not found")
common.write_text(text.replace(old, new))
PY
  cat >"$CHROOT/usr/local/bin/selflearn-host-python" <<'SH'
#!/bin/sh
# The host's Python with selflearn: the host's root is bound at /host; the repository and /tmp
# are the same folders on both sides.
exec /usr/sbin/chroot /host /usr/bin/env -C "$PWD" "$SELFLEARN_PYTHON_HOST" "$@"
SH
  chmod +x "$CHROOT/usr/local/bin/selflearn-host-python"
  rm -f "$CHROOT"/.installed-*
  touch "$STAMP"
}

MOUNTED=()
unmount_all() {
  local i
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do umount -R -l "${MOUNTED[i]}" 2>/dev/null || true; done
}
bind() {  # bind $1 at $2 inside the chroot (recursively with -r), undone on exit
  local how=--bind
  if [ "$1" = -r ]; then how=--rbind; shift; fi
  mkdir -p "$CHROOT$2"
  mount "$how" "$1" "$CHROOT$2"
  mount --make-rprivate "$CHROOT$2"
  MOUNTED+=("$CHROOT$2")
}
mount_all() {
  trap unmount_all EXIT
  bind -r / /host  # first: the host as it is, before anything is mounted into the chroot
  bind -r /proc /proc
  bind -r /dev /dev
  bind /tmp /tmp
  bind "$ROOT" "$ROOT"
}

case "${1:-}" in
  build) build ;;
  test)
    shift
    build
    [ -x "$HOST_PYTHON" ] || die "no Python with selflearn at $HOST_PYTHON (make .venv first)"
    mount_all
    # Home Assistant aliases httpx to httpx2 when it is imported and refuses if httpx came first
    # (the harness's plugins import it): the core is imported before pytest loads them.
    in_chroot SELFLEARN_PYTHON=/usr/local/bin/selflearn-host-python SELFLEARN_PYTHON_HOST="$HOST_PYTHON" \
      /bin/sh -c 'cd "$0/tests_ha" && exec /opt/ha/bin/python -c "
import sys
import homeassistant  # noqa: F401
import pytest
sys.exit(pytest.main([\"-q\", \"-p\", \"no:cacheprovider\", *sys.argv[1:]]))" "$@"' "$ROOT" "$@"
    ;;
  run)  # any command in the chroot, e.g. a core to try in a browser: run hass -c /tmp/ha-config
    shift
    build >&2
    mount_all
    in_chroot "$@"
    ;;
  version)
    build >&2
    in_chroot /opt/ha/bin/python -c "from homeassistant.const import __version__ as v; print(v)"
    ;;
  mypy)
    build
    mount_all
    in_chroot /bin/sh -c 'cd "$0" && exec /opt/ha/bin/mypy --strict --python-version 3.14 custom_components/selflearn' "$ROOT"
    ;;
  *) die "usage: $0 build | test [PYTEST ARGS] | mypy | version | run COMMAND..." ;;
esac
