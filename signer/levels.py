"""Baseline signature levels shared by PAdES, XAdES and CAdES (ETSI EN 319 1x2)."""

from __future__ import annotations

from enum import StrEnum

from .errors import SigningFailed, UnsupportedFormat


class Level(StrEnum):
    """The baseline level of a signature, made or found (the same for all three formats)."""

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


# What XAdES and CAdES signing offer (PAdES also offers B-LT and B-LTA).
BASIC_LEVELS = (Level.B_B, Level.B_T)


def check_basic_level(level: Level, has_timestamper: bool, format_name: str) -> None:
    """Refuse a level XAdES/CAdES signing does not offer, or B-T without a TSA."""
    if level not in BASIC_LEVELS:
        offered = tuple(basic.value for basic in BASIC_LEVELS)
        raise UnsupportedFormat(
            f"unsupported {format_name} level {str(level)!r} (use one of {offered})"
        )
    if level == Level.B_T and not has_timestamper:
        raise SigningFailed("level B-T needs a timestamp authority (TSA)")
