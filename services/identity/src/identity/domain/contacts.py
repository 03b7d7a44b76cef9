"""Mobile numbers and e-mail addresses: normalised for storage, masked for everyone else."""

from __future__ import annotations

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from identity.domain.errors import RuleViolation

# A number written without a country code ("8 912 345-67-89", "912 345 67 89") is Russian.
HOME_REGION = "RU"
_MOBILE_TYPES = frozenset(
    {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
)
MASKED_MAX_LENGTH = 64


def normalise_mobile_phone(raw: str) -> str:
    """The E.164 form (``+79123456789``) of a mobile number, or :class:`RuleViolation`.

    Accepts the usual Russian ways of writing one (``+7 912 ...``, ``8 (912) ...``, ``7912...``,
    ``912...``) and international numbers with a ``+``. Passwords arrive by SMS, so a landline
    or a service number (8 800 ...) is refused.
    """
    number = _parse_phone(raw)
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise RuleViolation("not_mobile", "must be a mobile number that can receive SMS")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _parse_phone(raw: str) -> phonenumbers.PhoneNumber:
    try:
        number = phonenumbers.parse(raw, HOME_REGION)
    except phonenumbers.NumberParseException:
        raise RuleViolation("not_a_phone", "is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise RuleViolation("not_a_phone", "is not a phone number")
    return number


def normalise_email(raw: str) -> str:
    """The normalised address (domain in lower case), or :class:`RuleViolation`.

    Only the shape is checked, no DNS: registration must not depend on the network.
    """
    try:
        return validate_email(raw, check_deliverability=False).normalized
    except EmailNotValidError:
        # The library's reason can quote parts of the address: keep it out of the message.
        raise RuleViolation("not_an_email", "is not a valid e-mail address") from None


def mask_phone(e164: str) -> str:
    """``+79123454567`` -> ``+7 *** ***-45-67``: the country and the last four digits only."""
    number = phonenumbers.parse(e164)
    national = str(number.national_number)
    return f"+{number.country_code} *** ***-{national[-4:-2]}-{national[-2:]}"


def mask_email(email: str) -> str:
    """``ivan@mail.ru`` -> ``i***@mail.ru``: the first letter and the domain only."""
    local, _, domain = email.rpartition("@")
    masked = f"{local[:1]}***@{domain}"
    if len(masked) <= MASKED_MAX_LENGTH:
        return masked
    # Keep the end of a very long domain: the top-level part is what a person recognises.
    return f"{local[:1]}***@…{domain[-(MASKED_MAX_LENGTH - 6) :]}"
