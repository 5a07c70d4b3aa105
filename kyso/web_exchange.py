"""The clerk's page of the exchange (văn thư): inbox and outbox with each message's status.

Behind the web login of :mod:`kyso.web`: a clerk or officer of an agency sees that agency's
received and sent messages; administrators and auditors see the dead letters and the latest
messages of the relay. Read-only: statuses are signed and sent by the agency's system
(``kyso status``), not from this page. Vietnamese only, like the official forms.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, render_template

from exchange import views
from signer.edxml import STATUS_MEANINGS

from .services import Services, current_services
from .web import current_user, login_required

blueprint = Blueprint("exchange_web", __name__)

STATE_LABELS = {code.value: vi for code, (vi, _) in STATUS_MEANINGS.items()}


def _label(code: str | None) -> str:
    return STATE_LABELS.get(code or "", "Chưa có trạng thái")


def _recipients_text(recipients: list[dict[str, Any]]) -> list[str]:
    return [
        f"{r['agency']}: {_label(r['state'])}"
        + (f" · {_label(r['answer'])}" if r.get("answer") else "")
        for r in recipients
    ]


@blueprint.get("/exchange")
@login_required("verify")
def exchange_page() -> str:
    user = current_user()
    assert user is not None
    services = current_services()
    messages = services.exchange.messages
    principal = user.principal()  # a clerk or officer acts for their agency
    if principal.agency is not None:
        inbox = [views.received(m) for m in messages.received(principal, 100)]
        outbox = [views.sent(m) for m in messages.outbox(principal, 100)]
        agency = services.agencies.get(principal.agency)
        return render_template(
            "exchange.html",
            agency=agency,
            inbox=inbox,
            outbox=outbox,
            label=_label,
            recipients_text=_recipients_text,
            dead_letters=None,
        )
    return render_template(
        "exchange.html",
        agency=None,
        inbox=[],
        outbox=[],
        label=_label,
        recipients_text=_recipients_text,
        dead_letters=[
            views.dead_letter(d) for d in services.exchange.mailbox.dead_letters(principal)
        ],
    )


def init_app(app: Flask, services: Services) -> None:
    """Mount the clerk's page on ``app``."""
    app.register_blueprint(blueprint)
