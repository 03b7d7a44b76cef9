"""What the suite promises, as a small model of its own.

Written from docs/ (walkthrough, operations "Money enters the journal once", events) and the
domain's rules and decisions, not from the services' code: given the same actions it predicts
every balance, the fate of every payment, the suspense, every daily charge, every debt block and
unblock (with the moment it carries) and the notices about them. The driver holds the services
to it after every step.

Scope: registrations (and registrations carrying a mistyped number, which open nothing);
payments over the six channels with their first fate (credited, parked, placed by an operator,
refused as a malformed copy or past what money may hold; a conflict changes nothing); the "20 % back" campaign; transfers (real money
only); the daily charges of a plan and their rounding; blocks for debt and the unblock a payment
brings; suspense placement. Credit, voluntary blocks, options and reversals are not modelled
yet: the workload does not ask for them.
"""

from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

BILLING_ZONE = ZoneInfo("Europe/Moscow")
"""Billing days are counted in Moscow (docs/walkthrough.md)."""
CHANNELS = ("shop", "terminal", "card", "bank", "ewallet", "third_party")
MAX_PAYMENT = 100_000_000
"""BILLING_MAX_PAYMENT's default: a payment over it is parked (docs/operations.md, section 11)."""
MONEY_BOUND = 10**15
"""What any balance may hold, the operator's included, per currency: a payment that would take a
channel's cash or the suspense past it is refused (dead-lettered), not parked."""
PLAN_PRICES = {"internet-100": 55_000, "internet-300": 70_000, "tv-basic": 25_000, "tv-optimum": 40_000}
"""Monthly prices in Moscow (`billing catalog --region moscow`), minor units."""
CAMPAIGN_FROM = datetime(2026, 12, 1, tzinfo=BILLING_ZONE)
CAMPAIGN_TO = datetime(2027, 3, 1, tzinfo=BILLING_ZONE)
CAMPAIGN_CHANNELS = ("card", "ewallet")
CAMPAIGN_MIN, CAMPAIGN_MAX_BONUS = 50_000, 100_000
"""The packaged "20 % back" campaign: card and e-wallet payments of 500.00 RUB or more from
1 December 2026 to 1 March 2027 (Moscow) earn a fifth of the payment as bonuses, 1,000.00 at most."""


