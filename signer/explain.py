"""Plain-language explanations of a verdict, in Vietnamese and English.

Decree 23/2025 asks verification software to speak Vietnamese; auditors abroad read English.
"""

from __future__ import annotations

import dataclasses

from .report import Indication, SignatureReport, SubIndication
from .stamp_style import vietnam_time

# sub-indication → (Vietnamese, English) reason.
REASONS: dict[SubIndication, tuple[str, str]] = {
    SubIndication.FORMAT_FAILURE: (
        "Chữ ký sai định dạng hoặc cấu trúc tệp bị can thiệp.",
        "The signature is malformed or the file structure has been tampered with.",
    ),
    SubIndication.HASH_FAILURE: (
        "Nội dung đã bị thay đổi sau khi ký.",
        "The content was changed after it was signed.",
    ),
    SubIndication.SIG_CRYPTO_FAILURE: (
        "Giá trị chữ ký không khớp với khóa công khai của chứng thư số.",
        "The signature value does not match the certificate's public key.",
    ),
    SubIndication.REVOKED: (
        "Chứng thư số của người ký đã bị thu hồi trước thời điểm ký.",
        "The signer's certificate was revoked before the signing time.",
    ),
    SubIndication.EXPIRED: (
        "Chứng thư số của người ký đã hết hạn tại thời điểm ký.",
        "The signer's certificate had expired at the signing time.",
    ),
    SubIndication.NOT_YET_VALID: (
        "Chứng thư số của người ký chưa có hiệu lực tại thời điểm ký.",
        "The signer's certificate was not yet valid at the signing time.",
    ),
    SubIndication.NO_CERTIFICATE_CHAIN_FOUND: (
        "Không xây dựng được đường dẫn tin cậy tới một tổ chức chứng thực gốc được tin cậy.",
        "No path to a trusted root certificate authority could be built.",
    ),
    SubIndication.NO_SIGNING_CERTIFICATE_FOUND: (
        "Không tìm thấy chứng thư số của người ký.",
        "The signer's certificate could not be found.",
    ),
    SubIndication.TRY_LATER: (
        "Chưa có thông tin thu hồi chứng thư số (OCSP/CRL); hãy kiểm tra lại khi có kết nối.",
        "No revocation information (OCSP/CRL) is available yet; try again when online.",
    ),
    SubIndication.REVOKED_NO_POE: (
        "Chứng thư số đã bị thu hồi và không có bằng chứng chữ ký tồn tại trước thời điểm thu hồi.",
        "The certificate was revoked and there is no proof the signature existed before.",
    ),
    SubIndication.OUT_OF_BOUNDS_NO_POE: (
        "Chữ ký nằm ngoài thời hạn hiệu lực của chứng thư số và không có dấu thời gian chứng minh.",
        "The signature falls outside the certificate's validity and no timestamp proves otherwise.",
    ),
    SubIndication.CRYPTO_CONSTRAINTS_FAILURE: (
        "Thuật toán hoặc độ dài khóa không còn được chấp nhận.",
        "The algorithm or key size is no longer acceptable.",
    ),
    SubIndication.SIGNED_DATA_NOT_FOUND: (
        "Không tìm thấy dữ liệu đã được ký.",
        "The signed data could not be found.",
    ),
    SubIndication.CHAIN_CONSTRAINTS_FAILURE: (
        "Chuỗi chứng thư số không đáp ứng các ràng buộc (mục đích sử dụng khóa, chính sách).",
        "The certificate chain does not meet its constraints (key usage, policy).",
    ),
}
GENERIC_REASON = (
    "Không xác định được hiệu lực của chữ ký.",
    "The signature's validity could not be determined.",
)


def explain(report: SignatureReport) -> tuple[str, str]:
    """A short (Vietnamese, English) explanation of ``report``'s verdict."""
    who = report.signer.common_name if report.signer else None
    org = report.signer.organization if report.signer else None
    by_vi = f" của {who}" + (f" ({org})" if org and org != who else "") if who else ""
    by_en = f" by {who}" + (f" ({org})" if org and org != who else "") if who else ""
    when = report.timestamp_time or report.claimed_signing_time
    at_vi = f", ký lúc {vietnam_time(when)}" if when else ""
    at_en = f", signed at {vietnam_time(when)}" if when else ""
    if report.indication is Indication.TOTAL_PASSED:
        return (
            f"Chữ ký{by_vi} hợp lệ{at_vi}. Nội dung không bị thay đổi sau khi ký.",
            f"The signature{by_en} is valid{at_en}. The content has not changed since signing.",
        )
    vi, en = (
        REASONS.get(report.sub_indication, GENERIC_REASON)
        if report.sub_indication
        else (GENERIC_REASON)
    )
    if report.indication is Indication.TOTAL_FAILED:
        return f"Chữ ký{by_vi} KHÔNG hợp lệ: {vi}", f"The signature{by_en} is NOT valid: {en}"
    return (
        f"Chưa xác định được hiệu lực chữ ký{by_vi}: {vi}",
        f"The signature{by_en} could not be confirmed: {en}",
    )


def with_explanation(report: SignatureReport) -> SignatureReport:
    """``report`` with its ``explanation_vi`` and ``explanation_en``."""
    vi, en = explain(report)
    return dataclasses.replace(report, explanation_vi=vi, explanation_en=en)
