"""Commands sent the way the channels and the cabinet send them: a payment from a terminal goes
to the payments topic, everything else to the owning service's API. Never another service's
database."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from aiokafka import AIOKafkaProducer

from billing_cli.config import CliSettings
from billing_cli.output import Exit, console, emit_json, fail, reported, with_money_shown
from billing_contracts.accounts import AccountNumber
from billing_contracts import topics
from billing_contracts.catalog.ledger import RedemptionPurpose
from billing_contracts.catalog.payments import PaymentChannel, PaymentReceived
from billing_contracts.envelope import Envelope
from billing_contracts.money import Money, format_amount
from billing_contracts.topics import TopicNames

app = typer.Typer(no_args_is_help=True)
STATUS_EXIT = {404: Exit.NOT_FOUND, 401: Exit.REFUSED, 403: Exit.REFUSED}


def account_number(value: str) -> str:
    """A 12-digit account number as people type it (spaces and hyphens allowed), whatever its
    check digit: operations may pay a mistyped number on purpose, to see it parked in suspense."""
    digits = AccountNumber.digits_of(value)
    if not AccountNumber.has_shape(digits):
        fail(f"{value!r} is not a 12-digit account number", Exit.USAGE)
    return digits


def moment(value: str | None) -> datetime | None:
    """A date or time as ISO 8601; without a zone it is UTC (a date alone: its midnight UTC)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{value!r} is not a date or time (use ISO 8601, e.g. 2026-12-01 or 2026-12-01T10:00+03:00)", Exit.USAGE)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _amount(value: str, currency: str) -> Money:
    try:
        amount = Money.parse(value, currency)
    except ValueError as exc:
        fail(f"malformed amount: {exc}", Exit.USAGE)
    if amount.minor <= 0:
        fail(f"the amount must be more than zero, not {value}", Exit.USAGE)
    limit = CliSettings().max_payment
    if amount.minor > limit:
        fail(f"{amount} is over the limit of {format_amount(limit, currency)} for one movement"
             " (BILLING_MAX_PAYMENT)", Exit.USAGE)
    return amount


