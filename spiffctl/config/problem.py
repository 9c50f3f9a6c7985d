"""One configuration finding, shared by the settings rules and the variables table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One configuration finding: which variable, what is wrong, how to fix it."""

    variable: str
    message: str
    fix: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.variable}: {self.message}; {self.fix}"
