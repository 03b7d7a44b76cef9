"""Refusals in the reader's language: one catalogue per language keyed by refusal code, complete
for every refusal a subscriber's route can answer, each sentence naming the same values in every
language; the language chosen from the token, else Accept-Language, else English."""

from __future__ import annotations

import inspect
from datetime import date
from types import ModuleType

import pytest

import identity.domain.errors as identity_errors
import tariff.errors as tariff_errors
from billing_contracts.catalog.ledger import BonusRedemptionRefusal, TransferRefusal
from billing_events.errors import DomainError, ErrorKind
from billing_events.http import _DEFAULT_CODES
from billing_events.languages import TRANSLATED, catalogue, chosen_language, placeholders, sentence
from billing_contracts.money import Money
from ledger.domain.errors import KINDS as LEDGER_KINDS

BASES = {"identity_error", "tariff_error", "voluntary_block_refused", "catalog_invalid"}
"""Base classes (never raised as such) and the catalog file's check at start (operations read it)."""
PLUMBING = {"missing_token", "invalid_token", "token_expired", "token_revoked", "token_signing_unconfigured",
            "wrong_audience", "wrong_account", "service_only", "missing_scope", "subscriber_only",
            "request_too_large", "invalid_period"}


def _codes_of(module: ModuleType) -> set[str]:
    return {error.code for error in vars(module).values()
            if inspect.isclass(error) and issubclass(error, DomainError) and error.__module__ == module.__name__}


def refusal_codes() -> set[str]:
    ledger = {code.value for code, kind in LEDGER_KINDS.items() if kind is not ErrorKind.BROKEN_INVARIANT}
    requests = {reason.value for reason in (*TransferRefusal, *BonusRedemptionRefusal)}
    services = _codes_of(identity_errors) | _codes_of(tariff_errors)
    return (ledger | requests | services | set(_DEFAULT_CODES.values()) | PLUMBING) - BASES


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_refusal_has_a_sentence_naming_the_same_values_in_every_language(language: str) -> None:
    sentences = catalogue(language)
    assert sorted(refusal_codes() - sentences.keys()) == []
    first = catalogue(TRANSLATED[0])
    assert sentences.keys() == first.keys()
    assert {code: placeholders(text) for code, text in sentences.items()} == {
        code: placeholders(text) for code, text in first.items()}


def test_a_sentence_shows_money_and_days_as_people_write_them() -> None:
    params = {"price": Money(minor=1_500_000, currency="RUB"), "available": Money(minor=-5, currency="EUR")}
    assert sentence("block_insufficient_funds", "sk", fallback="x", params=params) == (
        "Blokovanie stojí 15 000,00 ₽, na účte je k dispozícii -0,05 €.")
    assert sentence("block_already_running", "ru", fallback="x", params={"last_day": date(2027, 1, 8)}) == (
        "Добровольная блокировка уже действует, до 08.01.2027.")


def test_english_an_unknown_code_or_a_missing_value_read_the_refusals_own_message() -> None:
    assert sentence("insufficient_funds", "en", fallback="own", params={"amount": Money.zero("RUB")}) == "own"
    assert sentence("no_such_code", "sk", fallback="own") == "own"
    assert sentence("insufficient_funds", "sk", fallback="own") == "own"


@pytest.mark.parametrize(("claimed", "header", "chosen"), [
    ("sk", "ru", "sk"),
    (None, "ru-RU,ru;q=0.9,en;q=0.8", "ru"),
    (None, "de, en;q=0.3, sk;q=0.7", "sk"),
    (None, "sk;q=0, en", "en"),
    (None, "de", "en"),
    ("de", None, "en"),
    (None, ";;,q=x, ru;q=oops", "en"),
])
def test_the_language_is_the_tokens_else_the_browsers_else_english(claimed: str | None, header: str | None,
                                                                   chosen: str) -> None:
    assert chosen_language(claimed, header) == chosen


@pytest.mark.parametrize(("language", "minor", "said"), [
    ("en", 0, "Input should be greater than 0"),
    ("sk", 0, "Musí byť väčšie ako 0."),
    ("ru", 0, "Должно быть больше 0."),
])
def test_a_fields_own_error_is_in_the_readers_language_too(language: str, minor: int, said: str) -> None:
    from pydantic import BaseModel, Field, ValidationError

    from billing_events.http import field_problem

    class Amount(BaseModel):
        minor: int = Field(gt=0)

    with pytest.raises(ValidationError) as refused:
        Amount(minor=minor)
    [detail] = refused.value.errors()
    problem = field_problem(detail, language)
    assert (problem.field, problem.code, problem.message) == ("minor", "greater_than", said)


def test_every_field_error_sentence_names_the_values_pydantic_gives() -> None:
    """Each ``field:<type>`` sentence may use only the names of that error's context."""
    context = {"string_too_short": {"min_length"}, "string_too_long": {"max_length"}, "greater_than": {"gt"},
               "greater_than_equal": {"ge"}, "less_than": {"lt"}, "less_than_equal": {"le"},
               "literal_error": {"expected"}, "enum": {"expected"}}
    for language in TRANSLATED:
        fields = {code.removeprefix("field:"): text for code, text in catalogue(language).items()
                  if code.startswith("field:")}
        assert len(fields) >= 15
        assert {kind: placeholders(text) for kind, text in fields.items()} == {
            kind: context.get(kind, set()) for kind in fields}
