"""Runs steps against the suite and the model side by side, and holds one to the other.

Why one process: the broker, the clock and every service are then under the driver's hand. The
clock moves only when a step moves it, and after every step the driver waits until the suite is
quiet (every topic consumed, every outbox empty) before it checks anything: the interleavings of
consumers and relays still vary from run to run, but what a correct suite ends in does not, so a
seed that fails fails again. Real processes would add the operating system's scheduling to what
a seed cannot fix, and a crash would be no truer: cancelling a service's tasks where they stand
loses what a SIGKILL loses (the batch in flight, the outbox not yet published).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from billing_contracts.catalog.ledger import PaymentType, RedemptionPurpose
from billing_contracts import topics
from billing_events.errors import DomainError
from billing_events.clock import ManualClock
from billing_contracts.catalog.payments import PaymentReceived
from billing_contracts.envelope import Envelope
from billing_contracts.ids import uuid7
from billing_contracts.money import Money
from ledger import commands as ledger_commands
from ledger import service as ledger
from tariff import commands as tariff_commands
from tariff import service as tariff

from simulation.actions import Step, unknown_number
from simulation.harness import LOCAL_POSTGRES, Suite
from simulation.invariants import Broken, LogTap, check
from simulation.model import REWARDS, Model, mistyped

STEP_DEADLINE = 300.0
"""Seconds one step may take, settling and checks included, before the run is called stuck."""
REGISTRATION = json.loads((Path(__file__).parents[1] / "docs" / "examples" / "registration.json").read_text())


@dataclass
class Failure:
    step: int
    """Index of the step after which an invariant broke (or which raised)."""
    what: str
    detail: str

    def kind(self) -> str:
        """What a shrunk run must still show to count as the same failure: the first broken
        invariant (others may break beside it, or not)."""
        return self.what.split(" + ")[0]


@dataclass
class Outcome:
    steps_run: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    failure: Failure | None = None


class Run:
    """One run's state beside the suite: which number each label got, the envelopes sent."""

    def __init__(self, suite: Suite, model: Model, known: tuple[str, ...] = ()) -> None:
        self.suite = suite
        self.model = model
        self.known = known
        """Invariants (words of their names) not checked: breaks already known, to look past them."""
        self.numbers: dict[str, str] = {}
        self.sent: dict[str, Envelope[Any]] = {}
        self.logs = LogTap()
        self.first_ids: dict[str, str] = {}
        """Payment key -> the event id it was first sent with: a refused one is found in the dead letters by it."""

    async def do(self, step: Step) -> None:
        handler = getattr(self, f"_do_{step['do']}")
        await handler(step)

    async def _do_start(self, step: Step) -> None:
        """The first step: where the clock starts (the suite is already up on it)."""

    async def _do_register(self, step: Step) -> None:
        from identity import service as identity

        form = dict(REGISTRATION)
        serial = len(self.numbers) + 1
        form["passport_number"] = f"{400000 + serial:06d}"
        registered = await identity.register(self.suite.contexts["identity"], form)
        self.numbers[step["label"]] = registered.account_number
        self.model.register(step["label"])

    async def _do_register_mistyped(self, step: Step) -> None:
        """The registration of an account published again with a wrong check digit (a new event)."""
        number = self.numbers.get(step["label"])
        if number is None:
            return
        row = await self._kept(self.suite.runtimes["identity"], "SubscriberRegistered", number)
        if row is None:
            return
        document = json.loads(row)
        wrong = mistyped(number)
        document["event_id"], document["account"] = str(uuid7()), wrong
        document["payload"]["account_number"] = wrong
        await self.suite.producer.send_raw(self.suite.runtimes["identity"].topics(topics.IDENTITY),
                                           json.dumps(document).encode(), key=wrong.encode())

    async def _kept(self, runtime: Any, event_type: str, account: str) -> bytes | None:
        from sqlalchemy import select

        from billing_events.schema import outbox

        async with runtime.db.connect() as conn:
            rows = (await conn.execute(select(outbox.c.value).where(outbox.c.key == account)
                                       .order_by(outbox.c.id))).scalars().all()
        return next((value for value in rows if json.loads(value)["event_type"] == event_type), None)

    def _typed(self, to: str) -> tuple[str | None, str]:
        """The number a payment carries and the model's name for it (a label or the number)."""
        if to.startswith("unknown:"):
            number = unknown_number(to.split(":", 1)[1])
            return number, number
        if to.startswith("mistyped:"):
            number = self.numbers.get(to.split(":", 1)[1])
            return (None, "") if number is None else (mistyped(number), mistyped(number))
        return self.numbers.get(to), to

    async def _do_pay(self, step: Step) -> None:
        number, target = self._typed(step["to"])
        if number is None:
            return
        channel, reference = step["key"].split(":", 1)
        payment = PaymentReceived(account_number=number, channel=channel, reference=reference,
                                  amount=Money(minor=step["amount"], currency=step["currency"]),
                                  received_at=self.suite.clock.now())
        envelope = Envelope.new(payment, account=number, producer=channel, clock=self.suite.clock)
        topic = self.suite.runtimes["ledger"].topics(topics.PAYMENTS)
        if step.get("copy"):
            document = json.loads(envelope.to_bytes())
            document["copy_of"] = str(uuid4())
            self.first_ids.setdefault(step["key"], document["event_id"])
            await self.suite.producer.send_raw(topic, json.dumps(document).encode(), key=number.encode())
        else:
            self.sent[step["key"]] = envelope
            self.first_ids.setdefault(step["key"], str(envelope.event_id))
            await self.suite.producer.send(topic, envelope)
        self.model.pay(step["key"], target, step["amount"], step["currency"], channel=channel,
                       copy=bool(step.get("copy")))

    async def _do_pay_again(self, step: Step) -> None:
        """The same payment again: the very same event, the same under a new id, or its
        reference reused with another amount (a conflict)."""
        first = self.sent.get(step["key"])
        if first is None:
            return
        payload: PaymentReceived = first.payload
        envelope = first
        if step["how"] != "same_event":
            amount = payload.amount.minor + (1 if step["how"] == "conflict" else 0)
            again = payload.model_copy(update={"amount": Money(minor=amount, currency=payload.amount.currency)})
            envelope = Envelope.new(again, account=first.account, producer=first.producer, clock=self.suite.clock)
        await self.suite.producer.send(self.suite.runtimes["ledger"].topics(topics.PAYMENTS), envelope)
        typed = next((label for label, n in self.numbers.items() if n == payload.account_number),
                     payload.account_number)
        self.model.pay(step["key"], typed, envelope.payload.amount.minor, payload.amount.currency,
                       channel=payload.channel.value)

    async def _do_days(self, step: Step) -> None:
        """The clock moves on whole days and the tariff closes every day that ended, as its
        midnight would (a move of many days is a catch-up)."""
        self.suite.clock.advance(timedelta(days=step["days"]))
        self.model.move_clock(self.suite.clock.now())
        context = self.suite.contexts["tariff"]
        until = context.billing_day() - timedelta(days=1)
        await tariff.close_days(context, until)
        self.model.close_days(until)

    async def _do_activate(self, step: Step) -> None:
        number = self.numbers.get(step["label"])
        if number is None:
            return
        if self.model.activate(step["label"], step["plan"]):
            await tariff.activate_plan(self.suite.contexts["tariff"],
                                       tariff_commands.ActivatePlan(account_number=number, plan=step["plan"]))

    async def _do_transfer(self, step: Step) -> None:
        source, target = self.numbers.get(step["from"]), self.numbers.get(step["to"])
        if source is None or target is None:
            return
        await self._held_to(json.dumps(step), self.model.transfer(step["from"], step["to"], step["amount"]),
                            ledger.transfer(self.suite.contexts["ledger"], ledger_commands.Transfer(
                                from_account=source, to_account=target, amount=Money(minor=step["amount"]),
                                requested_by=f"cabinet:{source}")))

    async def _do_place(self, step: Step) -> None:
        from ledger import store
        from ledger.domain.transactions import OperatorNote

        number = self.numbers.get(step["label"])
        if number is None or not self.model.place(step["key"], step["label"]):
            return
        channel, reference = step["key"].split(":", 1)
        async with self.suite.runtimes["ledger"].db.connect() as conn:
            items = await store.open_suspense(conn)
        item = next((i for i in items if (i.channel.value, i.reference) == (channel, reference)), None)
        if item is None:
            raise Broken("suspense", f"{step['key']} should be open in suspense to be placed, it is not")
        await ledger.resolve_suspense(self.suite.contexts["ledger"], ledger_commands.ResolveSuspense(
            parked_transaction_id=item.transaction_id, target_account=number,
            operator=OperatorNote(who="cli:simulation", why="placed by the simulation")))

    async def _held_to(self, what: str, model_takes: bool, command: Awaitable[Any]) -> None:
        """Run a command the model has decided: the suite must take what the model takes and
        refuse (a domain error) what it refuses."""
        try:
            await command
            suite_takes = True
        except DomainError as error:
            suite_takes, what = False, f"{what} (refused: {error.code})"
        if suite_takes != model_takes:
            raise Broken("the suite takes the commands the model takes, and refuses the others",
                         f"{what}: the model {'takes' if model_takes else 'refuses'} it, the suite does not")

    async def _tariff_command(self, step: Step, model_takes: Callable[[], bool], run: Callable[..., Awaitable[Any]],
                              command: Callable[..., Any], **fields: Any) -> None:
        number = self.numbers.get(step["label"])
        if number is None:
            return
        await self._held_to(json.dumps(step), model_takes(),
                            run(self.suite.contexts["tariff"], command(account_number=number, **fields)))

    async def _do_change_plan(self, step: Step) -> None:
        await self._tariff_command(step, lambda: self.model.change_plan(step["label"], step["plan"]),
                                   tariff.change_tariff, tariff_commands.ChangePlan, plan=step["plan"])

    async def _do_option(self, step: Step) -> None:
        if step.get("remove"):
            await self._tariff_command(step, lambda: self.model.remove_option(step["label"], step["option"]),
                                       tariff.remove_account_option, tariff_commands.RemoveOption, option=step["option"])
        else:
            await self._tariff_command(step, lambda: self.model.add_option(step["label"], step["option"]),
                                       tariff.add_account_option, tariff_commands.AddOption, option=step["option"])

    async def _do_voluntary_block(self, step: Step) -> None:
        await self._tariff_command(step, lambda: self.model.start_voluntary_block(step["label"], step["days"]),
                                   tariff.start_block, tariff_commands.StartVoluntaryBlock, days=step["days"])

    async def _do_end_voluntary_block(self, step: Step) -> None:
        await self._tariff_command(step, lambda: self.model.end_voluntary_block(step["label"]),
                                   tariff.end_block, tariff_commands.EndVoluntaryBlock)

    async def _do_payment_type(self, step: Step) -> None:
        """The subscriber's own switch: prepaid (limit 0) or credit with a limit."""
        number = self.numbers.get(step["label"])
        if number is None:
            return
        limit = step["limit"]
        await self._held_to(json.dumps(step), self.model.change_payment_type(step["label"], limit),
                            ledger.change_payment_type(self.suite.contexts["ledger"], ledger_commands.ChangePaymentType(
                                account_number=number, payment_type=PaymentType.CREDIT if limit else PaymentType.PREPAID,
                                credit_limit=Money(minor=limit), requested_by=f"cabinet:{number}")))

    async def _do_redeem(self, step: Step) -> None:
        """A reward bought with bonuses; the request id is the step's, so sending it again is a retry."""
        number = self.numbers.get(step["label"])
        if number is None:
            return
        price, kind = REWARDS[step["item"]]
        await self._held_to(json.dumps(step), self.model.redeem(step["request"], step["label"], step["item"]),
                            ledger.redeem_bonus(self.suite.contexts["ledger"], ledger_commands.RedeemBonus(
                                account_number=number, amount=Money(minor=price), purpose=RedemptionPurpose(kind),
                                item=step["item"], request_id=uuid5(NAMESPACE_URL, f"simulation:{step['request']}"))))

    async def _do_reverse(self, step: Step) -> None:
        """An operator reverses a payment the ledger credited (its transaction, found by its key)."""
        from sqlalchemy import select

        from ledger import store
        from ledger.domain.transactions import OperatorNote

        payment = self.model.payments.get(step["key"])
        if payment is None or payment.fate != "credited":
            return
        async with self.suite.runtimes["ledger"].db.connect() as conn:
            ids = await conn.scalar(select(store.idempotency_keys.c.transaction_ids).where(
                store.idempotency_keys.c.family == "payment", store.idempotency_keys.c.key == step["key"]))
            kinds = {i: (await store.transaction(conn, UUID(i))).kind.value for i in (ids or "").split()}
        credited = [i for i, kind in kinds.items() if kind == "payment"]
        if len(credited) != 1:
            raise Broken("each payment has one fate, the model's", f"{step['key']} credited by {kinds}")
        await self._held_to(json.dumps(step), self.model.reverse(step["key"]),
                            ledger.reverse(self.suite.contexts["ledger"], ledger_commands.Reverse(
                                transaction_id=UUID(credited[0]),
                                operator=OperatorNote(who="cli:simulation", why="reversed by the simulation"))))

    async def _do_secret(self, step: Step) -> None:
        """A password by SMS, or a reset code to the registered phone (the form every registration uses)."""
        from identity import service as identity

        number = self.numbers.get(step["label"])
        if number is None:
            return
        context = self.suite.contexts["identity"]
        if step["kind"] == "password_sms":
            command = identity.reissue_password_by_sms(context, {"login": number})
        else:
            command = identity.request_reset_code(context, {"login": number, "phone": REGISTRATION["mobile_phone"]})
        await self._held_to(json.dumps(step), self.model.request_secret(step["label"], step["kind"]), command)

    async def fault(self, step: Step) -> None:
        suite, kind = self.suite, step["fault"]
        if kind == "crash":
            await suite.crash(step["service"])
        elif kind == "restart":
            await suite.restart(step["service"])
        elif kind == "broker":
            await suite.restart_broker()
        elif kind == "rewind":
            await suite.rewind(step["service"])
        elif kind == "prune":
            await suite.prune_inboxes()
        elif kind == "cut_db":
            await suite.cut_database(step["service"])
        elif kind == "redeliver":
            await suite.redeliver(step["service"], step["pick"])
        elif kind == "clock_wobble":
            await suite.quiet()
            suite.clock.advance(timedelta(hours=step["hours"]))
            await suite.quiet()
            suite.clock.advance(timedelta(hours=-step["hours"]))


