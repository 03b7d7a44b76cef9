"""What must hold once the suite is quiet, the most valuable first; :func:`check` raises
:class:`Broken` at the first that does not.

1. Every payment key has one fate, the model's: credited, parked, placed, or refused (dead-lettered).
2. The ledger's journal is sound: every posting sums to zero per currency, the chain holds, every
   projection equals its replay (``integrity.verify``; ``integrity.rebuild`` finds no drift).
3. Balances, suspense, charges, blocks and unblocks (with the moments they carry) are the model's.
4. The tariff's view of each balance is the ledger's, and its block state the model's.
5. Notices: exactly one per fact (a debt block or unblock, a voluntary block's start and end, a
   plan change, a password at registration, a password by SMS, a reset code).
6. Every event any service published decodes and validates and carries no personal secret (no
   piece of the registration form, no password or code the notifier sent); the ledger keeps each
   payment once.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from typing import TYPE_CHECKING, Any

import structlog

from sqlalchemy import select

from billing_contracts import topics
from billing_contracts.envelope import InvalidEvent, decode, is_current
from billing_events.schema import dead_letters, outbox
from billing_events.testing.file_channel import sent_messages
from ledger import integrity, store
from notifier import store as notifier_store
from tariff import service as tariff

if TYPE_CHECKING:
    from simulation.driver import Run

FATES = {"posted": "credited", "parked": "parked", "placed": "placed"}
"""The ledger's word for a payment's fate (its business key's record) -> the model's."""
SECRETS = (b"204-33-71", b"2043371", b"anna.petrova@", b"passport")
"""Pieces of the registration form (docs/examples/registration.json) no published event may carry:
the phone and e-mail travel sealed, the passport never leaves identity."""
LOGGED_SECRETS = SECRETS[:3]
"""What no log line may carry of the form (a line may name the word passport, not its data)."""
NOTICES = {"account_blocked_debt": "blocked", "account_unblocked": "unblocked",
           "voluntary_block_started": "voluntary_blocked", "voluntary_block_ended": "voluntary_unblocked",
           "tariff_changed": "tariff_changed", "password_initial": "password_initial",
           "password_sms_reissue": "password_sms", "password_reset_code": "reset_code"}
"""The notifier's template -> the model's name for the fact it tells."""
SENT_SECRET = re.compile(r"\d{12}: ([0-9A-Za-z]{6,})")
"""A password or code in a sent message: every template puts it after the account number."""


class LogTap:
    """Every line the services log during a run, as their own processors leave it (redacted),
    kept for the secret check whatever the level shown: lines under that level are dropped
    after they are kept."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._shown = logging.ERROR

    @contextmanager
    def tapping(self) -> Iterator[LogTap]:
        saved = structlog.get_config()
        shown = getattr(saved["wrapper_class"], "get_effective_level", None)
        self._shown = shown(None) if callable(shown) else logging.NOTSET  # not a filtering logger: all shown
        *before, renderer = saved["processors"]
        structlog.configure(processors=[*before, self._keep, renderer],
                            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
        try:
            yield self
        finally:
            structlog.configure(processors=saved["processors"], wrapper_class=saved["wrapper_class"])

    def _keep(self, _: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        self.lines.append(json.dumps(event_dict, default=str, ensure_ascii=False))
        if logging.getLevelName(str(event_dict.get("level", "info")).upper()) < self._shown:
            raise structlog.DropEvent
        return event_dict


class Broken(AssertionError):
    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"{what}: {detail}")
        self.what, self.detail = what, detail


def _differ(problems: list[Broken], what: str, expected: Any, found: Any) -> None:
    if expected != found:
        if isinstance(expected, dict) and isinstance(found, dict):
            keys = sorted({*expected, *found}, key=repr)
            shown = {repr(k): {"model": expected.get(k), "suite": found.get(k)}
                     for k in keys if expected.get(k) != found.get(k)}
        elif isinstance(expected, list) and isinstance(found, list):
            model_only, suite_only = Counter(map(repr, expected)), Counter(map(repr, found))
            shown = {"only the model's": sorted((model_only - suite_only).elements()),
                     "only the suite's": sorted((suite_only - model_only).elements())}
        else:
            shown = {"model": expected, "suite": found}
        problems.append(Broken(what, json.dumps(shown, default=str, ensure_ascii=False)[:4000]))


async def _outbox(runtime: Any) -> list[tuple[str, bytes]]:
    """Every event the service published, in order (its dead letters are reports, not events)."""
    async with runtime.db.connect() as conn:
        return [(row.topic, row.value) for row in
                await conn.execute(select(outbox.c.topic, outbox.c.value).order_by(outbox.c.id))
                if not row.topic.endswith(".dlq")]


def _per_account(blocks: list[tuple[str, str, Any]]) -> dict[str, list[tuple[str, Any]]]:
    grouped: dict[str, list[tuple[str, Any]]] = {}
    for label, what, at in blocks:
        grouped.setdefault(label, []).append((what, at))
    return grouped


async def check(run: Run, *, full: bool) -> None:
    suite, model = run.suite, run.model
    labels = {number: label for label, number in run.numbers.items()}
    ledger_runtime = suite.runtimes["ledger"]

    async with ledger_runtime.db.connect() as conn:
        records = (await conn.execute(select(store.idempotency_keys.c.key, store.idempotency_keys.c.fate)
                                      .where(store.idempotency_keys.c.family == "payment"))).all()
        refused = (await conn.execute(select(dead_letters.c.value))).scalars().all()
        accounts = {number: await store.account(conn, number) for number in
                    (await conn.execute(select(store.accounts.c.number))).scalars().all()}
        suspense = await store.open_suspense(conn)
        settled = {f"{row.channel}:{row.reference}" for row in await conn.execute(
            select(store.suspense.c.channel, store.suspense.c.reference).where(store.suspense.c.status != "open"))}

    # A parked payment an operator placed keeps its record; its suspense item says it was placed.
    found_fates = {key: "placed" if fate == "parked" and key in settled else FATES.get(fate, fate)
                   for key, fate in records}
    for key, event_id in run.first_ids.items():
        # A refused payment has no business key's record; its dead letter keeps its bytes.
        if key not in found_fates and any(event_id.encode() in value for value in refused):
            found_fates[key] = "refused"
    problems: list[Broken] = []
    vanished = sorted(key for key in model.fates() if key not in found_fates)
    if vanished:
        problems.append(Broken("no payment vanishes: each has a fate or a dead letter",
                               f"no record, no dead letter: {vanished[:10]}"))
    _differ(problems, "each payment has one fate, the model's",
            {key: fate for key, fate in model.fates().items() if key in found_fates}, found_fates)

    _differ(problems, "the ledger opens the accounts registered, no other",
            sorted(run.numbers.values()), sorted(accounts))
    _differ(problems, "balances (main, bonus) are the model's", model.balances(),
            {labels[n]: (s.main, s.bonus) for n, s in accounts.items() if n in labels})
    _differ(problems, "the open suspense is the model's", model.open_suspense(),
            {f"{i.channel.value}:{i.reference}": (i.amount, i.currency) for i in suspense})

    blocked, tariff_balances = {}, {}
    for label, number in run.numbers.items():
        subscription = await tariff.get_subscription(suite.contexts["tariff"], number)
        blocked[label] = subscription.debt_blocked
        tariff_balances[label] = subscription.balance.main.minor
    _differ(problems, "the tariff's view of each balance is the ledger's",
            {labels[n]: s.main for n, s in accounts.items() if n in labels}, tariff_balances)
    _differ(problems, "debt blocks are the model's", model.debt_blocked(), blocked)

    charges, blocks, voluntary = [], [], []
    for _, value in await _outbox(suite.runtimes["tariff"]):
        envelope = decode(value)
        if not is_current(envelope):
            continue
        payload = envelope.payload
        if envelope.event_type == "ChargeApplied":
            charges.append((labels.get(payload.account_number, payload.account_number), payload.billing_day,
                            payload.amount.minor))
        elif envelope.event_type in ("AccountBlocked", "AccountUnblocked"):
            what = "blocked" if envelope.event_type == "AccountBlocked" else "unblocked"
            at = payload.blocked_at if what == "blocked" else payload.unblocked_at
            (blocks if payload.reason.value == "debt" else voluntary).append(
                (labels.get(payload.account_number, payload.account_number), what, at))
    _differ(problems, "daily charges are the model's (day, amount; none while blocked)",
            sorted(model.charges), sorted(charges))
    _blocks_differ(problems, "debt", model.blocks, blocks)
    _blocks_differ(problems, "voluntary", model.voluntary, voluntary)

    async with suite.runtimes["notifier"].db.connect() as conn:
        sent = (await conn.execute(select(notifier_store.deliveries.c.account_number,
                                          notifier_store.deliveries.c.template))).all()
    notices = Counter((labels.get(number, number), NOTICES[template]) for number, template in sent
                      if template in NOTICES)
    _differ(problems, "one notice per fact", model.notices(), dict(notices))

    if full:
        await _whole_suite(run, problems)
    problems = [p for p in problems if not any(known in p.what for known in run.known)]
    if problems:
        raise Broken(" + ".join(p.what for p in problems), "\n  ".join(f"{p.what}: {p.detail}" for p in problems))


def _blocks_differ(problems: list[Broken], reason: str, expected: list[tuple[str, str, Any]],
                   found: list[tuple[str, str, Any]]) -> None:
    """Per account, in order (accounts closed in one batch may be told in any order among
    themselves): the same blocks and unblocks, then the same moments."""
    expected_blocks, found_blocks = _per_account(expected), _per_account(found)
    whats = [{label: [what for what, _ in seq] for label, seq in blocks.items()}
             for blocks in (expected_blocks, found_blocks)]
    _differ(problems, f"{reason} blocks and unblocks are the model's, each once", *whats)
    if whats[0] == whats[1]:
        _differ(problems, f"a {reason} block or unblock carries the moment it took effect (a closed day's end)",
                {label: [at.astimezone(UTC).isoformat() for _, at in seq] for label, seq in expected_blocks.items()},
                {label: [at.astimezone(UTC).isoformat() for _, at in seq] for label, seq in found_blocks.items()})


def _sent_secrets(run: Run) -> list[bytes]:
    """The passwords and codes the notifier sent (its file channel keeps them in clear)."""
    messages = sent_messages(run.suite.settings["notifier"].resolved_file_channel_path())
    return [found.group(1).encode() for message in messages if message["contains_secret"]
            for found in [SENT_SECRET.search(message["body"])] if found]


def _leaks(value: bytes, secrets: list[bytes], pieces: tuple[bytes, ...] = ()) -> list[str]:
    """The secrets in ``value``: a form's piece anywhere, a sent password or code as a word of
    its own (a six-digit code may be the digits of an id or an amount)."""
    leaked = [secret.decode() for secret in pieces or SECRETS if secret in value]
    return leaked + [secret.decode() for secret in secrets
                     if re.search(rb"(?<![0-9A-Za-z.:-])" + re.escape(secret) + rb"(?![0-9A-Za-z])", value)]


async def _whole_suite(run: Run, problems: list[Broken]) -> None:
    """The costlier checks: the ledger's journal, and every event any service published."""
    suite, ledger_context = run.suite, run.suite.contexts["ledger"]
    report = await integrity.verify(ledger_context)
    if report.findings or any(report.totals.values()):
        problems.append(Broken("the journal verifies clean and sums to zero per currency",
                               f"totals {report.totals}; findings {[str(f) for f in report.findings][:10]}"))
    rebuilt = await integrity.rebuild(ledger_context)
    if rebuilt.mismatches:
        problems.append(Broken("every projection equals the replay", str(rebuilt.mismatches[:10])))
    sent = _sent_secrets(run)
    logged, run.logs.lines[:] = list(run.logs.lines), []
    for line in logged:
        if leaked := _leaks(line.encode(), sent, LOGGED_SECRETS):
            problems.append(Broken("no secret in any log", f"{leaked} in {line[:300]}"))
            break
    for name, runtime in suite.runtimes.items():
        async with runtime.db.connect() as conn:
            for value in (await conn.execute(select(dead_letters.c.value))).scalars().all():
                if leaked := _leaks(value, sent):
                    problems.append(Broken("no secret in any topic", f"{name} dead-lettered {leaked}"))
        payments_kept: Counter[Any] = Counter()
        for topic, value in await _outbox(runtime):
            try:
                envelope = decode(value)
            except InvalidEvent as error:
                problems.append(Broken("every published event validates", f"{name} on {topic}: {error}"))
                continue
            if leaked := _leaks(value, sent):
                problems.append(Broken("no secret in any topic", f"{name} published {leaked} on {topic}"))
            if topic.endswith(topics.PAYMENTS):
                payments_kept[envelope.event_id] += 1
        twice = [str(event_id) for event_id, count in payments_kept.items() if count > 1]
        if twice:
            problems.append(Broken("the ledger keeps each payment it took once", f"kept more than once: {twice[:5]}"))
