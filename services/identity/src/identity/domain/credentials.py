"""What a generated password and a one-time code look like. Generation itself is in security."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Letters and digits a subscriber cannot misread from an SMS: no 0/O/o, 1/l/I/i.
UNAMBIGUOUS_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz23456789"


@dataclass(frozen=True)
class PasswordPolicy:
    """Generated passwords: ``length`` characters of ``alphabet``, mixing upper, lower and digits.

    12 characters of the 55-letter alphabet give about 69 bits, far beyond what a throttled
    login can guess, while staying easy to type from an SMS.
    """

    length: int = 12
    alphabet: str = UNAMBIGUOUS_ALPHABET

    def __post_init__(self) -> None:
        if self.length < 8:
            raise ValueError("a generated password needs at least 8 characters")
        if not _has_every_character_class(self.alphabet):
            raise ValueError("the alphabet needs upper-case and lower-case letters and digits")

    def admits(self, password: str) -> bool:
        return (
            len(password) == self.length
            and all(char in self.alphabet for char in password)
            and _has_every_character_class(password)
        )


def _has_every_character_class(text: str) -> bool:
    return (
        any(c.isupper() for c in text)
        and any(c.islower() for c in text)
        and any(c.isdigit() for c in text)
    )


@dataclass(frozen=True)
class CodePolicy:
    """One-time codes: ``digits`` decimal digits, leading zeros included."""

    digits: int = 6

    def admits(self, code: str) -> bool:
        return re.fullmatch(rf"[0-9]{{{self.digits}}}", code) is not None


PASSWORD_POLICY = PasswordPolicy()
CODE_POLICY = CodePolicy()
