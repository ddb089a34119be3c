"""Files beside the store: quarantine files scrubbed of a household's lines."""

from __future__ import annotations

import os
import re
from pathlib import Path


def scrub_lines(path: Path, *ids: str) -> int:
    """Rewrite the JSON-lines file ``path`` (a quarantine file) without the lines that mention
    every one of ``ids`` as a whole token, atomically (through a ``.tmp`` file); returns how many
    lines went. A missing file is nothing to do."""
    if not ids or not path.is_file():
        return 0
    patterns = [re.compile(rf"(?<![A-Za-z0-9_.:\-]){re.escape(i)}(?![A-Za-z0-9_.:\-])") for i in ids]
    kept: list[bytes] = []
    gone = 0
    with path.open("rb") as fh:
        for line in fh:
            text = line.decode("utf-8", "replace")
            if all(p.search(text) for p in patterns):
                gone += 1
            else:
                kept.append(line)
    if gone:
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as fh:
            fh.writelines(kept)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    return gone
