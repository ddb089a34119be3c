"""Generate ``docs/log-format.md`` from the schema's field docstrings.

``python -m selflearn.docgen > docs/log-format.md``; a test checks the file is current.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel

from selflearn.core import schema

INTRO = """# Log format (schema {version})

*Generated from `src/selflearn/core/schema.py` by `python -m selflearn.docgen`; do not edit by hand.*

A log is a stream of JSON lines (or a Parquet file with the same fields), each a **turn**, a
**feedback** event or a **dialogue** act (a question the assistant asked and how it ended), told
apart by `record_type`. A turn that asked a question is logged once the question has ended (see
`DialogueTrace`). Simulation truth is a separate stream of
**truth** records that only benchmarks read. Timestamps are ISO 8601 with a timezone;
a number (`12345`, `"12345"`) is refused, never read as seconds since 1970.
Ids are 1-{max_id} characters of `A-Z a-z 0-9 _ . : -`; texts are at most {max_text} characters.
Unknown fields are rejected, so a typo is an error, not silently ignored data.

Example turn:

```json
{example}
```
"""

EXAMPLE = (
    '{"record_type": "turn", "turn_id": "h1t7", "session_id": "h1s3", "user_id": "h1u0", '
    '"household_id": "h1",\n "timestamp": "2026-01-05T08:00:00Z", "device": {"device_id": "h1d0", '
    '"area": "Kitchen"},\n "wake": {"score": 0.93}, "asr": {"text": "kill the lights in the kitchen", '
    '"confidence": 0.88},\n "text": "kill the lights in the kitchen", "nlu": {"matched": false, "matcher": '
    '"none"},\n "result": {"status": "no_match", "response_text": "Sorry, I couldn\'t understand that"},\n'
    ' "barge_in": {"occurred": true, "offset_ms": 700}}'
)


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin in (tuple, list):
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return "object"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _section(model: type[BaseModel]) -> list[str]:
    lines = [
        f"## {model.__name__}",
        "",
        (model.__doc__ or "").strip(),
        "",
        "| field | type | required | description |",
        "|---|---|---|---|",
    ]
    for name, info in model.model_fields.items():
        required = "yes" if info.is_required() else "no"
        desc = " ".join((info.description or "").split()).replace("|", "\\|")
        lines.append(f"| `{name}` | {_type_name(info.annotation)} | {required} | {desc} |")
    lines.append("")
    return lines


def render() -> str:
    """The whole document."""
    out = [
        INTRO.format(
            version=schema.SCHEMA_VERSION,
            max_id=schema.MAX_ID_CHARS,
            max_text=schema.MAX_TEXT_CHARS,
            example=EXAMPLE,
        )
    ]
    for model in (
        schema.Turn,
        schema.DeviceContext,
        schema.WakeTrace,
        schema.AsrTrace,
        schema.AsrHypothesis,
        schema.NluTrace,
        schema.ErTrace,
        schema.ResolvedTarget,
        schema.ResultTrace,
        schema.BargeIn,
        schema.RewriteTrace,
        schema.DialogueTrace,
        schema.Feedback,
        schema.DialogueAct,
        schema.Truth,
        schema.Goal,
    ):
        out.extend(_section(model))
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render(), end="")
