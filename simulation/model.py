"""What the suite promises, as a small model of its own.

Written from docs/ (walkthrough, operations "Money enters the journal once", events) and the
domain's rules and decisions, not from the services' code: given the same actions it predicts
every balance, the fate of every payment, the suspense, every daily charge, every debt block and
unblock (with the moment it carries) and the notices about them. The driver holds the services
to it after every step.

Scope: registrations (and registrations carrying a mistyped number, which open nothing);
payments over the six channels with their first fate (credited, parked, placed by an operator,
refused as a malformed copy or past what money may hold; a conflict changes nothing); the "20 %
back" campaign; transfers (real money only: credit does not move); plans, plan changes and options,
each from the next billing day, and their daily charges (each fee's share rounded on its own);
the payment type (prepaid, or credit with a limit up to the self-service ceiling: a credit account
is blocked for debt only past its limit); voluntary blocks (1 to 30 days, paid at once, a plan
with home internet, once in every calendar year the block touches, no fees while it lasts, ended
by its last day's close or earlier on request); bonus redemptions from the rewards catalogue;
an operator's reversal of a credited payment (once); blocks for debt and the unblocks a payment,
a reversal's undoing or a credit limit brings; suspense placement; passwords by SMS and reset
codes (five an hour per account, all kinds together) and one notice per fact: every block and
unblock, voluntary block start and end, plan change, password and code.
Which commands the suite refuses is predicted too: the driver holds each refusal to the model's.
"""

from __future__ import annotations

from calendar import monthrange
from collections import Counter
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
PLAN_PRICES = {"internet-100": 55_000, "internet-300": 70_000, "tv-basic": 25_000, "tv-optimum": 40_000,
               "combo-100-optimum": 80_000}
"""Monthly prices in Moscow (`billing catalog --region moscow`), minor units."""
HOME_INTERNET = frozenset({"internet-100", "internet-300", "combo-100-optimum"})
"""The plans with a home internet connection: the only ones a voluntary block is sold with."""
WITH_TV = frozenset({"tv-basic", "tv-optimum", "combo-100-optimum"})
OPTION_PRICES = {"multiroom": 15_000, "antivirus": 9_900, "kino": 29_900, "sport": 39_900, "kids": 14_900}
"""Options in Moscow: monthly prices, charged daily like a plan; antivirus needs internet, the rest TV."""
SOLD_WITH = {option: HOME_INTERNET if option == "antivirus" else WITH_TV for option in OPTION_PRICES}
VOLUNTARY_BLOCK_PRICE = 15_000
"""A voluntary block's price in Moscow (`billing catalog`: 150.00 RUB), charged when it starts."""
MAX_BLOCK_DAYS = 30
SELF_SERVICE_CREDIT_LIMIT = 100_000
"""BILLING_LEDGER_SELF_SERVICE_CREDIT_LIMIT's default: the largest limit a subscriber sets alone."""
REWARDS = {"discount-100": (10_000, "discount"), "discount-300": (27_000, "discount"),
           "kino-month": (25_000, "gift"), "router-stand": (5_000, "gift")}
"""The rewards catalogue (`GET /ledger/rewards`): price in bonus minor units and kind."""
SECRET_REQUESTS_PER_HOUR = 5
"""Passwords by SMS and reset codes acted on per account and hour, all kinds together."""
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


@dataclass(frozen=True)
class Terms:
    plan: str | None = None
    options: frozenset[str] = frozenset()


@dataclass
class VoluntaryBlock:
    start: date
    last_day: date
    """Its last day without fees; the day before ``start`` when ended on its first day."""
    ended: bool = False

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.last_day

    def years(self) -> set[int]:
        """Every calendar year a day of it falls in, and the year it started (its use is spent)."""
        return set(range(self.start.year, max(self.start, self.last_day).year + 1))


