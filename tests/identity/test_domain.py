"""The identity service's pure rules: registration, numbers, masks, codes and throttling."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_contracts.catalog.identity import LegalStatus, PasswordPurpose
from identity.domain import (
    CODE_POLICY,
    LOGIN_POLICY,
    LOGIN_THROTTLE,
    PASSWORD_POLICY,
    RESET_REQUEST_THROTTLE,
    Attempt,
    FieldError,
    InvalidAccountNumber,
    InvalidCommand,
    InvalidLoginIdentifier,
    LoginGuard,
    LoginKind,
    PasswordPolicy,
    Redemption,
    Registration,
    RegistrationCommand,
    ResetCodePolicy,
    ThrottlePolicy,
    ThrottleState,
    account_number_from_sequence,
    contract_number,
    email_lookup_text,
    guarded_attempt,
    is_valid_account_number,
    issue_pending_password,
    issue_reset_code,
    luhn_check_digit,
    mask_email,
    mask_phone,
    parse_account_number,
    parse_contract_number,
    parse_login_identifier,
    rate_limited_request,
    record_login,
    redeem_reset_code,
    validate_recovery_claim,
    validate_registration,
    years_later,
)
from identity.domain.numbers import MAX_SEQUENCE

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
REGIONS = frozenset({"Moscow", "Tver region"})
PASSPORT_SERIES = "4508"
PASSPORT_NUMBER = "731942"


def valid_form(**changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "contract_accepted": True,
        "legal_status": "person",
        "surname": "Иванов-Петров",
        "first_name": "Иван",
        "patronymic": "Сергеевич",
        "passport_series": PASSPORT_SERIES,
        "passport_number": PASSPORT_NUMBER,
        "date_of_birth": "1990-05-17",
        "issuing_authority": "ОВД района Арбат г. Москвы",
        "date_of_issue": "2010-06-01",
        "mobile_phone": "+7 912 345-67-89",
        "email": "ivan.petrov@mail.ru",
        "region": "Moscow",
        "language": "ru",
    }
    form.update(changes)
    return form


def register(form: dict[str, Any], now: datetime = NOW) -> Registration:
    return validate_registration(form, now=now, regions=REGIONS)


def refusals(form: dict[str, Any], now: datetime = NOW) -> dict[str, FieldError]:
    with pytest.raises(InvalidCommand) as caught:
        register(form, now)
    return {error.field: error for error in caught.value.errors}


# --- registration -----------------------------------------------------------------------------


def test_a_valid_registration_is_accepted_and_normalised() -> None:
    registration = register(valid_form(passport_series="45 08", email="Ivan.Petrov@MAIL.RU"))

    assert registration.passport_series == "4508"
    assert registration.mobile_phone == "+79123456789"
    assert registration.email == "Ivan.Petrov@mail.ru"
    assert registration.legal_status is LegalStatus.PERSON
    assert registration.date_of_birth == date(1990, 5, 17)


@pytest.mark.parametrize(
    "written",
    ["+7 912 345-67-89", "8 (912) 345-67-89", "89123456789", "79123456789", "912 345 67 89"],
)
def test_russian_mobile_numbers_are_normalised_to_e164(written: str) -> None:
    assert register(valid_form(mobile_phone=written)).mobile_phone == "+79123456789"


def test_a_foreign_mobile_number_with_country_code_is_accepted() -> None:
    assert register(valid_form(mobile_phone="+421 905 123 456")).mobile_phone == "+421905123456"


def test_optional_fields_may_be_blank() -> None:
    registration = register(valid_form(patronymic="  ", email=""))

    assert registration.patronymic is None
    assert registration.email is None


def test_an_organisation_registers_like_a_person() -> None:
    registration = register(valid_form(legal_status="organisation"))

    assert registration.legal_status is LegalStatus.ORGANISATION


def test_a_typed_command_is_validated_by_the_same_rules() -> None:
    command = RegistrationCommand.model_validate(valid_form(region="Atlantis"))

    with pytest.raises(InvalidCommand) as caught:
        validate_registration(command, now=NOW, regions=REGIONS)
    assert caught.value.fields == ("region",)


def test_a_registration_cannot_be_constructed_around_the_rules() -> None:
    with pytest.raises(TypeError, match="validate_registration"):
        Registration.model_validate(valid_form(date_of_birth="2020-01-01"))


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("contract_accepted", False, "contract_not_accepted"),
        ("legal_status", "alien", "enum"),
        ("surname", "", "empty"),
        ("surname", "Ivanov2", "name_characters"),
        ("first_name", "-Ivan", "name_characters"),
        ("patronymic", "S3rgeevich", "name_characters"),
        ("passport_series", "450", "passport_series_shape"),
        ("passport_series", "45O8", "passport_series_shape"),
        ("passport_number", "7319420", "passport_number_shape"),
        ("passport_number", "73194", "passport_number_shape"),
        ("date_of_birth", "17.05.1990", "date_from_datetime_parsing"),
        ("date_of_birth", "2030-01-01", "born_in_future"),
        ("date_of_birth", "1890-01-01", "implausible_birth_date"),
        ("date_of_birth", "2010-05-17", "under_age"),
        ("issuing_authority", " ", "empty"),
        ("date_of_issue", "1989-01-01", "issued_before_birth"),
        ("date_of_issue", "2004-05-16", "issued_before_passport_age"),
        ("date_of_issue", "2026-03-11", "issued_in_future"),
        ("mobile_phone", "12345", "not_a_phone"),
        ("mobile_phone", "phone", "not_a_phone"),
        ("mobile_phone", "+7 912 345 67 8", "not_a_phone"),
        ("mobile_phone", "8 495 123-45-67", "not_mobile"),
        ("mobile_phone", "8 800 250 0890", "not_mobile"),
        ("email", "ivan@", "not_an_email"),
        ("email", "ivan.mail.ru", "not_an_email"),
        ("region", "Atlantis", "unknown_region"),
        ("region", "", "empty"),
        ("language", "de", "literal_error"),
    ],
)
def test_each_invalid_field_is_refused_with_its_own_error(
    field: str, value: Any, rule: str
) -> None:
    errors = refusals(valid_form(**{field: value}))

    assert list(errors) == [field]
    assert errors[field].rule == rule
    assert errors[field].message


@pytest.mark.parametrize(
    "field", ["contract_accepted", "surname", "passport_number", "mobile_phone"]
)
def test_a_missing_required_field_is_reported_as_required(field: str) -> None:
    form = valid_form()
    del form[field]

    assert refusals(form)[field].message == "is required"


def test_every_field_at_fault_is_reported_at_once() -> None:
    form = valid_form(
        contract_accepted=False,
        surname="",
        passport_series="12",
        date_of_birth="2015-01-01",
        mobile_phone="0",
        region="Atlantis",
        unexpected="x",
    )

    assert set(refusals(form)) == {
        "contract_accepted",
        "surname",
        "passport_series",
        "date_of_birth",
        "mobile_phone",
        "region",
        "unexpected",
    }


@pytest.mark.parametrize(
    "changes",
    [
        {"passport_series": "98765"},
        {"passport_number": "9876543"},
        {"passport_series": "98a7", "passport_number": "98765x"},
        {"mobile_phone": "98765432"},
    ],
)
def test_error_messages_never_quote_the_input(changes: dict[str, str]) -> None:
    with pytest.raises(InvalidCommand) as caught:
        register(valid_form(**changes))

    shown = str(caught.value) + repr(caught.value.errors)
    for value in changes.values():
        assert value not in shown
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_the_18th_birthday_is_the_first_day_of_registration() -> None:
    eighteenth_birthday = datetime(2026, 5, 17, 9, 0, tzinfo=UTC)
    form = valid_form(date_of_birth="2008-05-17", date_of_issue="2022-06-01")

    assert register(form, now=eighteenth_birthday).date_of_birth == date(2008, 5, 17)
    assert refusals(form, now=eighteenth_birthday - timedelta(days=1))["date_of_birth"].rule == (
        "under_age"
    )


def test_someone_born_on_29_february_comes_of_age_on_28_february() -> None:
    form = valid_form(date_of_birth="2008-02-29", date_of_issue="2022-03-01")

    assert years_later(date(2008, 2, 29), 18) == date(2026, 2, 28)
    assert register(form, now=datetime(2026, 2, 28, tzinfo=UTC)).date_of_birth == date(2008, 2, 29)
    assert "date_of_birth" in refusals(form, now=datetime(2026, 2, 27, tzinfo=UTC))


def test_a_passport_issued_on_the_14th_birthday_or_today_is_accepted() -> None:
    assert register(valid_form(date_of_issue="2004-05-17")).date_of_issue == date(2004, 5, 17)
    assert register(valid_form(date_of_issue=TODAY.isoformat())).date_of_issue == TODAY


def test_the_registration_day_is_the_calendar_day_of_the_moment_given() -> None:
    issued_11_march = valid_form(date_of_issue="2026-03-11")
    late_evening_utc = datetime(2026, 3, 10, 22, 0, tzinfo=UTC)
    # The same moment is already 01:00 on 11 March in Moscow.
    in_moscow = late_evening_utc.astimezone(ZoneInfo("Europe/Moscow"))

    assert register(issued_11_march, now=in_moscow).date_of_issue == date(2026, 3, 11)
    assert (
        refusals(issued_11_march, now=late_evening_utc)["date_of_issue"].rule == "issued_in_future"
    )


# --- support recovery claim ----------------------------------------------------------------------


def test_a_recovery_claim_is_canonicalised_like_the_registration() -> None:
    registration = register(valid_form())
    claim = validate_recovery_claim(
        {
            "passport_series": "45 08",
            "passport_number": PASSPORT_NUMBER,
            "date_of_birth": "1990-05-17",
        }
    )

    assert claim.proof_text() == registration.recovery_proof_text()
    assert claim.passport_text() == registration.passport_text()


def test_a_recovery_claim_differing_in_any_part_gives_another_proof() -> None:
    registration = register(valid_form())
    base = {"passport_series": PASSPORT_SERIES, "passport_number": PASSPORT_NUMBER}
    other_birth = validate_recovery_claim({**base, "date_of_birth": "1990-05-18"})
    other_number = validate_recovery_claim(
        {**base, "passport_number": "731943", "date_of_birth": "1990-05-17"}
    )

    assert other_birth.proof_text() != registration.recovery_proof_text()
    assert other_number.proof_text() != registration.recovery_proof_text()


def test_a_malformed_recovery_claim_lists_its_fields() -> None:
    with pytest.raises(InvalidCommand) as caught:
        validate_recovery_claim(
            {"passport_series": "1", "passport_number": "2", "date_of_birth": "x"}
        )

    assert set(caught.value.fields) == {"passport_series", "passport_number", "date_of_birth"}


# --- account and contract numbers ----------------------------------------------------------------


def test_luhn_check_digit_matches_the_published_example() -> None:
    # The worked example of ISO/IEC 7812's Luhn algorithm: 7992739871 -> 3.
    assert luhn_check_digit("7992739871") == "3"


def test_the_catalog_example_is_the_first_account_number() -> None:
    assert account_number_from_sequence(0) == "100000000008"


sequences = st.integers(min_value=0, max_value=MAX_SEQUENCE)


@given(sequences)
def test_every_allocated_number_is_valid(sequence: int) -> None:
    number = account_number_from_sequence(sequence)

    assert len(number) == 12
    assert number.startswith("1")
    assert int(number[1:11]) == sequence
    assert is_valid_account_number(number)


@given(sequences, sequences)
def test_distinct_sequence_values_give_distinct_numbers(first: int, second: int) -> None:
    same_number = account_number_from_sequence(first) == account_number_from_sequence(second)
    assert same_number == (first == second)


@given(sequences, st.integers(min_value=0, max_value=11), st.integers(min_value=1, max_value=9))
def test_any_single_digit_change_is_detected(sequence: int, position: int, shift: int) -> None:
    number = account_number_from_sequence(sequence)
    changed_digit = str((int(number[position]) + shift) % 10)
    mistyped = number[:position] + changed_digit + number[position + 1 :]

    assert not is_valid_account_number(mistyped)


def swap_adjacent(number: str, position: int) -> str:
    return number[:position] + number[position + 1] + number[position] + number[position + 2 :]


@given(sequences, st.integers(min_value=0, max_value=10))
def test_adjacent_transpositions_are_detected_except_09_and_90(
    sequence: int, position: int
) -> None:
    number = account_number_from_sequence(sequence)
    pair = {number[position], number[position + 1]}
    swapped = swap_adjacent(number, position)

    if len(pair) == 1:
        assert swapped == number
    elif pair == {"0", "9"}:
        # Luhn's known blind spot: 0 and 9 both contribute 0 (mod 10) doubled or not.
        assert is_valid_account_number(swapped)
    else:
        assert not is_valid_account_number(swapped)


def test_the_09_blind_spot_really_occurs_in_allocated_numbers() -> None:
    number = account_number_from_sequence(9)  # 1 000000000 9 + check digit: "...09"

    assert number[9:11] == "09"
    assert is_valid_account_number(swap_adjacent(number, 9))


@pytest.mark.parametrize(
    "candidate",
    ["10000000000", "1000000000080", "10000000000x", "", "1000 0000 0008", "١٠٠٠٠٠٠٠٠٠٠٨"],
)
def test_only_twelve_ascii_digits_can_be_an_account_number(candidate: str) -> None:
    assert not is_valid_account_number(candidate)


@pytest.mark.parametrize("sequence", [-1, MAX_SEQUENCE + 1])
def test_the_sequence_must_fit_in_the_number(sequence: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        account_number_from_sequence(sequence)


def test_an_account_number_typed_in_groups_is_read() -> None:
    assert parse_account_number("1000 0000 0008") == "100000000008"
    assert parse_account_number("1000-0000-0008") == "100000000008"


@pytest.mark.parametrize(("typed", "hint"), [("100000000009", "typo"), ("10000000", "12 digits")])
def test_a_mistyped_account_number_is_refused_with_a_reason(typed: str, hint: str) -> None:
    with pytest.raises(InvalidAccountNumber, match=hint):
        parse_account_number(typed)


def test_contract_numbers_carry_the_year_and_the_sequence_value() -> None:
    assert contract_number(42, date(2026, 3, 10)) == "D-2026-0000042"
    assert contract_number(MAX_SEQUENCE, date(2026, 3, 10)) == f"D-2026-{MAX_SEQUENCE}"


@given(sequences, sequences)
def test_contract_numbers_are_unique_per_sequence_value_and_parse_back(
    first: int, second: int
) -> None:
    signed = date(2026, 1, 1)
    one, other = contract_number(first, signed), contract_number(second, signed)

    assert (one == other) == (first == second)
    assert parse_contract_number(one.lower()) == one


@pytest.mark.parametrize("typed", ["D-26-0000042", "D-2026-42", "X-2026-0000042", "100000000008"])
def test_other_shapes_are_not_contract_numbers(typed: str) -> None:
    assert parse_contract_number(typed) is None


@pytest.mark.parametrize(
    ("typed", "kind", "value"),
    [
        ("1000 0000 0008", LoginKind.ACCOUNT_NUMBER, "100000000008"),
        (" d-2026-0000042 ", LoginKind.CONTRACT_NUMBER, "D-2026-0000042"),
        ("8 912 345-67-89", LoginKind.PHONE, "+79123456789"),
    ],
)
def test_login_identifiers_are_told_apart(typed: str, kind: LoginKind, value: str) -> None:
    identifier = parse_login_identifier(typed)

    assert (identifier.kind, identifier.value) == (kind, value)


@pytest.mark.parametrize(("typed", "hint"), [("100000000009", "typo"), ("hello", "mobile number")])
def test_an_unusable_login_identifier_is_refused(typed: str, hint: str) -> None:
    with pytest.raises(InvalidLoginIdentifier, match=hint) as caught:
        parse_login_identifier(typed)
    assert caught.value.field == "login"


# --- masks --------------------------------------------------------------------------------------


def test_a_phone_is_masked_to_country_and_last_four_digits() -> None:
    assert mask_phone("+79123454567") == "+7 *** ***-45-67"
    assert mask_phone("+421905123456") == "+421 *** ***-34-56"


def test_an_email_is_masked_to_its_first_letter_and_domain() -> None:
    assert mask_email("ivan.petrov@mail.ru") == "i***@mail.ru"


def test_email_lookups_ignore_case() -> None:
    assert email_lookup_text("Ivan.Petrov@mail.ru") == email_lookup_text("ivan.petrov@MAIL.RU")


def test_a_masked_email_fits_the_event_field() -> None:
    masked = mask_email("ivan@" + "very-long-subdomain." * 6 + "example.ru")

    assert len(masked) <= 64
    assert masked.startswith("i***@")
    assert masked.endswith("example.ru")


# --- password and code policies -----------------------------------------------------------------


def test_the_password_policy_admits_only_unambiguous_mixed_passwords() -> None:
    assert PASSWORD_POLICY.admits("Ab3defGhJk7m")
    assert not PASSWORD_POLICY.admits("Ab3defGhJk7")  # too short
    assert not PASSWORD_POLICY.admits("Ab3defGhJk0m")  # 0 is ambiguous
    assert not PASSWORD_POLICY.admits("Ab3defGhJklm")  # l is ambiguous
    assert not PASSWORD_POLICY.admits("abcdefghjkmn")  # no upper case, no digit


@pytest.mark.parametrize(("length", "alphabet"), [(6, "Ab3"), (12, "abc123")])
def test_a_weak_password_policy_cannot_be_made(length: int, alphabet: str) -> None:
    with pytest.raises(ValueError):
        PasswordPolicy(length=length, alphabet=alphabet)


@pytest.mark.parametrize(
    ("code", "admitted"), [("012345", True), ("12345", False), ("12345a", False)]
)
def test_codes_are_six_digits(code: str, admitted: bool) -> None:
    assert CODE_POLICY.admits(code) is admitted


# --- one-time reset codes -----------------------------------------------------------------------


def hash_of(code: str) -> str:
    return f"hash:{code}"


def guess(code: str) -> Callable[[str], bool]:
    return lambda code_hash: code_hash == hash_of(code)


def never_called(code_hash: str) -> bool:
    raise AssertionError("a dead code must not be checked")


@pytest.mark.parametrize(
    ("after", "outcome"),
    [
        (timedelta(0), Redemption.ACCEPTED),
        (timedelta(minutes=14, seconds=59), Redemption.ACCEPTED),
        (timedelta(minutes=15), Redemption.EXPIRED),
        (timedelta(minutes=15, seconds=1), Redemption.EXPIRED),
        (timedelta(hours=3), Redemption.EXPIRED),
    ],
)
def test_a_code_works_for_15_minutes(after: timedelta, outcome: Redemption) -> None:
    code = issue_reset_code(hash_of("123456"), now=NOW)

    _, result = redeem_reset_code(code, now=NOW + after, matches=guess("123456"))

    assert result is outcome


def test_at_minute_14_59_it_works_and_at_15_01_it_is_refused() -> None:
    code = issue_reset_code(hash_of("123456"), now=NOW)

    late, refused = redeem_reset_code(
        code, now=NOW + timedelta(minutes=15, seconds=1), matches=never_called
    )
    _, accepted = redeem_reset_code(
        code, now=NOW + timedelta(minutes=14, seconds=59), matches=guess("123456")
    )

    assert (accepted, refused) == (Redemption.ACCEPTED, Redemption.EXPIRED)
    assert late == code


def test_the_lifetime_is_configurable() -> None:
    code = issue_reset_code(
        hash_of("123456"), now=NOW, policy=ResetCodePolicy(lifetime=timedelta(minutes=5))
    )

    assert code.expires_at == NOW + timedelta(minutes=5)
    _, result = redeem_reset_code(code, now=NOW + timedelta(minutes=6), matches=never_called)
    assert result is Redemption.EXPIRED


def test_a_code_works_once() -> None:
    code = issue_reset_code(hash_of("123456"), now=NOW)

    used, first = redeem_reset_code(code, now=NOW + timedelta(minutes=1), matches=guess("123456"))
    _, second = redeem_reset_code(used, now=NOW + timedelta(minutes=2), matches=never_called)

    assert (first, second) == (Redemption.ACCEPTED, Redemption.ALREADY_USED)
    assert used is not None and used.used_at == NOW + timedelta(minutes=1)


def test_a_newer_code_voids_the_older_one() -> None:
    issue_reset_code(hash_of("111111"), now=NOW)
    newer = issue_reset_code(hash_of("222222"), now=NOW + timedelta(minutes=1))
    later = NOW + timedelta(minutes=2)

    after_old, with_old = redeem_reset_code(newer, now=later, matches=guess("111111"))
    _, with_new = redeem_reset_code(after_old, now=later, matches=guess("222222"))

    assert (with_old, with_new) == (Redemption.WRONG_CODE, Redemption.ACCEPTED)


def test_wrong_guesses_are_counted_and_the_fifth_kills_the_code() -> None:
    code = issue_reset_code(hash_of("123456"), now=NOW)
    results = []
    for _ in range(5):
        code, result = redeem_reset_code(code, now=NOW, matches=guess("654321"))
        results.append(result)

    _, with_right_code = redeem_reset_code(code, now=NOW, matches=never_called)

    assert results == [Redemption.WRONG_CODE] * 5
    assert code is not None and code.wrong_guesses == 5 and code.guesses_left == 0
    assert with_right_code is Redemption.TOO_MANY_GUESSES


def test_four_wrong_guesses_leave_the_right_code_working() -> None:
    code = issue_reset_code(hash_of("123456"), now=NOW)
    for _ in range(4):
        code, _ = redeem_reset_code(code, now=NOW, matches=guess("000000"))

    assert code is not None and code.guesses_left == 1
    _, result = redeem_reset_code(code, now=NOW, matches=guess("123456"))
    assert result is Redemption.ACCEPTED


def test_without_a_code_there_is_nothing_to_redeem() -> None:
    assert redeem_reset_code(None, now=NOW, matches=never_called) == (None, Redemption.NO_CODE)


# --- login throttling ---------------------------------------------------------------------------


def right() -> bool:
    return True


def wrong() -> bool:
    return False


def not_checked() -> bool:
    raise AssertionError("a locked login must not be checked")


def fail(
    state: ThrottleState, times: int, start: datetime, step: timedelta = timedelta(seconds=10)
) -> tuple[ThrottleState, list[Attempt]]:
    results = []
    for attempt in range(times):
        state, outcome = guarded_attempt(
            state, now=start + attempt * step, verify=wrong, policy=LOGIN_THROTTLE
        )
        results.append(outcome.result)
    return state, results


def test_the_fifth_failure_locks_the_login_for_15_minutes() -> None:
    state, results = fail(ThrottleState(), 4, NOW)
    moment = NOW + timedelta(minutes=1)
    state, outcome = guarded_attempt(state, now=moment, verify=wrong, policy=LOGIN_THROTTLE)

    assert results == [Attempt.REFUSED] * 4
    assert outcome.lock_started and not outcome.accepted
    assert outcome.locked_until == state.locked_until == moment + timedelta(minutes=15)


def test_a_locked_login_refuses_even_the_right_password_without_checking_it() -> None:
    state, _ = fail(ThrottleState(), 5, NOW)

    after, outcome = guarded_attempt(
        state, now=NOW + timedelta(minutes=5), verify=not_checked, policy=LOGIN_THROTTLE
    )

    assert outcome.result is Attempt.LOCKED
    assert after == state


def test_the_lock_event_is_due_once_per_lock() -> None:
    _, results = fail(ThrottleState(), 50, NOW)

    assert results.count(Attempt.LOCK_STARTED) == 1
    assert results[4] is Attempt.LOCK_STARTED
    assert set(results[5:]) == {Attempt.LOCKED}


def test_the_lock_expires() -> None:
    state, _ = fail(ThrottleState(), 5, NOW)
    assert state.locked_until is not None

    after, outcome = guarded_attempt(
        state, now=state.locked_until, verify=right, policy=LOGIN_THROTTLE
    )

    assert outcome.accepted
    assert after == ThrottleState()


def test_after_a_lock_expires_a_single_failure_does_not_lock_again() -> None:
    state, _ = fail(ThrottleState(), 5, NOW)
    assert state.locked_until is not None

    after, outcome = guarded_attempt(
        state, now=state.locked_until, verify=wrong, policy=LOGIN_THROTTLE
    )

    assert outcome.result is Attempt.REFUSED
    assert not after.is_locked(state.locked_until)


def test_a_success_resets_the_count() -> None:
    state, _ = fail(ThrottleState(), 4, NOW)
    state, outcome = guarded_attempt(
        state, now=NOW + timedelta(minutes=1), verify=right, policy=LOGIN_THROTTLE
    )
    state, results = fail(state, 4, NOW + timedelta(minutes=2))

    assert outcome.accepted
    assert results == [Attempt.REFUSED] * 4


def test_failures_slide_out_of_the_window() -> None:
    state, _ = fail(ThrottleState(), 4, NOW, step=timedelta(minutes=1))  # at 0, 1, 2, 3 minutes

    # At 15:30 the failure at 0:00 has left the window: four remain, no lock.
    state, at_15_30 = guarded_attempt(
        state, now=NOW + timedelta(minutes=15, seconds=30), verify=wrong, policy=LOGIN_THROTTLE
    )
    # At 15:40 the failures at 1, 2, 3, 15:30 and 15:40 are within 15 minutes: five, locked.
    _, at_15_40 = guarded_attempt(
        state, now=NOW + timedelta(minutes=15, seconds=40), verify=wrong, policy=LOGIN_THROTTLE
    )

    assert at_15_30.result is Attempt.REFUSED
    assert at_15_40.result is Attempt.LOCK_STARTED


def test_flooding_one_account_does_not_lock_another() -> None:
    states: dict[str, ThrottleState] = {}
    victim, bystander = "100000000008", "100000000016"
    for second in range(100):
        states[victim], _ = guarded_attempt(
            states.get(victim, ThrottleState()),
            now=NOW + timedelta(seconds=second),
            verify=wrong,
            policy=LOGIN_THROTTLE,
        )

    _, bystander_login = guarded_attempt(
        states.get(bystander, ThrottleState()),
        now=NOW + timedelta(minutes=2),
        verify=right,
        policy=LOGIN_THROTTLE,
    )

    assert states[victim].is_locked(NOW + timedelta(minutes=2))
    assert bystander_login.accepted


def test_the_throttle_policy_is_configurable() -> None:
    strict = ThrottlePolicy(threshold=2, window=timedelta(minutes=1), lock_for=timedelta(hours=1))
    state, first = guarded_attempt(ThrottleState(), now=NOW, verify=wrong, policy=strict)
    state, second = guarded_attempt(
        state, now=NOW + timedelta(seconds=1), verify=wrong, policy=strict
    )

    assert (first.result, second.result) == (Attempt.REFUSED, Attempt.LOCK_STARTED)
    assert state.locked_until == NOW + timedelta(hours=1, seconds=1)


def test_a_threshold_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        ThrottlePolicy(threshold=0)


@given(st.lists(st.tuples(st.booleans(), st.integers(min_value=0, max_value=600)), max_size=60))
def test_nothing_is_accepted_or_checked_while_a_lock_is_on(
    attempts: list[tuple[bool, int]],
) -> None:
    state, moment = ThrottleState(), NOW
    for password_is_right, seconds_later in attempts:
        moment += timedelta(seconds=seconds_later)
        locked_before = state.is_locked(moment)
        checked: list[bool] = []

        def verify(answer: bool = password_is_right, log: list[bool] = checked) -> bool:
            log.append(answer)
            return answer

        state, outcome = guarded_attempt(state, now=moment, verify=verify, policy=LOGIN_THROTTLE)

        assert outcome.accepted == (not locked_before and password_is_right)
        assert bool(checked) == (not locked_before)
        assert (outcome.result is Attempt.LOCKED) == locked_before
        assert len(state.counted) < LOGIN_THROTTLE.threshold


def test_reset_requests_are_rate_limited_per_account() -> None:
    state, results = ThrottleState(), []
    for minute in range(7):
        state, outcome = rate_limited_request(
            state, now=NOW + timedelta(minutes=minute), policy=RESET_REQUEST_THROTTLE
        )
        results.append(outcome.result)

    assert results == [Attempt.ACCEPTED] * 5 + [Attempt.LOCKED] * 2
    _, after_an_hour = rate_limited_request(
        state, now=NOW + timedelta(minutes=4, hours=1), policy=RESET_REQUEST_THROTTLE
    )
    assert after_an_hour.accepted


# --- pending passwords ------------------------------------------------------------------------


def test_a_pending_password_works_until_its_lifetime_ends_and_needs_a_positive_one() -> None:
    issued_at = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    pending = issue_pending_password("argon2-hash", purpose=PasswordPurpose.SMS_REISSUE, now=issued_at,
                                     lifetime=timedelta(hours=24))

    assert pending.usable(issued_at + timedelta(hours=23, minutes=59, seconds=59))
    assert not pending.usable(issued_at + timedelta(hours=24))
    for lifetime in (timedelta(0), timedelta(minutes=-1)):
        with pytest.raises(ValueError, match="positive"):
            issue_pending_password("argon2-hash", purpose=PasswordPurpose.SMS_REISSUE, now=issued_at,
                                   lifetime=lifetime)


# --- logins: the source of wrong passwords is locked out, not the owner ------------------------


def test_a_source_locked_out_of_an_account_leaves_another_source_checked() -> None:
    attacker, owner = LoginGuard(), LoginGuard()
    outcomes = []
    for second in range(5):
        attacker, outcome = record_login(attacker, now=NOW + timedelta(seconds=second), right=False,
                                         policy=LOGIN_POLICY)
        owner = LoginGuard(source=owner.source, account=attacker.account)  # the account's count is shared
        outcomes.append(outcome.result)
    later = NOW + timedelta(minutes=1)

    assert outcomes == [Attempt.REFUSED] * 4 + [Attempt.LOCK_STARTED]
    assert attacker.refused_until(later, ThrottleState(), LOGIN_POLICY) == NOW + timedelta(seconds=4, minutes=15)
    assert owner.refused_until(later, ThrottleState(), LOGIN_POLICY) is None
    owner, logged_in = record_login(owner, now=later, right=True, policy=LOGIN_POLICY)
    assert logged_in.accepted and owner.account.counted  # a success does not wipe others' failures


def test_a_locked_address_is_refused_at_every_account() -> None:
    address = ThrottleState(locked_until=NOW + timedelta(minutes=15))

    assert LoginGuard().refused_until(NOW, address, LOGIN_POLICY) == address.locked_until
    assert LoginGuard().refused_until(address.locked_until, address, LOGIN_POLICY) is None


def test_under_siege_only_sources_that_failed_are_refused() -> None:
    siege = ThrottleState(locked_until=NOW + timedelta(minutes=15))
    failed_once = LoginGuard(source=ThrottleState(counted=(NOW - timedelta(minutes=1),)), account=siege)

    assert failed_once.refused_until(NOW, ThrottleState(), LOGIN_POLICY) == siege.locked_until
    assert LoginGuard(account=siege).refused_until(NOW, ThrottleState(), LOGIN_POLICY) is None
    # The source's failure has left its window: it may guess again.
    assert failed_once.refused_until(NOW + timedelta(minutes=14), ThrottleState(), LOGIN_POLICY) is None
    # Failing during the siege does not prolong it.
    after, _ = record_login(LoginGuard(account=siege), now=NOW, right=False, policy=LOGIN_POLICY)
    assert after.account == siege


def test_the_siege_starts_at_the_ceiling_over_all_sources() -> None:
    account = ThrottleState()
    for second in range(LOGIN_POLICY.per_account.threshold):
        guard, _ = record_login(LoginGuard(account=account), now=NOW + timedelta(seconds=second), right=False,
                                policy=LOGIN_POLICY)
        account = guard.account
    assert account.is_locked(NOW + timedelta(minutes=1))


@pytest.mark.parametrize("raw", ["100000009991", "D-2026-0000999", "d-2019-0000999"])
def test_an_account_and_its_contract_in_any_year_name_one_account_number(raw: str) -> None:
    assert parse_login_identifier(raw).account_number == account_number_from_sequence(999)


def test_a_phone_names_no_account_number() -> None:
    assert parse_login_identifier("+7 912 345-67-89").account_number is None