async def _step(run: Run, step: Step, *, settle: bool, check_now: bool, full: bool) -> None:
    if "fault" in step:
        await run.fault(step)
    else:
        await run.do(step)
    if not settle:
        return  # the fault that follows strikes before this step settles
    await run.suite.quiet()
    if check_now:
        await check(run, full=full)


async def execute(steps: list[Step], *, database: str = "sqlite", workdir: Path | None = None,
                  postgres_server: str = LOCAL_POSTGRES, check_every: int = 1, verbose: bool = False,
                  known: tuple[str, ...] = (), stop_at: float | None = None) -> Outcome:
    """Run ``steps`` on a fresh suite; the outcome names the first step after which the suite
    and the model disagree (or an invariant broke, or a step raised). ``stop_at`` (a
    ``time.monotonic()``): the run ends there, checked, whatever steps are left."""
    start = datetime.fromisoformat(steps[0]["at"])

    outcome = Outcome()
    with tempfile.TemporaryDirectory(prefix="simulation-", dir=workdir) as where:
        suite = Suite(Path(where), database, ManualClock(start), postgres_server=postgres_server)
        model = Model(start)
        run = Run(suite, model, known)
        try:
            with run.logs.tapping():
                await _steps(run, steps, outcome, check_every=check_every, verbose=verbose, stop_at=stop_at)
        finally:
            await suite.stop()
    return outcome


