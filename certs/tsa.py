"""An RFC 3161 time-stamping authority.

Tokens are CMS SignedData over a TSTInfo (RFC 3161 2.4.2) signed through pyHanko with the
ESS signing-certificate-v2 attribute (RFC 5816). Serial numbers come from a persistent counter,
so they increase across restarts and across processes sharing the database.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from pyhanko.sign.signers import Signer
from pyhanko.sign.timestamps import TimeStamper

from .aio import run_sync

MAX_REQUEST_BYTES = 64 * 1024

# A policy OID in the UUID arc (X.667), so it needs no registration.
KYSO_TSA_POLICY = "2.25." + str(uuid.UUID("6f1d3c52-0b7e-4c3e-9a51-6b1f0d6c2a41").int)

# Digest lengths the TSA accepts in a message imprint; SHA-1 is refused (badAlg).
_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64, "sha3_256": 32, "sha3_512": 64}


class TimeStampRejected(Exception):
    """A request the TSA refuses, with the RFC 3161 failure bit to report."""

    def __init__(self, failure: str, text: str) -> None:
        super().__init__(text)
        self.failure = failure
        self.text = text


@dataclass(frozen=True)
class TimeStampAuthority:
    """Issues time-stamp tokens signed by ``signer`` (whose certificate has EKU timeStamping)."""

    signer: Signer
    next_serial: Callable[[], int]
    policy: str = KYSO_TSA_POLICY
    accuracy: dt.timedelta = dt.timedelta(seconds=1)
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)

    def respond(self, request_der: bytes) -> bytes:
        """Answer a DER TimeStampReq with a DER TimeStampResp (granted or rejection)."""
        try:
            request = parse_request(request_der)
            self._check_policy(request)
        except TimeStampRejected as rejected:
            return rejection(rejected.failure, rejected.text).dump()
        return self.stamp(request).dump()

    def stamp(self, request: tsp.TimeStampReq) -> tsp.TimeStampResp:
        """Issue a token for a parsed, acceptable request."""
        return run_sync(self.async_stamp(request))

    async def async_stamp(self, request: tsp.TimeStampReq) -> tsp.TimeStampResp:
        """:meth:`stamp` for callers already inside an event loop (in-process clients)."""
        tst_info = self._tst_info(request)
        token = await self.signer.async_sign_general_data(
            cms.EncapsulatedContentInfo(
                {
                    "content_type": "tst_info",
                    "content": cms.ParsableOctetString(tst_info.dump()),
                }
            ),
            "sha256",
            detached=False,
            use_cades=True,
        )
        if not request["cert_req"].native:
            token = _without_certificates(token)
        granted = tsp.PKIStatusInfo({"status": "granted"})
        return tsp.TimeStampResp({"status": granted, "time_stamp_token": token})

    def _check_policy(self, request: tsp.TimeStampReq) -> None:
        asked = request["req_policy"].native
        if asked is not None and asked != self.policy:
            raise TimeStampRejected("unaccepted_policy", f"policy {asked} is not offered")

    def _tst_info(self, request: tsp.TimeStampReq) -> tsp.TSTInfo:
        accuracy_ms = int(self.accuracy.total_seconds() * 1000)
        seconds, millis = divmod(accuracy_ms, 1000)
        accuracy = {"seconds": seconds} if not millis else {"seconds": seconds, "millis": millis}
        certificate = self.signer.signing_cert
        if certificate is None:
            raise TimeStampRejected("system_failure", "the TSA has no certificate")
        tsa_name = asn1_x509.Name.load(certificate.subject.dump())
        info = {
            "version": "v1",
            "policy": self.policy,
            "message_imprint": request["message_imprint"],
            "serial_number": self.next_serial(),
            "gen_time": core.GeneralizedTime(self.clock()),
            "accuracy": tsp.Accuracy(accuracy),
            "ordering": False,
            "tsa": asn1_x509.GeneralName({"directory_name": tsa_name}),
        }
        if request["nonce"].native is not None:
            info["nonce"] = request["nonce"]
        return tsp.TSTInfo(info)


def parse_request(request_der: bytes) -> tsp.TimeStampReq:
    """Parse and check a TimeStampReq; raise :class:`TimeStampRejected` if it is not usable."""
    if not request_der:
        raise TimeStampRejected("bad_data_format", "empty request")
    if len(request_der) > MAX_REQUEST_BYTES:
        raise TimeStampRejected("bad_data_format", "request too large")
    try:
        request = tsp.TimeStampReq.load(request_der, strict=True)
        request.native  # noqa: B018 - asn1crypto parses lazily; force it here
        imprint = request["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        digest = imprint["hashed_message"].native
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # AttributeError: asn1crypto has no .native for some types it decodes (found by
        # tests/test_fuzz_http.py, a 500 before).
        raise TimeStampRejected("bad_data_format", f"not a TimeStampReq: {exc}") from None
    if request["version"].native != "v1":
        raise TimeStampRejected("bad_request", "only version 1 requests are understood")
    if algorithm not in _DIGEST_SIZES:
        raise TimeStampRejected("bad_alg", f"hash algorithm {algorithm} is not accepted")
    if len(digest) != _DIGEST_SIZES[algorithm]:
        raise TimeStampRejected("bad_data_format", "hashed message has the wrong length")
    if request["extensions"].native:
        raise TimeStampRejected("unaccepted_extensions", "request extensions are not supported")
    return request


class _TimeStampResp(core.Sequence):
    # asn1crypto's TimeStampResp forgets that the token is OPTIONAL (RFC 3161 2.4.2).
    _fields = [  # noqa: RUF012 - asn1crypto declares fields this way
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def rejection(failure: str, text: str) -> _TimeStampResp:
    """A TimeStampResp with status ``rejection`` and one failure bit."""
    status = tsp.PKIStatusInfo(
        {
            "status": "rejection",
            "status_string": [text],
            "fail_info": tsp.PKIFailureInfo({failure}),
        }
    )
    return _TimeStampResp({"status": status})


def _without_certificates(token: cms.ContentInfo) -> cms.ContentInfo:
    # RFC 3161 2.4.1: without certReq the token must not carry certificates.
    signed = token["content"]
    fields = {
        name: signed[name]
        for name in ("version", "digest_algorithms", "encap_content_info", "signer_infos")
    }
    return cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(fields)})


class InProcessTimeStamper(TimeStamper):
    """A pyHanko time stamper that asks the PKI's TSA directly, without HTTP."""

    def __init__(self, tsa: TimeStampAuthority) -> None:
        super().__init__(include_nonce=True)
        self.tsa = tsa

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        return await self.tsa.async_stamp(req)


def stamp_digest(tsa: TimeStampAuthority, digest: bytes) -> bytes:
    """A DER RFC 3161 token over a SHA-256 digest (audit checkpoints)."""
    request = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": tsp.MessageImprint(
                {
                    "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
                    "hashed_message": digest,
                }
            ),
            "nonce": secrets.randbits(63),
            "cert_req": True,
        }
    )
    token: cms.ContentInfo = tsa.stamp(request)["time_stamp_token"]
    data: bytes = token.dump()
    return data
