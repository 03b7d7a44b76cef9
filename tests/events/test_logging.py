"""Log lines as the services render them: secrets redacted by their names, reason codes shown.

The redaction runs in the processors :func:`billing_events.logging.configure_logging` installs,
so these tests render through them (the ``rendered_logs`` fixture, JSON as in production).
The dead-letter line of a real consumer is in tests/events/test_pipeline.py.
"""

from __future__ import annotations

from billing_events.logging import get_logger
from billing_events.testing.plugin import RenderedLogs

SECRETS = {
    "password": "Kx7-pass-word", "new_password": "Qz9-new-word", "password_hash": "$argon2id$v=19$abc",
    "reset_code": "482913", "one_time_code": "119034", "code_hash": "c0de-hash",
    "passport_series": "8317", "passport_number": "294856", "passport_text": "8317 294856",
    "date_of_birth": "1990-05-17", "date_of_issue": "2010-06-01", "issuing_authority": "OVD Tverskoy",
    "mobile_phone": "+79261234875", "phone": "+79261234876", "email": "olga@example.ru",
    "sealed_contact": "c2VhbGVk", "sealed_secret": "c2VjcmV0", "token": "eyJhbGciOi.token",
    "api_token": "svc-token-1", "private_key": "-----BEGIN PRIVATE KEY-----",
    "surname": "Smirnova", "first_name": "Olga", "patronymic": "Petrovna",
}


def test_secrets_are_redacted_by_their_names_and_reason_codes_stay(rendered_logs: RenderedLogs) -> None:
    get_logger("test").warning("refused", code="conflicting_event_id", reason_code="block_once_a_year",
                               status_code=409, masked_phone="+7 *** *** 48 75", **SECRETS,
                               request={"login": "100000000016", "password": SECRETS["password"]})
    [line] = rendered_logs.lines()
    for key, value in SECRETS.items():
        assert line[key] == "[redacted]", key
        assert value not in rendered_logs.text, f"{key} leaked"
    assert line["request"] == {"login": "100000000016", "password": "[redacted]"}  # nested too
    assert (line["code"], line["reason_code"], line["status_code"]) == ("conflicting_event_id", "block_once_a_year", 409)
    assert line["masked_phone"] == "+7 *** *** 48 75"
