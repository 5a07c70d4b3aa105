"""Routing rules: which agency may send documents to which, as configuration.

Rules name a sender level, a recipient level and the relation the recipient must have to the
sender in the agency tree (``parent``, ``child``, ``ancestor``, ``descendant``, ``sibling``,
``same-tree``, ``any``). With ``"symmetric": true`` every rule also holds the other way round
(a commune → district ``parent`` rule lets the district send to its communes). The levels are
the directory's own words, so a reformed tree (no districts, merged communes) needs a new file,
not new code. The shipped rules are ``exchange/data/routing.json``; another file is given by
the caller (Kyso's ``KYSO_ROUTING``, read in ``kyso/config.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from directory import Agency, Directory, DirectoryError, UnknownAgency

from .errors import RoutingDenied, UnknownRecipient

DEFAULT_RULES = "routing.json"
ANY_LEVEL = "*"

RELATIONS = ("parent", "child", "ancestor", "descendant", "sibling", "same-tree", "any")
INVERSE = {
    "parent": "child",
    "child": "parent",
    "ancestor": "descendant",
    "descendant": "ancestor",
    "sibling": "sibling",
    "same-tree": "same-tree",
    "any": "any",
}


@dataclass(frozen=True)
class Rule:
    sender_level: str
    recipient_level: str
    relation: str

    def matches(self, directory: Directory, sender: Agency, recipient: Agency) -> bool:
        if self.sender_level not in (ANY_LEVEL, sender.level):
            return False
        if self.recipient_level not in (ANY_LEVEL, recipient.level):
            return False
        return related(directory, sender, recipient, self.relation)

    def inverse(self) -> Rule:
        return Rule(self.recipient_level, self.sender_level, INVERSE[self.relation])


def related(directory: Directory, sender: Agency, recipient: Agency, relation: str) -> bool:
    """Whether ``recipient`` stands in ``relation`` to ``sender`` in the tree."""
    if relation == "any":
        return True
    if relation == "parent":
        return sender.parent == recipient.code
    if relation == "child":
        return recipient.parent == sender.code
    if relation == "ancestor":
        return any(a.code == recipient.code for a in directory.ancestors(sender.code))
    if relation == "descendant":
        return any(a.code == sender.code for a in directory.ancestors(recipient.code))
    if relation == "sibling":
        return sender.parent is not None and sender.parent == recipient.parent
    if relation == "same-tree":
        return _root(directory, sender) == _root(directory, recipient)
    raise DirectoryError(f"unknown routing relation {relation!r}")


def _root(directory: Directory, agency: Agency) -> str:
    chain = directory.ancestors(agency.code)
    return chain[-1].code if chain else agency.code


@dataclass(frozen=True)
class RoutingRules:
    """The rules in force (already expanded when symmetric)."""

    rules: tuple[Rule, ...]
    source: str = "built-in"

    def allows(self, directory: Directory, sender: str, recipient: str) -> bool:
        if sender == recipient:
            return False
        a, b = directory.get(sender), directory.get(recipient)
        return any(rule.matches(directory, a, b) for rule in self.rules)

    def check(self, directory: Directory, sender: str, recipients: Iterable[str]) -> None:
        """Raise :class:`UnknownRecipient` or :class:`RoutingDenied` for the first bad one."""
        for code in recipients:
            try:
                directory.get(code)
            except UnknownAgency:
                raise UnknownRecipient(f"recipient {code} is not in the directory") from None
            if not self.allows(directory, sender, code):
                a, b = directory.get(sender), directory.get(code)
                raise RoutingDenied(
                    f"{sender} ({a.level}) may not send to {code} ({b.level}): no routing rule "
                    f"allows it ({self.source})"
                )

    def reachable(self, directory: Directory, sender: str) -> list[Agency]:
        """Every agency ``sender`` may send to, in directory order."""
        return [a for a in directory if self.allows(directory, sender, a.code)]


def rules_from_json(data: dict[str, Any], source: str = "built-in") -> RoutingRules:
    try:
        rules = [
            Rule(str(item["from"]), str(item["to"]), str(item.get("relation", "any")))
            for item in data["rules"]
        ]
    except (KeyError, TypeError) as exc:
        raise DirectoryError(f"routing rules ({source}) lack a field: {exc}") from None
    for rule in rules:
        if rule.relation not in RELATIONS:
            raise DirectoryError(
                f"routing rules ({source}): unknown relation {rule.relation!r} "
                f"(one of {', '.join(RELATIONS)})"
            )
    if data.get("symmetric", True):
        rules += [rule.inverse() for rule in rules]
    return RoutingRules(tuple(dict.fromkeys(rules)), source)


def load_rules(path: Path | str | None = None) -> RoutingRules:
    """The rules of the file ``path``, else the shipped defaults."""
    if path:
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise DirectoryError(f"cannot read routing rules {file}: {exc.strerror}") from None
        source = str(file)
    else:
        text = resources.files("exchange.data").joinpath(DEFAULT_RULES).read_text("utf-8")
        source = f"exchange/data/{DEFAULT_RULES}"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DirectoryError(f"routing rules {source} are not JSON: {exc}") from None
    return rules_from_json(data, source)
