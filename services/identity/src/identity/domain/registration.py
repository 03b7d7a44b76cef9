"""Registration of a subscriber: the form, the rules, and the canonical forms of personal data.

Two steps, one report: :class:`RegistrationCommand` holds what the operator typed and checks
each value's shape; :func:`validate_registration` adds the rules that need the moment of
registration and the operator's regions, and raises one :class:`InvalidCommand` listing every
field at fault. Only it produces a :class:`Registration`, the input the service may store.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from billing_contracts.catalog.identity import LegalStatus
from identity.domain.commands import validate_command
from identity.domain.contacts import normalise_email, normalise_mobile_phone
from identity.domain.errors import RuleViolation

ADULT_AGE = 18
# A Russian internal passport is first issued at 14.
PASSPORT_AGE = 14
# Guards against a mistyped century (1092 for 1992) rather than judging anyone's age.
OLDEST_PLAUSIBLE_AGE = 120

Language = Literal["ru", "sk", "en"]


def years_later(day: date, years: int) -> date:
    """The anniversary ``years`` after ``day``; 29 February falls back to 28 February.

    The Civil Code of the Russian Federation (art. 192) ends a term that falls on a date the
    month lacks on that month's last day, so someone born on 29 February 2008 is 18 on
    28 February 2026.
    """
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _digits(count: int, what: str) -> AfterValidator:
    # Passports print the series as "45 08": spaces between groups are allowed.
    shape = re.compile(rf"[0-9]{{{count}}}")

    def check(value: str) -> str:
        compact = re.sub(r"\s", "", value)
        if not shape.fullmatch(compact):
            raise RuleViolation(f"{what}_shape", f"must be exactly {count} digits")
        return compact

    return AfterValidator(check)


_NAME_PUNCTUATION = frozenset(" -'’.")


def _person_name(value: str) -> str:
    if not value:
        raise RuleViolation("empty", "must not be empty")
    if not value[0].isalpha() or not all(c.isalpha() or c in _NAME_PUNCTUATION for c in value):
        raise RuleViolation(
            "name_characters", "may contain only letters, spaces, hyphens and apostrophes"
        )
    return re.sub(r"\s+", " ", value)


def _required_text(value: str) -> str:
    if not value:
        raise RuleViolation("empty", "must not be empty")
    return value


PassportSeries = Annotated[str, _digits(4, "passport_series")]
PassportNumber = Annotated[str, _digits(6, "passport_number")]
PersonName = Annotated[str, Field(max_length=100), AfterValidator(_person_name)]
MobilePhone = Annotated[str, AfterValidator(normalise_mobile_phone)]
Email = Annotated[str, AfterValidator(normalise_email)]


class RegistrationCommand(BaseModel):
    """The registration form as the operator fills it in. Constructing it checks shapes only."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    contract_accepted: bool = Field(description="The subscriber accepted the service contract")
    legal_status: LegalStatus
    surname: PersonName
    first_name: PersonName
    patronymic: Annotated[PersonName | None, BeforeValidator(_blank_to_none)] = Field(
        default=None, description="Middle name; not everyone has one"
    )
    passport_series: PassportSeries = Field(description="4 digits, e.g. 45 08")
    passport_number: PassportNumber = Field(description="6 digits")
    date_of_birth: date
    issuing_authority: Annotated[str, Field(max_length=300), AfterValidator(_required_text)]
    date_of_issue: date
    mobile_phone: MobilePhone = Field(description="Receives passwords by SMS; stored as E.164")
    email: Annotated[Email | None, BeforeValidator(_blank_to_none)] = None
    region: Annotated[str, Field(max_length=64), AfterValidator(_required_text)]
    language: Language = "ru"

    @field_validator("contract_accepted")
    @classmethod
    def _contract_must_be_accepted(cls, accepted: bool) -> bool:
        if not accepted:
            raise RuleViolation("contract_not_accepted", "the service contract must be accepted")
        return accepted

    @field_validator("date_of_issue")
    @classmethod
    def _issued_after_birth(cls, issued: date, info: ValidationInfo) -> date:
        born = info.data.get("date_of_birth")
        if born is not None and issued < born:
            raise RuleViolation("issued_before_birth", "is before the date of birth")
        if born is not None and issued < years_later(born, PASSPORT_AGE):
            raise RuleViolation(
                "issued_before_passport_age",
                f"is before the holder's {PASSPORT_AGE}th birthday, the age of a first passport",
            )
        return issued


