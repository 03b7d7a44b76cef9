"""Log lines as the services render them: secrets redacted by their names, reason codes shown.

The redaction runs in the processors :func:`billing_events.logging.configure_logging` installs,
so these tests render through them (the ``rendered_logs`` fixture, JSON as in production).
The dead-letter line of a real consumer is in tests/events/test_pipeline.py.
"""

from __future__ import annotations

import logging

from billing_events.logging import _ScrubbingFormatter, get_logger
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
    assert line["request"] == {"login": "[redacted]", "password": "[redacted]"}  # nested too
    assert (line["code"], line["reason_code"], line["status_code"]) == ("conflicting_event_id", "block_once_a_year", 409)
    assert line["masked_phone"] == "+7 *** *** 48 75"


def test_nested_values_headers_and_texts_are_redacted(rendered_logs: RenderedLogs) -> None:
    get_logger("test").info(
        "seen", code="unknown_account", database_url="postgresql+asyncpg://billing:Pg-secret-1@db:5432/billing",
        deliveries=[{"destination": "olga@example.ru", "template": "payment_credited"}],
        headers={"X-Forwarded-For": "198.51.100.7", "Authorization": "Bearer abc.def"},
        error="refused +7 926 123-48-75 and olga@example.ru", client_address="198.51.100.7",
        confirmation_code="551234",
    )
    [line] = rendered_logs.lines()
    assert line["code"] == "unknown_account"  # a problem's code, what operators read
    assert line["confirmation_code"] == "[redacted]"
    assert line["database_url"] == "postgresql+asyncpg://billing:***@db:5432/billing"
    assert line["deliveries"] == [{"destination": "[redacted]", "template": "payment_credited"}]
    assert line["headers"] == {"X-Forwarded-For": "[redacted]", "Authorization": "[redacted]"}
    for leaked in ("Pg-secret-1", "198.51.100.7", "926 123-48-75", "olga@example.ru", "551234", "abc.def"):
        assert leaked not in rendered_logs.text


def test_a_traceback_is_scrubbed(rendered_logs: RenderedLogs) -> None:
    try:
        raise ValueError("1 validation error\nphone\n  bad [type=value_error, input_value='8 926 1234875', "
                         "input_type=str]\n[SQL: INSERT INTO t VALUES ($1)]\n[parameters: ('Smirnova',)]")
    except ValueError:
        get_logger("test").exception("failed")
    [line] = rendered_logs.lines()
    assert "Traceback" in line["exception"] and "[SQL: INSERT INTO t VALUES ($1)]" in line["exception"]
    assert "1234875" not in rendered_logs.text and "Smirnova" not in rendered_logs.text


def test_the_libraries_lines_are_scrubbed_too() -> None:
    formatter = _ScrubbingFormatter("%(name)s %(message)s")
    record = logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, "cannot reach %s",
                               ("postgresql://u:Pw-9@h/db",), None)
    assert formatter.format(record) == "aiokafka cannot reach postgresql://u:***@h/db"
