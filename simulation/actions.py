"""The steps of a run: what a subscriber, a payment channel or an operator does (``do``) and what
goes wrong (``fault``), each a small JSON-able dict so a failing run can be written down, shrunk
and replayed. One ``random.Random(seed)`` chooses them all.

A step names accounts by label (``A3``: the third registration of the run), never by number: a
shrunk run that dropped a registration skips the steps about that account instead of aiming them
at another one.
"""

from __future__ import annotations

import random
from typing import Any

from simulation.model import CHANNELS, HOME_INTERNET, MAX_PAYMENT, OPTION_PRICES, PLAN_PRICES, REWARDS, SOLD_WITH, luhn_digit

Step = dict[str, Any]
SERVICES = ("identity", "ledger", "tariff", "notifier")
FAULTS = ("crash", "restart", "broker", "rewind", "prune", "cut_db", "redeliver", "clock_wobble")
STARTS = ("2026-11-28T06:00:00+00:00", "2026-12-30T06:00:00+00:00", "2027-02-26T06:00:00+00:00",
          "2028-02-27T06:00:00+00:00")
"""Where a run's clock starts (09:00 in Moscow): before the "20 % back" campaign opens, at a year
end inside it, before it closes (a 28-day February), and before a 29 February outside it."""
CI_SEEDS = {"sqlite": (1, 2), "postgresql": (3,)}
CI_STEPS = 30
"""CI's budget (``make simulate``, tests/simulation): a few minutes on two cores."""


