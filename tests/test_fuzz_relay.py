"""Fuzzing the relay over HTTP: mutated signed packages, multipart sends and status messages.

Whatever the bytes, the relay answers a receipt (201/200: a mutation it still accepts, such as
one in insignificant whitespace) or an RFC 9457 problem, never a 5xx; nothing it refused is
stored (the messages table grows only by what got a receipt), and the server log holds no
unexpected error. Derandomized and bounded like the other fuzz tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests
from hypothesis import event, given
from hypothesis import strategies as st

from exchange.client import RelayClient
from exchange.wire import detach

from .conftest import KysoEnv
from .exchangetools import (
    PROVINCE,
    VINH,
    Relay,
    clone_env,
    count_rows,
    running_relay,
    signed_package,
    signed_status,
)
from .fuzztools import XML_TOKENS, fuzz_settings, mutations, no_unexpected_server_errors
from .test_fuzz_http import is_problem

# System tests (fuzzing a live relay): only `make test` runs them.
pytestmark = [pytest.mark.system, pytest.mark.slow]


@pytest.fixture(scope="module")
def relay(kyso_env: KysoEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    env, cleanup = clone_env(kyso_env, tmp_path_factory.mktemp("relay-fuzz"))
    yield from running_relay(env)
    cleanup()


@pytest.fixture(scope="module")
def vinh(relay: Relay) -> RelayClient:
    return relay.env.client(VINH)


@pytest.fixture(scope="module")
def sent(relay: Relay, vinh: RelayClient) -> dict[str, bytes | str]:
    """A package Vinh sent the province (its id, to fuzz statuses) and another one to mutate."""
    package = signed_package(relay.env, VINH, [PROVINCE])
    message_id = vinh.send(package).message_id
    province = relay.env.client(PROVINCE)
    status = signed_status(relay.env, province, message_id, PROVINCE, "03")
    return {
        "package": signed_package(relay.env, VINH, [PROVINCE]),
        "message_id": message_id,
        "status": status,
    }


@pytest.fixture(scope="module")
def server_log(relay: Relay) -> Iterator[None]:
    with no_unexpected_server_errors(relay.env.data, relay.env.port):
        yield


def answered(response: requests.Response) -> bool:
    """Whether the relay took it (2xx); otherwise it must be a problem, never a server error."""
    assert response.status_code < 500, response.text[:300]
    event(str(response.status_code))
    if response.status_code < 300:
        return True
    is_problem(response)
    return False


@given(data=st.data())
@fuzz_settings(60)
def test_fuzz_send(
    relay: Relay, vinh: RelayClient, sent: dict, server_log: None, data: st.DataObject
) -> None:
    mutated = data.draw(mutations(sent["package"], XML_TOKENS))
    messages = count_rows(relay.env, "exchange_messages")
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    if data.draw(st.booleans()):
        response = vinh.request(
            "POST", "/api/v1/messages", data=mutated,
            headers={**headers, "Content-Type": "application/xml"}, ok=range(400, 600),
        )  # fmt: skip
    else:  # multipart: the (mutated) package without its attachments, matched by digest
        try:
            xml, parts = detach(mutated)
        except Exception:  # a mutation the client itself cannot take apart: send it whole
            xml, parts = mutated, []
        files = [("package", ("package.xml", xml, "application/xml"))]
        files += [
            (f"part{i}", (f"p{i}", p, "application/octet-stream")) for i, p in enumerate(parts)
        ]
        response = vinh.request(
            "POST", "/api/v1/messages", files=files, headers=headers, ok=range(400, 600)
        )
    if answered(response):  # a mutation that kept the signature intact: a real receipt
        assert response.headers["X-Kyso-Message-Id"] and b"SignatureValue" in response.content
    grew = count_rows(relay.env, "exchange_messages") - messages
    assert grew == (1 if response.status_code == 201 else 0), response.status_code


@given(data=st.data())
@fuzz_settings(50)
def test_fuzz_status(relay: Relay, sent: dict, server_log: None, data: st.DataObject) -> None:
    mutated = data.draw(mutations(sent["status"], XML_TOKENS))
    province = relay.env.client(PROVINCE)
    response = province.request(
        "POST", f"/api/v1/messages/{sent['message_id']}/status", data=mutated,
        headers={"Content-Type": "application/xml"}, ok=range(400, 600),
    )  # fmt: skip
    if answered(response):  # the one registration this message may get (then a duplicate)
        assert response.json()["code"] == "03", response.json()
