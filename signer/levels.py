"""Baseline signature levels shared by PAdES, XAdES and CAdES (ETSI EN 319 1x2)."""

from __future__ import annotations

from enum import StrEnum


class Level(StrEnum):
    B_B = "B-B"
    B_T = "B-T"
    B_LT = "B-LT"
    B_LTA = "B-LTA"

    @property
    def timestamped(self) -> bool:
        return self is not Level.B_B

    @property
    def long_term(self) -> bool:
        return self in (Level.B_LT, Level.B_LTA)