@dataclass
class Account:
    main: int = 0
    bonus: int = 0
    schedule: dict[date, Terms] = field(default_factory=dict)
    """The terms from each day they changed on: a change asked for today is in effect from tomorrow,
    and a second change today replaces the first."""
    debt_blocked: bool = False
    credit_limit: int = 0
    """0: prepaid; above 0: the credit payment type, charges may take the balance down to -limit."""
    voluntary_blocks: list[VoluntaryBlock] = field(default_factory=list)
    secret_requests: list[datetime] = field(default_factory=list)
    """When each password by SMS or reset code was acted on."""

    def terms_on(self, day: date) -> Terms:
        days = [start for start in self.schedule if start <= day]
        return self.schedule[max(days)] if days else Terms()

    def planned(self) -> Terms:
        """The terms from the latest change on: what tomorrow holds."""
        return self.schedule[max(self.schedule)] if self.schedule else Terms()

    def plan_from(self) -> date | None:
        return min((day for day, terms in self.schedule.items() if terms.plan), default=None)

    def blocked_voluntarily_on(self, day: date) -> bool:
        return any(block.covers(day) for block in self.voluntary_blocks)

    def running_block(self) -> VoluntaryBlock | None:
        return next((block for block in self.voluntary_blocks if not block.ended), None)


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
    """(label, "blocked" or "unblocked", the moment the event carries), in order: for debt."""
    voluntary: list[tuple[str, str, datetime]] = field(default_factory=list)
    """(label, "blocked" or "unblocked", the moment the event carries), in order: voluntary blocks."""
    told: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Notices owed besides the blocks': (label, "tariff_changed" / "password_initial" /
    "password_sms" / "reset_code") -> how many."""
    reversed: set[str] = field(default_factory=set)
    """Payment keys an operator reversed."""
    redemptions: dict[str, bool] = field(default_factory=dict)
    """Request id -> whether the redemption took the bonuses (a retry gets the first answer)."""
    closed_through: date | None = None
    conflicts: int = 0
    cash: dict[tuple[str, str], int] = field(default_factory=dict)
    """What each channel's cash account holds per currency (it gives what the payments bring)."""

    # --- actions ----------------------------------------------------------------------------

    def register(self, label: str) -> None:
        self.accounts[label] = Account()
        self.told[(label, "password_initial")] += 1

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
        if giver is None or taker is None or source == target or amount > max(giver.main, 0):
            return False
        giver.main -= amount
        taker.main += amount
        self._judge(source, self.now)
        self._judge(target, self.now)
        return True

    def activate(self, label: str, plan: str) -> bool:
        """A plan is charged from the next billing day; an account holds one plan."""
        account = self.accounts.get(label)
        if account is None or account.planned().plan is not None:
            return False
        self._schedule(account, Terms(plan))
        return True

    def change_plan(self, label: str, plan: str) -> bool:
        """Another plan from tomorrow; refused without a plan, for the plan already chosen, or
        when an option chosen is not sold with the new plan (remove it first)."""
        account = self.accounts[label]
        planned = account.planned()
        if planned.plan is None or planned.plan == plan or any(plan not in SOLD_WITH[o] for o in planned.options):
            return False
        self._schedule(account, Terms(plan, planned.options))
        self.told[(label, "tariff_changed")] += 1
        return True

    def add_option(self, label: str, option: str) -> bool:
        """An option from tomorrow, with a plan chosen that it is sold with, once."""
        account = self.accounts[label]
        planned = account.planned()
        if planned.plan is None or option in planned.options or planned.plan not in SOLD_WITH[option]:
            return False
        self._schedule(account, Terms(planned.plan, planned.options | {option}))
        return True

    def remove_option(self, label: str, option: str) -> bool:
        account = self.accounts[label]
        planned = account.planned()
        if option not in planned.options:
            return False
        self._schedule(account, Terms(planned.plan, planned.options - {option}))
        return True

    def _schedule(self, account: Account, terms: Terms) -> None:
        account.schedule[billing_day(self.now) + timedelta(days=1)] = terms

    def change_payment_type(self, label: str, credit_limit: int) -> bool:
        """A subscriber's own request: prepaid (limit 0) or credit with a limit up to the
        self-service ceiling. A limit must cover the debt there is, and prepaid needs no debt
        (either would block the account on the spot: the debt is paid first)."""
        account = self.accounts[label]
        if credit_limit > SELF_SERVICE_CREDIT_LIMIT or account.main + credit_limit < 0:
            return False
        account.credit_limit = credit_limit
        self._judge(label, self.now)
        return True

    def start_voluntary_block(self, label: str, days: int) -> bool:
        """From today for ``days`` days (today is then not charged), paid at once: refused past
        30 days, while one runs, without a plan with home internet in effect today, in any
        calendar year a block of this account touched, or when the money (with the credit
        limit) does not pay its price."""
        account, today = self.accounts[label], billing_day(self.now)
        asked = VoluntaryBlock(today, today + timedelta(days=days - 1))
        plan = account.terms_on(today).plan
        if (not 1 <= days <= MAX_BLOCK_DAYS or account.running_block() is not None or plan not in HOME_INTERNET
                or any(block.years() & asked.years() for block in account.voluntary_blocks)
                or account.main + account.credit_limit < VOLUNTARY_BLOCK_PRICE):
            return False
        account.voluntary_blocks.append(asked)
        account.main -= VOLUNTARY_BLOCK_PRICE
        self.charges.append((label, today, VOLUNTARY_BLOCK_PRICE))
        self.voluntary.append((label, "blocked", self.now))
        self._judge(label, self.now)
        return True

    def end_voluntary_block(self, label: str) -> bool:
        """Ended early on request: at once, and today is charged again; the year's use is spent."""
        account = self.accounts[label]
        running = account.running_block()
        if running is None:
            return False
        self._end_block(label, running, min(running.last_day, billing_day(self.now) - timedelta(days=1)), self.now)
        return True

    def _end_block(self, label: str, block: VoluntaryBlock, last_day: date, at: datetime) -> None:
        block.last_day, block.ended = last_day, True
        self.voluntary.append((label, "unblocked", at))

    def redeem(self, request_id: str, label: str, item: str) -> bool:
        """Bonuses for a reward at its catalogue price: refused when the bonus balance does not
        hold it; the same request again gets its first answer."""
        if request_id in self.redemptions:
            return self.redemptions[request_id]
        account = self.accounts[label]
        price = REWARDS[item][0]
        taken = self.redemptions[request_id] = account.bonus >= price
        if taken:
            account.bonus -= price
        return taken

    def reverse(self, key: str) -> bool:
        """An operator reverses a credited payment: its money leaves the account whatever balance
        that leaves (a fact about the past), once; the payment's fate and bonuses stay."""
        payment = self.payments[key]
        if key in self.reversed:
            return False
        self.reversed.add(key)
        self.accounts[payment.typed].main -= payment.amount
        self._judge(payment.typed, self.now)
        return True

    def request_secret(self, label: str, kind: str) -> bool:
        """A password by SMS (``password_sms``) or a reset code (``reset_code``): acted on,
        with its one notice, unless the account had five in the last hour."""
        account = self.accounts[label]
        recent = [at for at in account.secret_requests if at > self.now - timedelta(hours=1)]
        if len(recent) >= SECRET_REQUESTS_PER_HOUR:
            return False
        account.secret_requests.append(self.now)
        self.told[(label, kind)] += 1
        return True

    def move_clock(self, to: datetime) -> None:
        self.now = to

    def close_days(self, until: date) -> None:
        """Close every billing day through ``until``, in order: a day's charges are decided
        knowing the balance the days before left."""
        day = until if self.closed_through is None else self.closed_through + timedelta(days=1)
        if self.closed_through is None:  # the first close: the days before any plan charge nothing
            day = min((a.plan_from() for a in self.accounts.values() if a.plan_from()), default=until)
            day = min(day, until)
        while day <= until:
            for label, account in self.accounts.items():
                terms = account.terms_on(day)
                if terms.plan is not None and not account.debt_blocked and not account.blocked_voluntarily_on(day):
                    for monthly in [PLAN_PRICES[terms.plan], *(OPTION_PRICES[o] for o in sorted(terms.options))]:
                        amount = daily_share(monthly, day)
                        account.main -= amount
                        self.charges.append((label, day, amount))
                    self._judge(label, end_of(day))
                running = account.running_block()
                if running is not None and running.last_day <= day:  # ends with its last day's close
                    self._end_block(label, running, running.last_day, end_of(running.last_day))
            day += timedelta(days=1)
        self.closed_through = until if self.closed_through is None else max(self.closed_through, until)

    def _judge(self, label: str, at: datetime) -> None:
        """A prepaid account below zero, a credit account past its limit, is blocked for debt;
        back within it, unblocked."""
        account = self.accounts[label]
        in_debt = account.main < -account.credit_limit
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
        """How many notices of each kind each account is owed: one per fact."""
        counted = Counter(self.told)
        counted.update((label, what) for label, what, _ in self.blocks)
        counted.update((label, f"voluntary_{what}") for label, what, _ in self.voluntary)
        return dict(counted)

    def snapshot(self) -> dict[str, Any]:
        return {"balances": self.balances(), "fates": self.fates(), "suspense": self.open_suspense(),
                "blocked": self.debt_blocked(), "charges": sorted(self.charges), "blocks": list(self.blocks),
                "voluntary": list(self.voluntary)}