def luhn_digit(body: str) -> str:
    """The check digit that makes ``body`` + digit pass the Luhn check."""
    total = 0
    for position, char in enumerate(reversed(body)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def mistyped(number: str) -> str:
    """The number with its check digit wrong: what a payer's slip of the finger looks like."""
    return number[:-1] + str((int(number[-1]) + 1) % 10)


def daily_share(monthly: int, day: date) -> int:
    """A day's share of a monthly price: the month's days share it to the kopeck, the first
    days taking the kopecks the division leaves, so a month's shares add up to the price."""
    days = monthrange(day.year, day.month)[1]
    base, left = divmod(monthly, days)
    return base + (1 if day.day <= left else 0)


def billing_day(moment: datetime) -> date:
    return moment.astimezone(BILLING_ZONE).date()


def end_of(day: date) -> datetime:
    """The moment a billing day ends: the next midnight in Moscow."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=BILLING_ZONE)


@dataclass
class Account:
    main: int = 0
    bonus: int = 0
    plan: str | None = None
    plan_from: date | None = None
    debt_blocked: bool = False


@dataclass
class Payment:
    typed: str
    """The label of the account it was meant for, or the number typed when it names none."""
    amount: int
    currency: str
    fate: str
    """credited, parked, placed or refused."""


@dataclass
class Model:
    now: datetime
    accounts: dict[str, Account] = field(default_factory=dict)
    payments: dict[str, Payment] = field(default_factory=dict)
    """By payment key (channel:reference), its first content and its fate."""
    suspense: dict[str, Payment] = field(default_factory=dict)
    """Open suspense items by payment key."""
    charges: list[tuple[str, date, int]] = field(default_factory=list)
    """(label, billing day, amount) of every daily charge."""
    blocks: list[tuple[str, str, datetime]] = field(default_factory=list)
    """(label, "blocked" or "unblocked", the moment the event carries), in order."""
    closed_through: date | None = None
    conflicts: int = 0
    cash: dict[tuple[str, str], int] = field(default_factory=dict)
    """What each channel's cash account holds per currency (it gives what the payments bring)."""

    # --- actions ----------------------------------------------------------------------------

    def register(self, label: str) -> None:
        self.accounts[label] = Account()

    def pay(self, key: str, target: str, amount: int, currency: str, *, channel: str, copy: bool = False) -> None:
        """A payment delivered for the first time or again; ``target`` a label or a typed number."""
        if copy:  # a copy of a version that does not exist: dead-lettered, never taken
            self.payments[key] = Payment(target, amount, currency, "refused")
            return
        seen = self.payments.get(key)
        if seen is not None:
            if (seen.typed, seen.amount, seen.currency) != (target, amount, currency):
                self.conflicts += 1
            return  # the first fate wins
        account = self.accounts.get(target)
        cash = self.cash.get((channel, currency), 0) - amount
        if cash < -MONEY_BOUND:
            self.payments[key] = Payment(target, amount, currency, "refused")
            return
        if account is None or currency != "RUB" or amount > MAX_PAYMENT:
            parked = sum(p.amount for p in self.suspense.values() if p.currency == currency)
            if parked + amount > MONEY_BOUND:
                self.payments[key] = Payment(target, amount, currency, "refused")
                return
            self.cash[(channel, currency)] = cash
            payment = self.payments[key] = Payment(target, amount, currency, "parked")
            self.suspense[key] = payment
            return
        self.cash[(channel, currency)] = cash
        self.payments[key] = Payment(target, amount, currency, "credited")
        account.main += amount
        if channel in CAMPAIGN_CHANNELS and amount >= CAMPAIGN_MIN and CAMPAIGN_FROM <= self.now < CAMPAIGN_TO:
            account.bonus += min(amount // 5, CAMPAIGN_MAX_BONUS)
        self._judge(target, self.now)

    def place(self, key: str, label: str) -> bool:
        """An operator places a parked payment on an account; False when there is nothing to place."""
        item = self.suspense.get(key)
        account = self.accounts.get(label)
        if item is None or account is None or item.currency != "RUB" or item.amount > MAX_PAYMENT:
            return False
        del self.suspense[key]
        item.fate = "placed"
        account.main += item.amount
        self._judge(label, self.now)
        return True

    def transfer(self, source: str, target: str, amount: int) -> bool:
        """Real money only: refused when the main balance does not hold the amount."""
        giver, taker = self.accounts.get(source), self.accounts.get(target)
        if giver is None or taker is None or source == target or amount > giver.main:
            return False
        giver.main -= amount
        taker.main += amount
        self._judge(source, self.now)
        self._judge(target, self.now)
        return True

    def activate(self, label: str, plan: str) -> bool:
        """A plan is charged from the next billing day; an account holds one plan."""
        account = self.accounts.get(label)
        if account is None or account.plan is not None:
            return False
        account.plan, account.plan_from = plan, billing_day(self.now) + timedelta(days=1)
        return True

    def move_clock(self, to: datetime) -> None:
        self.now = to

    def close_days(self, until: date) -> None:
        """Close every billing day through ``until``, in order: a day's charges are decided
        knowing the balance the days before left."""
        day = until if self.closed_through is None else self.closed_through + timedelta(days=1)
        if self.closed_through is None:  # the first close: the days before any plan charge nothing
            day = min((a.plan_from for a in self.accounts.values() if a.plan_from), default=until)
            day = min(day, until)
        while day <= until:
            for label, account in self.accounts.items():
                if account.plan is None or account.plan_from > day or account.debt_blocked:
                    continue
                amount = daily_share(PLAN_PRICES[account.plan], day)
                account.main -= amount
                self.charges.append((label, day, amount))
                self._judge(label, end_of(day))
            day += timedelta(days=1)
        self.closed_through = until if self.closed_through is None else max(self.closed_through, until)

    def _judge(self, label: str, at: datetime) -> None:
        """A prepaid account below zero is blocked for debt; back at zero or above, unblocked."""
        account = self.accounts[label]
        in_debt = account.main < 0
        if in_debt != account.debt_blocked:
            account.debt_blocked = in_debt
            self.blocks.append((label, "blocked" if in_debt else "unblocked", at))

    # --- what it predicts -------------------------------------------------------------------

    def balances(self) -> dict[str, tuple[int, int]]:
        return {label: (a.main, a.bonus) for label, a in self.accounts.items()}

    def fates(self) -> dict[str, str]:
        return {key: p.fate for key, p in self.payments.items()}

    def open_suspense(self) -> dict[str, tuple[int, str]]:
        return {key: (p.amount, p.currency) for key, p in self.suspense.items()}

    def debt_blocked(self) -> dict[str, bool]:
        return {label: a.debt_blocked for label, a in self.accounts.items()}

    def notices(self) -> dict[tuple[str, str], int]:
        """How many block and unblock notices each account is owed: one per fact."""
        counted: dict[tuple[str, str], int] = {}
        for label, what, _ in self.blocks:
            counted[(label, what)] = counted.get((label, what), 0) + 1
        return counted

    def snapshot(self) -> dict[str, Any]:
        return {"balances": self.balances(), "fates": self.fates(), "suspense": self.open_suspense(),
                "blocked": self.debt_blocked(), "charges": sorted(self.charges), "blocks": list(self.blocks)}