async def _steps(run: Run, steps: list[Step], outcome: Outcome, *, check_every: int, verbose: bool,
                 stop_at: float | None) -> None:
    await run.suite.start()
    for index, step in enumerate(steps):
        if stop_at is not None and time.monotonic() >= stop_at and "fault" not in step:
            break
        outcome.steps_run = index + 1
        if verbose:
            print(f"  step {index}: {json.dumps(step, ensure_ascii=False)}", flush=True)
        try:
            if "fault" in step:
                outcome.faults[step["fault"]] += 1
            following = steps[index + 1] if index + 1 < len(steps) else {}
            last = index == len(steps) - 1
            await asyncio.wait_for(_step(run, step, settle=not following.get("in_flight"),
                                         check_now=last or index % check_every == 0,
                                         full=last or index % (5 * check_every) == 0), STEP_DEADLINE)
        except TimeoutError:
            outcome.failure = Failure(index, "a step never ended",
                                      f"step {index} ran more than {STEP_DEADLINE:.0f} s: {step}")
            return
        except Broken as broken:
            outcome.failure = Failure(index, broken.what, broken.detail)
            return
        except Exception as error:  # a step that raised is a failure to reproduce too
            outcome.failure = Failure(index, f"raised {type(error).__name__}",
                                      "".join(traceback.format_exception(error))[-3000:])
            return
