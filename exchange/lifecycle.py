"""The lifecycle of a message at each recipient, as a small state machine (no I/O).

The recipient reports, in this order, with steps skippable but never reordered::

    01 arrived → 03 registered → 04 assigned → 05 in progress → 06 done
    01 arrived / nothing yet → 02 refused (a reason is required; nothing may follow)

so 06 never comes before 03 and nothing comes after 02 or 06. The sender may recall a
message it sent (13); every recipient that has not refused it then answers once, 15 (agrees)
or 16 (refuses). A package that revokes, updates or replaces an earlier one (BussinessDocType
1–3) is answered the same way. After agreeing to a recall a recipient reports nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import Forbidden, InvalidTransition

ARRIVED, REFUSED, REGISTERED, ASSIGNED, IN_PROGRESS, DONE = "01", "02", "03", "04", "05", "06"
RECALLED, AGREED, DENIED = "13", "15", "16"

FLOW_CODES = frozenset({ARRIVED, REFUSED, REGISTERED, ASSIGNED, IN_PROGRESS, DONE})
ANSWER_CODES = frozenset({AGREED, DENIED})
SENDER_CODES = frozenset({RECALLED})
FINAL = frozenset({REFUSED, DONE})

# What may follow each state (None: nothing reported yet).
NEXT: dict[str | None, frozenset[str]] = {
    None: frozenset({ARRIVED, REFUSED, REGISTERED}),
    ARRIVED: frozenset({REFUSED, REGISTERED}),
    REGISTERED: frozenset({ASSIGNED, IN_PROGRESS, DONE}),
    ASSIGNED: frozenset({IN_PROGRESS, DONE}),
    IN_PROGRESS: frozenset({DONE}),
    REFUSED: frozenset(),
    DONE: frozenset(),
}

ANSWERABLE_DOC_TYPES = frozenset({1, 2, 3})  # revoke, update, replace


@dataclass(frozen=True)
class Party:
    """One recipient's position in the lifecycle."""

    agency: str
    state: str | None
    answer: str | None


@dataclass(frozen=True)
class Transition:
    """What an accepted status changes and who receives it."""

    code: str
    deliver_to: tuple[str, ...]
    state: str | None = None  # the reporting recipient's new state
    answer: str | None = None  # the reporting recipient's answer (15/16)
    recall: bool = False


def _describe(state: str | None) -> str:
    return f"after {state}" if state else "as the first status"


def recipient_transition(
    code: str, party: Party, sender: str, *, recalled: bool, doc_type: int
) -> Transition:
    """A status ``code`` from recipient ``party``; :class:`InvalidTransition` if out of order."""
    if party.state == REFUSED:
        raise InvalidTransition(f"{party.agency} refused this message (02): nothing may follow")
    if recalled and party.answer == AGREED:
        raise InvalidTransition(f"{party.agency} agreed to the recall: nothing may follow")
    if code in ANSWER_CODES:
        if not recalled and doc_type not in ANSWERABLE_DOC_TYPES:
            raise InvalidTransition(
                f"status {code} answers a recall or an update; this message is neither"
            )
        if party.answer is not None:
            raise InvalidTransition(f"{party.agency} already answered ({party.answer})")
        return Transition(code, (sender,), answer=code)
    if code not in FLOW_CODES:
        raise InvalidTransition(f"a recipient cannot report status {code}")
    if recalled and party.answer is None:
        raise InvalidTransition("the sender recalled this message: answer 15 or 16 first")
    if code not in NEXT[party.state]:
        allowed = ", ".join(sorted(NEXT[party.state])) or "nothing"
        raise InvalidTransition(
            f"status {code} cannot come {_describe(party.state)} (allowed: {allowed})"
        )
    return Transition(code, (sender,), state=code)


def sender_transition(code: str, parties: Sequence[Party], *, recalled: bool) -> Transition:
    """A status ``code`` from the message's sender (only a recall, 13)."""
    if code not in SENDER_CODES:
        raise Forbidden(f"the sender of a message cannot report status {code}")
    if recalled:
        raise InvalidTransition("this message was already recalled")
    targets = tuple(p.agency for p in parties if p.state != REFUSED)
    if not targets:
        raise InvalidTransition("every recipient refused this message: nothing to recall")
    return Transition(code, targets, recall=True)