@dataclass(frozen=True)
class RegistrationContext:
    """What the rules of registration need besides the form."""

    today: date
    regions: frozenset[str]


def _context(info: ValidationInfo) -> RegistrationContext:
    if not isinstance(info.context, RegistrationContext):
        # Only validate_registration may produce a Registration; a bare constructor skips rules.
        raise TypeError("a Registration is made by validate_registration(), not constructed")
    return info.context


class Registration(RegistrationCommand):
    """A registration that passed every rule at a given moment: what the service stores."""

    @field_validator("date_of_birth")
    @classmethod
    def _adult(cls, born: date, info: ValidationInfo) -> date:
        today = _context(info).today
        if born > today:
            raise RuleViolation("born_in_future", "is in the future")
        if years_later(born, OLDEST_PLAUSIBLE_AGE) <= today:
            raise RuleViolation("implausible_birth_date", "is too long ago: check the year")
        if years_later(born, ADULT_AGE) > today:
            raise RuleViolation(
                "under_age", f"the subscriber must be at least {ADULT_AGE} years old"
            )
        return born

    @field_validator("date_of_issue")
    @classmethod
    def _not_issued_in_future(cls, issued: date, info: ValidationInfo) -> date:
        if issued > _context(info).today:
            raise RuleViolation("issued_in_future", "is in the future")
        return issued

    @field_validator("region")
    @classmethod
    def _served_region(cls, region: str, info: ValidationInfo) -> str:
        if region not in _context(info).regions:
            raise RuleViolation("unknown_region", "is not a region the operator serves")
        return region

    def passport_text(self) -> str:
        return passport_text(self.passport_series, self.passport_number)

    def recovery_proof_text(self) -> str:
        return recovery_proof_text(self.passport_series, self.passport_number, self.date_of_birth)


def validate_registration(
    form: RegistrationCommand | Mapping[str, Any], *, now: datetime, regions: Collection[str]
) -> Registration:
    """Check a registration form against every rule at the moment ``now``.

    Ages and dates are judged on ``now``'s calendar date, in ``now``'s own time zone.
    Raises :class:`InvalidCommand` listing every field at fault, with no input value quoted.
    """
    context = RegistrationContext(today=now.date(), regions=frozenset(regions))
    return validate_command(Registration, form, context=context)


class LookupKind(StrEnum):
    """Each kind of personal data gets its own keyed-hash domain, so equal texts never collide."""

    PASSPORT = "passport"
    PHONE = "phone"
    EMAIL = "email"
    RECOVERY_PROOF = "recovery_proof"


def passport_text(series: str, number: str) -> str:
    """The canonical passport identity: ten digits, series then number."""
    return f"{series}{number}"


def recovery_proof_text(series: str, number: str, date_of_birth: date) -> str:
    """What support recovery checks, in canonical form: passport and birth date together."""
    return f"{passport_text(series, number)}|{date_of_birth.isoformat()}"


def email_lookup_text(email: str) -> str:
    """Mail providers ignore case in the local part too, so lookups do."""
    return email.casefold()


class RecoveryClaim(BaseModel):
    """The passport data a caller gives support to prove who they are.

    The rule: access is restored only if series, number and date of birth all match the
    registered ones. The service compares one keyed hash of :meth:`proof_text` with the one
    stored at registration, in constant time, under a throttle (see ``SUPPORT_THROTTLE``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    passport_series: PassportSeries
    passport_number: PassportNumber
    date_of_birth: date

    def passport_text(self) -> str:
        return passport_text(self.passport_series, self.passport_number)

    def proof_text(self) -> str:
        return recovery_proof_text(self.passport_series, self.passport_number, self.date_of_birth)


def validate_recovery_claim(data: RecoveryClaim | Mapping[str, Any]) -> RecoveryClaim:
    return validate_command(RecoveryClaim, data)