class Workload:
    """Chooses the next step from what the run has done so far."""

    def __init__(self, rng: random.Random, *, fault_rate: float = 0.2) -> None:
        self.rng = rng
        self.fault_rate = fault_rate
        self.labels: list[str] = []
        self.payments: list[str] = []
        self.strays: list[str] = []
        """Keys of payments sent to no known account: what an operator may place."""
        self._references = 0
        self.asked: dict[str, dict[str, Any]] = {}
        """Per label, the plan, options and blocks asked for (taken or not): what to aim the next
        requests at, so that most of them are taken and the rest refused for one reason."""
        self.redemptions: list[Step] = []
        """Bonus redemptions asked for: what a retry sends again, request id and all."""

    def first(self) -> Step:
        return {"do": "start", "at": self.rng.choice(STARTS)}

    def next(self) -> Step:
        if self.labels and self.rng.random() < self.fault_rate:
            return self._fault()
        return self._do()

    def _do(self) -> Step:
        rng = self.rng
        if len(self.labels) < 2 or rng.random() < 0.08:
            self.labels.append(f"A{len(self.labels) + 1}")
            return {"do": "register", "label": self.labels[-1]}
        choice = rng.choices(["pay", "pay_again", "days", "activate", "transfer", "place", "register_mistyped",
                              "change_plan", "option", "payment_type", "voluntary_block", "end_voluntary_block",
                              "redeem", "reverse", "secret"],
                             weights=[40, 10, 22, 8, 8, 4, 2, 3, 5, 4, 5, 2, 4, 2, 4])[0]
        label = rng.choice(self.labels)
        if choice in ("change_plan", "option", "payment_type", "voluntary_block", "end_voluntary_block", "redeem",
                      "reverse", "secret"):
            return self._request(choice, label)
        if choice == "pay_again" and self.payments:
            return {"do": "pay_again", "key": rng.choice(self.payments),
                    "how": rng.choice(["same_event", "new_id", "conflict"])}
        if choice == "days":
            return {"do": "days", "days": rng.choice([1, 1, 1, 1, 2, 3, 7, 31])}
        if choice == "activate":
            plan = rng.choice(sorted(PLAN_PRICES))
            self.asked.setdefault(label, {}).setdefault("plan", plan)
            return {"do": "activate", "label": label, "plan": plan}
        if choice == "transfer" and len(self.labels) > 1:
            target = rng.choice([other for other in self.labels if other != label])
            return {"do": "transfer", "from": label, "to": target, "amount": rng.randint(1, 80_000)}
        if choice == "place" and self.strays:
            return {"do": "place", "key": rng.choice(self.strays), "label": label}
        if choice == "register_mistyped":
            return {"do": "register_mistyped", "label": label}
        return self._payment(label)

    def _request(self, choice: str, label: str) -> Step:
        """What a subscriber asks of the tariff, the ledger or identity, or an operator's reversal."""
        rng = self.rng
        asked = self.asked.setdefault(label, {})
        aimed = rng.random() < 0.8  # else blind: a refusal, most of the time
        if choice == "change_plan":
            plan = rng.choice(sorted(PLAN_PRICES))
            if aimed and asked.get("plan"):
                asked["plan"] = plan
            return {"do": "change_plan", "label": label, "plan": plan}
        if choice == "option":
            options, sold = asked.setdefault("options", []), sorted(o for o in OPTION_PRICES
                                                                    if asked.get("plan") in SOLD_WITH[o])
            if aimed and options and rng.random() < 0.3:
                return {"do": "option", "label": label, "option": options.pop(rng.randrange(len(options))),
                        "remove": True}
            option = rng.choice(sold if aimed and sold else sorted(OPTION_PRICES))
            options.append(option)
            return {"do": "option", "label": label, "option": option, "remove": rng.random() < 0.1}
        if choice == "payment_type":  # 0: prepaid; 150,000 is past the self-service ceiling
            return {"do": "payment_type", "label": label, "limit": rng.choice([0, 0, 20_000, 50_000, 100_000, 150_000])}
        if choice == "voluntary_block":  # 31 days: past the most a block may last
            with_internet = [other for other, wish in self.asked.items() if wish.get("plan") in HOME_INTERNET]
            if aimed and with_internet:
                label = rng.choice(with_internet)
            self.asked.setdefault(label, {})["block"] = True
            return {"do": "voluntary_block", "label": label, "days": rng.choice([1, 3, 7, 14, 30, 31])}
        if choice == "end_voluntary_block":
            blocked = [other for other, wish in self.asked.items() if wish.get("block")]
            return {"do": "end_voluntary_block", "label": rng.choice(blocked) if aimed and blocked else label}
        if choice == "redeem":
            if self.redemptions and rng.random() < 0.25:
                return dict(rng.choice(self.redemptions))  # a retry: the same request id and content
            self.redemptions.append({"do": "redeem", "label": label, "item": rng.choice(sorted(REWARDS)),
                                     "request": f"R-{len(self.redemptions) + 1}"})
            return dict(self.redemptions[-1])
        if choice == "reverse" and self.payments:
            return {"do": "reverse", "key": rng.choice(self.payments)}
        return {"do": "secret", "label": label, "kind": rng.choice(["password_sms", "reset_code"])}

    def _payment(self, label: str) -> Step:
        rng = self.rng
        self._references += 1
        channel = rng.choice(CHANNELS)
        key = f"{channel}:SIM-{self._references}"
        to, stray = label, False
        kind = rng.random()
        if kind < 0.06:
            to, stray = f"unknown:{rng.randint(0, 9999):04d}", True
        elif kind < 0.10:
            to, stray = f"mistyped:{label}", True
        amount = rng.choice([rng.randint(100, 5_000), rng.randint(5_000, 120_000), rng.randint(50_000, 700_000)])
        currency = "RUB"
        extra = rng.random()
        if extra < 0.03:
            currency, stray = "USD", True
        elif extra < 0.05:
            amount, stray = MAX_PAYMENT + rng.randint(1, 10_000), True
        elif extra < 0.06:  # two of them take the suspense past what money may hold
            amount, stray = rng.randint(4 * 10**14, 6 * 10**14), True
        step = {"do": "pay", "key": key, "to": to, "amount": amount, "currency": currency}
        if amount > 10**14:
            return step  # not sent again: a refused one has no first fate that a repeat must keep
        if rng.random() < 0.03:
            step["copy"] = True
        else:
            self.payments.append(key)
            if stray:
                self.strays.append(key)
        return step

    def _fault(self) -> Step:
        rng = self.rng
        fault = rng.choices(FAULTS, weights=[20, 8, 6, 10, 10, 8, 24, 6])[0]
        step: Step = {"fault": fault}
        if fault in ("crash", "restart", "rewind", "cut_db", "redeliver"):
            step["service"] = rng.choice(SERVICES)
        if fault in ("crash", "cut_db"):
            step["in_flight"] = True  # it strikes while the step before is still being handled
        if fault == "redeliver":
            step["pick"] = rng.randint(0, 10_000)
        if fault == "clock_wobble":
            step["hours"] = rng.choice([-30, -5, 3, 20])
        return step


def unknown_number(tail: str) -> str:
    """A well-formed account number no registration gives out (identity counts from 1000...)."""
    body = f"9000000{tail}"
    return body + luhn_digit(body)


def generate(seed: int, steps: int, *, fault_rate: float = 0.2) -> list[Step]:
    workload = Workload(random.Random(seed), fault_rate=fault_rate)
    return [workload.first(), *(workload.next() for _ in range(steps))]
