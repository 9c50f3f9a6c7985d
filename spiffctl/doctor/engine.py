"""``spiffctl doctor``'s engine: the check model, the time-bounded concurrent runner, the renderers.

The checks themselves live in :mod:`spiffctl.doctor.checks`, one small function each, listed in
:data:`spiffctl.doctor.checks.CHECKS`.

The time bound is a promise to the operator (and CI): doctor answers within ``--timeout`` plus a
fraction of a second even when every dependency swallows packets. Drivers do not all keep their
own timeouts (libpq rounds ``connect_timeout`` up to 2 s; a server that accepts and never answers
can hold a read for longer than asked), so every check runs in a daemon thread against one global
deadline (:mod:`spiffctl.util.bounded`). Checks still running at the deadline are reported as failed,
and the caller leaves without joining threads that may never return.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from spiffctl.config.problem import Problem
from spiffctl.config.settings import Settings
from spiffctl.probes import one_line
from spiffctl.roles import Need, Role
from spiffctl.util import bounded
from spiffctl.util.redact import Redactor

Status = Literal["ok", "warn", "fail", "skip"]
# The JSON document's version (docs/doctor.schema.json): raised only for a change that breaks consumers.
VERSION = 1
# Time kept back from the deadline for rendering, flushing and leaving.
EXIT_MARGIN = 0.12


@dataclass(frozen=True)
class Result:
    """One row of the report. ``hint`` is the concrete fix; empty when the check is ok.

    ``problems``: the findings of a check that can find several (the configuration), each with
    its own fix, so the check keeps one stable ``id`` however many there are.
    """

    name: str
    status: Status
    detail: str
    hint: str = ""
    elapsed_ms: int = 0
    problems: tuple[Problem, ...] = ()

    @property
    def id(self) -> str:
        """Stable whatever the result: consumers key on it (the name is for people)."""
        return self.name.replace(" ", "-")

    def as_json(self) -> dict[str, object]:
        # Key order is part of the stable document.
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "hint": self.hint,
            "elapsed_ms": self.elapsed_ms,
            "problems": [
                {"variable": p.variable, "status": _STATUS[p.severity], "message": p.message, "fix": p.fix}
                for p in self.problems
            ],
        }


_STATUS: dict[str, Status] = {"error": "fail", "warning": "warn"}


def findings(name: str, problems: Sequence[Problem]) -> Result:
    """One result for several problems: failed when any is an error, errors listed first."""
    ordered = tuple(sorted(problems, key=lambda p: p.severity != "error"))
    errors = sum(1 for p in ordered if p.severity == "error")
    counts = [
        f"{n} {word}{'s' if n > 1 else ''}" for n, word in ((errors, "error"), (len(ordered) - errors, "warning")) if n
    ]
    detail = f"{', '.join(counts)}: {', '.join(dict.fromkeys(p.variable for p in ordered))}"
    hint = ordered[0].fix if len(ordered) == 1 else "fix each problem as listed, errors first"
    return Result(name, "fail" if errors else "warn", detail, hint, problems=ordered)


def ok(name: str, detail: str) -> Result:
    return Result(name, "ok", detail)


def warn(name: str, detail: str, hint: str) -> Result:
    return Result(name, "warn", detail, hint)


def fail(name: str, detail: str, hint: str) -> Result:
    return Result(name, "fail", detail, hint)


def skip(name: str, detail: str) -> Result:
    return Result(name, "skip", detail)


@dataclass(frozen=True)
class Context:
    """What every check may read. ``deadline`` is on the monotonic clock."""

    settings: Settings
    role: str  # a role name or "all"
    roles: tuple[Role, ...]
    timeout: float
    deadline: float

    @property
    def needs(self) -> set[Need]:
        return {need for role in self.roles for need in role.needs}

    def budget(self) -> float:
        """The timeout to hand a driver now: what is left before the deadline (drivers may overrun it)."""
        return max(0.1, self.deadline - time.monotonic() - 0.05)


CheckFn = Callable[[Context], "Result | Sequence[Result]"]


def always(ctx: Context) -> bool:
    return True


@dataclass(frozen=True)
class Spec:
    """A check: its (primary) name, the function, and when it applies.

    ``on_timeout`` is the status reported when the function has not returned by the deadline:
    ``warn`` for checks that can only ever warn (the connector proxy).
    """

    name: str
    run: CheckFn
    wanted: Callable[[Context], bool] = always
    on_timeout: Status = "fail"
    # What the check talks to, for the "no answer" row (the check itself never returned to say).
    where: Callable[[Context], str] | None = None


@dataclass
class Report:
    role: str
    results: list[Result] = field(default_factory=list)
    unfinished: int = 0  # threads still running: the caller must not wait for them

    @property
    def ok(self) -> bool:
        return not any(r.status == "fail" for r in self.results)

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)


def run_checks(specs: Iterable[Spec], ctx: Context, redactor: Redactor) -> Report:
    """Run every wanted check concurrently; return by ``ctx.deadline`` whatever happened."""
    wanted = [s for s in specs if s.wanted(ctx)]
    started = time.monotonic()

    def task(spec: Spec) -> Callable[[], list[Result]]:
        def run() -> list[Result]:
            t0 = time.monotonic()
            try:
                out = spec.run(ctx)
                rows = [out] if isinstance(out, Result) else list(out)
            except Exception as e:  # a check bug must become a row, not a traceback
                rows = [fail(spec.name, f"internal error: {type(e).__name__}: {e}", "report this as a spiffctl bug")]
            ms = round((time.monotonic() - t0) * 1000)
            return [replace(r, elapsed_ms=r.elapsed_ms or ms) for r in rows]

        return run

    slots, unfinished = bounded.race([task(s) for s in wanted], ctx.deadline, name="doctor")
    report = Report(ctx.role, unfinished=unfinished)
    waited = round((time.monotonic() - started) * 1000)
    for spec, rows in zip(wanted, slots, strict=True):
        if rows is None:
            silent = f"no answer within {_secs(ctx.timeout)} s"
            where = _where(spec, ctx)
            rows = [
                Result(
                    spec.name,
                    spec.on_timeout,
                    f"{where}: {silent}" if where else silent,
                    "check that it is reachable from here (firewall, DNS, a server that accepts but never "
                    "answers), or raise --timeout",
                    waited,
                )
            ]
        report.results.extend(_clean(r, redactor) for r in rows)
    return report


def _where(spec: Spec, ctx: Context) -> str:
    try:
        return spec.where(ctx) if spec.where else ""
    except Exception:
        return ""


def _clean(r: Result, redactor: Redactor) -> Result:
    """Every word that leaves doctor goes through the redactor, so no check can forget to."""

    def clean(text: str) -> str:
        return one_line(redactor(text), 400)

    problems = tuple(replace(p, message=clean(p.message), fix=clean(p.fix)) for p in r.problems)
    return replace(r, detail=clean(r.detail), hint=clean(r.hint), problems=problems)


def _secs(value: float) -> str:
    return f"{value:g}"


# ------------------------------------------------------------------------------------------ output


def to_json(report: Report) -> str:
    return json.dumps(
        # ASCII escapes: one valid document whatever the terminal's or pipe's encoding.
        {"version": VERSION, "ok": report.ok, "role": report.role, "checks": [r.as_json() for r in report.results]}
    )


_MARKS = {"ok": "✓", "warn": "!", "fail": "✗", "skip": "-"}
_ASCII_MARKS = {"ok": "ok", "warn": "!", "fail": "X", "skip": "-"}


def marks(encoding: str | None) -> dict[str, str]:
    """✓ ! ✗ where the terminal can print them; ASCII otherwise (a C locale without UTF-8)."""
    try:
        "".join(_MARKS.values()).encode(encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return _ASCII_MARKS
    return _MARKS


def to_text(report: Report, *, encoding: str | None = None, header: str = "") -> str:
    m = marks(encoding)
    width = max((len(r.name) for r in report.results), default=10)
    lines = [header, ""] if header else []
    for r in report.results:
        lines.append(f"  {m[r.status]:<2} {r.name:<{width}}  {r.detail}")
    rows = [
        (status, f"{r.name}: {detail}", hint)
        for r in report.results
        for status, detail, hint in (
            [(_STATUS[p.severity], f"{p.variable} {p.message}", p.fix) for p in r.problems]
            or [(r.status, r.detail, r.hint)]
        )
        if status in ("fail", "warn")
    ]
    rows.sort(key=lambda row: 0 if row[0] == "fail" else 1)  # failures first; stable within a status
    if rows:
        lines += ["", "To fix, failures first:"]
        for status, text, hint in rows:
            lines.append(f"  {m[status]:<2} {text}")
            if hint:
                lines.append(f"     fix: {hint}")
    lines += ["", verdict(report)]
    return "\n".join(lines) + "\n"


def verdict(report: Report) -> str:
    counts = ", ".join(f"{report.count(s)} {label}" for s, label in _LABELS if report.count(s))
    if not report.ok:
        return f"FAIL: {counts} (role {report.role})"
    if report.count("warn"):
        return f"OK with warnings: {counts} (role {report.role})"
    return f"OK: {counts} (role {report.role})"


_LABELS: tuple[tuple[Status, str], ...] = (("fail", "failed"), ("warn", "warned"), ("ok", "ok"), ("skip", "skipped"))


def write(text: str) -> None:
    # A detail may carry non-ASCII (a path, a driver message, "…"); never crash on a C locale.
    encoding = sys.stdout.encoding or "utf-8"
    sys.stdout.write(text.encode(encoding, "replace").decode(encoding))
    sys.stdout.flush()
