"""What the log-format tests make the stand-ins print, and how they read the output back."""

from __future__ import annotations

import json
from typing import Any

SECRET = "a-long-random-session-key"  # FLASK_SESSION_SECRET_KEY in base_env: secret by its name
MARK = "mark-"
PRINTED = "\n".join(
    [
        '{"level": "INFO", "message": "mark-1 key ' + SECRET + '", "loggerName": "spiffworkflow_backend", '
        '"processID": 7, "timestamp": "2026-12-04 10:00:00,000"}',
        "mark-2 plain line with " + SECRET + " in it",
        '{"role": "theirs", "message": "mark-3 a line that names its own role"}',
        '  {"message": "mark-4 \\u00e9t\\u00e9 \\"quoted\\"", "n": [1, 2, {"deep": null}]}  ',
        '[1, 2, "mark-5 a JSON array is not an object"]',
        "{mark-6 looks like an object but is not JSON}",
        "{}",
    ]
)


def objects(lines: list[str]) -> list[dict[str, Any]]:
    """Every line as a JSON object; fails naming the first line that is not one."""
    out = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            raise AssertionError(f"not JSON: {line!r}") from None
        assert isinstance(value, dict), line
        out.append(value)
    return out


def joined(parts: list[dict[str, Any]]) -> str:
    """The original line from its numbered parts (in the order they came)."""
    assert [p["part"] for p in parts] == list(range(1, len(parts) + 1))
    assert {p["parts"] for p in parts} == {len(parts)}
    return "".join(p["message"] for p in parts)
