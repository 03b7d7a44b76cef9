"""The suite's one money formatter, in the styles its readers need: messages and logs, the
command line's tables, the subscribers' letters."""

from __future__ import annotations

from billing_contracts.money import MAX_MINOR, format_amount


def test_messages_tables_and_letters_write_the_same_money_their_own_way() -> None:
    assert format_amount(12_345_678, "RUB") == "123456.78 RUB"
    assert format_amount(-5, "EUR") == "-0.05 EUR"
    assert format_amount(MAX_MINOR + 1, "RUB") == "10000000000000.01 RUB"  # also more than Money may hold
    assert format_amount(12_345_678, "RUB", thousands=" ") == "123 456.78 RUB"
    assert format_amount(0, "USD", thousands=" ") == "0.00 USD"
    assert format_amount(-100_000, "RUB", thousands=" ", point=",", unit="₽") == "-1 000,00 ₽"