def call_service(service: str, method: str, path: str, body: Any = None) -> Any:
    """One request to a service's API with the operator's own token; its refusal becomes one line."""
    settings = CliSettings()
    token = settings.operator_token(service)
    url = settings.url(service)
    try:
        response = httpx.request(method, f"{url}{path}", json=body, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"})
    except httpx.TransportError as exc:
        fail(f"the {service} service is not reachable at {url}: {type(exc).__name__}", Exit.UNREACHABLE)
    if response.status_code >= 400:
        fail(f"{service} refused ({response.status_code}): {_reason(response)}",
             STATUS_EXIT.get(response.status_code, Exit.REFUSED))
    return response.json()


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    fields = body.get("errors") or body.get("detail")
    if isinstance(fields, list) and fields:
        return "; ".join(f"{'.'.join(str(p) for p in e.get('loc', [])[1:]) or e.get('field') or '-'}: "
                         f"{e.get('msg') or e.get('message')}" for e in fields)
    return str(body.get("message") or body.get("detail") or body)


def _show(result: Any, as_json: bool) -> None:
    if as_json:
        emit_json(result)
    else:
        console.print_json(data=with_money_shown(result))


@app.command()
def pay(
    account: Annotated[str, typer.Argument(help="Account number the payer typed")],
    amount: Annotated[str, typer.Argument(help="Amount, e.g. 1500 or 1500.50")],
    channel: Annotated[PaymentChannel, typer.Option(help="Payment channel")] = PaymentChannel.TERMINAL,
    reference: Annotated[str | None, typer.Option(help="The channel's own reference (default: generated)")] = None,
    currency: str = "RUB",
) -> None:
    """A payment as a payment terminal sends it: PaymentReceived on the payments topic."""
    number, money = account_number(account), _amount(amount, currency)
    settings = CliSettings()
    clock = settings.clock()
    payment = PaymentReceived(account_number=number, channel=channel, amount=money, received_at=clock.now(),
                              reference=reference or f"cli-{datetime.now(UTC):%Y%m%d%H%M%S%f}")
    signer = settings.signer()
    envelope = Envelope.new(payment, account=number, producer=signer.owner, clock=clock)
    value, key = envelope.to_bytes(), number.encode()
    headers = {**envelope.kafka_headers(), **signer.headers(topics.PAYMENTS, key, value)}

    async def send() -> None:
        producer = AIOKafkaProducer(**settings.broker_options(), request_timeout_ms=10_000)
        await producer.start()
        try:
            await producer.send_and_wait(TopicNames(settings.topic_prefix)(topics.PAYMENTS), value, key=key,
                                         headers=[(k, v.encode()) for k, v in headers.items()])
        finally:
            await producer.stop()

    with reported():
        try:
            asyncio.run(send())
        except Exception as exc:  # aiokafka's connection errors are not OSErrors
            fail(f"the broker at {settings.broker()} is not reachable: {type(exc).__name__}", Exit.UNREACHABLE)
    console.print(f"payment {money} for {number} sent (event {envelope.event_id}, reference {payment.reference})")


@app.command()
def register(
    form: Annotated[Path, typer.Argument(help="JSON file with the registration form ('-' reads stdin)")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Register a subscriber (identity): prints the account and contract numbers."""
    with reported():
        text = sys.stdin.read() if str(form) == "-" else form.read_text()
        try:
            body = json.loads(text)
        except ValueError as exc:
            fail(f"the form is not JSON: {exc}", Exit.USAGE)
        _show(call_service("identity", "POST", "/identity/subscribers", body), as_json)


@app.command()
def activate(
    account: str,
    plan: str,
    equipment: Annotated[list[str] | None, typer.Option(help="Equipment chosen with the plan (repeat for more)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Activate a tariff plan for an account (from the next billing day), with its equipment."""
    with reported():
        _show(call_service("tariff", "POST", f"/tariff/accounts/{account_number(account)}/plan",
                           {"plan": plan, "equipment": equipment or []}), as_json)


@app.command("change-plan")
def change_plan(account: str, plan: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Change the tariff plan (from the next billing day)."""
    with reported():
        _show(call_service("tariff", "PUT", f"/tariff/accounts/{account_number(account)}/plan", {"plan": plan}), as_json)


@app.command("add-option")
def add_option(account: str, option: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Add an option (multiroom, antivirus, a channel package) from the next billing day."""
    with reported():
        _show(call_service("tariff", "POST", f"/tariff/accounts/{account_number(account)}/options", {"option": option}),
              as_json)


@app.command("remove-option")
def remove_option(account: str, option: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Remove an option (it is not charged from the next billing day)."""
    with reported():
        _show(call_service("tariff", "DELETE", f"/tariff/accounts/{account_number(account)}/options/{option}"), as_json)


@app.command("rent-equipment")
def rent_equipment(account: str, equipment: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Rent equipment (a router, a set-top box) from the next billing day: free with some plans."""
    with reported():
        _show(call_service("tariff", "POST", f"/tariff/accounts/{account_number(account)}/equipment",
                           {"equipment": equipment}), as_json)


@app.command("return-equipment")
def return_equipment(account: str, equipment: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Return equipment (it is not charged from the next billing day)."""
    with reported():
        _show(call_service("tariff", "DELETE", f"/tariff/accounts/{account_number(account)}/equipment/{equipment}"),
              as_json)


@app.command("close-account")
def close_account(
    account: str,
    reason: Annotated[str, typer.Option(help="Why (kept in the journal)")],
    transfer_to: Annotated[str | None, typer.Option(help="Move the money left to this account instead of"
                                                         " refunding it")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Support: close an account. Its days are charged through today, nothing after; the money left
    is refunded to the subscriber (a payout), or moved to --transfer-to; the number is never reused."""
    body: dict[str, Any] = {"settlement": "refund", "reason": reason}
    if transfer_to is not None:
        body = {"settlement": "transfer", "transfer_to": account_number(transfer_to), "reason": reason}
    with reported():
        _show(call_service("tariff", "POST", f"/tariff/accounts/{account_number(account)}/closure", body), as_json)


@app.command()
def block(account: str, days: int, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """A voluntary block for DAYS days (1 to 30, once a year, paid)."""
    with reported():
        _show(call_service("tariff", "POST", f"/tariff/accounts/{account_number(account)}/voluntary-block",
                    {"days": days}), as_json)


@app.command()
def unblock(account: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """End a voluntary block early."""
    with reported():
        _show(call_service("tariff", "DELETE", f"/tariff/accounts/{account_number(account)}/voluntary-block"), as_json)


@app.command("reset-password")
def reset_password(
    login: Annotated[str, typer.Option(help="Account or contract number")],
    contact: Annotated[str, typer.Option(help="The mobile number or e-mail on the contract")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Forgot password: a one-time code goes to the subscriber's phone or e-mail."""
    with reported():
        by = "email" if "@" in contact else "phone"
        _show(call_service("identity", "POST", "/identity/reset-codes", {"login": login, by: contact}), as_json)


@app.command()
def transfer(source: str, target: str, amount: str, currency: str = "RUB",
             as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Move money between two personal accounts."""
    money = _amount(amount, currency)
    with reported():
        _show(call_service("ledger", "POST", f"/ledger/accounts/{account_number(source)}/transfers",
                    {"to_account": account_number(target), "amount": money.model_dump()}), as_json)


@app.command()
def redeem(
    account: str,
    amount: Annotated[str | None, typer.Argument(help="Bonuses to spend, e.g. 150 or 150.50 (without --item)")] = None,
    item: Annotated[str | None, typer.Option(help="An item of the rewards catalogue (GET /ledger/rewards lists them):"
                                                  " its price and kind are the ledger's")] = None,
    purpose: Annotated[RedemptionPurpose, typer.Option(help="discount or gift")] = RedemptionPurpose.DISCOUNT,
    currency: str = "RUB",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Exchange an account's bonuses for an item of the rewards catalogue (--item), or for a
    discount or a gift of AMOUNT (refused in words if there are too few)."""
    if (amount is None) == (item is None):
        fail("give an AMOUNT of bonuses or --item CODE of the rewards catalogue (one of them)", Exit.USAGE)
    body: dict[str, Any] = {"item": item}
    if amount is not None:
        body = {"amount": _amount(amount, currency).model_dump(), "purpose": purpose.value}
    with reported():
        _show(call_service("ledger", "POST", f"/ledger/accounts/{account_number(account)}/bonus-redemptions", body),
              as_json)


@app.command("move-suspense")
def move_suspense(
    transaction_id: Annotated[str, typer.Argument(help="The parked payment's transaction id")],
    account: Annotated[str, typer.Argument(help="The account it was meant for")],
    reason: Annotated[str, typer.Option(help="Why (kept in the journal and the history)")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Operations: move a payment parked in suspense to the right account."""
    with reported():
        _show(call_service("ledger", "POST", f"/ledger/suspense/{transaction_id}/resolve",
                    {"target_account": account_number(account), "reason": reason}), as_json)


@app.command("restore-access")
def restore_access(
    login: Annotated[str, typer.Option(help="Account or contract number")],
    reason: Annotated[str, typer.Option(help="Why (kept with the operator's name)")],
    passport_series: Annotated[str, typer.Option(prompt=True, hide_input=True, help="Asked if not given")],
    passport_number: Annotated[str, typer.Option(prompt=True, hide_input=True, help="Asked if not given")],
    date_of_birth: Annotated[str, typer.Option(prompt=True, help="YYYY-MM-DD; asked if not given")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Support-assisted recovery: identity checks the passport data the caller gives and sends a
    new password by SMS. Passport data are asked for, not echoed, so they stay out of shell history."""
    with reported():
        _show(call_service("identity", "POST", "/identity/support/recoveries", {
            "login": login, "reason": reason, "passport_series": passport_series,
            "passport_number": passport_number, "date_of_birth": date_of_birth}), as_json)
