"""Topics: one per owning service, keyed by account number.

Names here are the production names; a deployment (or a test) may put a prefix in front of
all of them through settings, which is how parallel test runs keep out of each other's way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

IDENTITY = "billing.identity"
PAYMENTS = "billing.payments"
LEDGER = "billing.ledger"
LEDGER_COMMANDS = "billing.ledger.commands"
LEDGER_SEALS = "billing.ledger.seals"
TARIFF = "billing.tariff"
NOTIFIER = "billing.notifier"
REPLAY = "billing.replay"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    owner: str
    description: str
    partitions: int = 12
    retention: timedelta | None = None  # None: kept forever (compacted archives live elsewhere)
    open_to: str | None = None
    """Who writes the topic when it is a door in from outside (payment channels, the ledger's
    callers): then any producer is admitted and only the event types are held to the catalog.
    None: the owner alone writes it, and consumers refuse envelopes from anyone else."""

    def admits(self, producer: str) -> bool:
        """May an envelope naming this ``producer`` be taken from the topic?"""
        return self.open_to is not None or producer == self.owner

    @property
    def writers(self) -> str:
        return self.open_to or f"{self.owner} only"

    @property
    def retention_ms(self) -> int:
        return -1 if self.retention is None else int(self.retention.total_seconds() * 1000)


KEY_RULE = (
    "The message key is the 12-digit personal account number (UTF-8); on `billing.ledger.seals`, which"
    " concerns the whole journal, it is the fixed key `journal`."
)

EVENT_TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(IDENTITY, "identity", "Subscribers registered, passwords issued, logins locked"),
    TopicSpec(PAYMENTS, "payments", "Payments arriving from the payment channels (ingress)",
              open_to="any payment channel (shops, terminals, card and bank gateways, e-wallets, the CLI; the"
                      " ledger for the card payments its cabinet door takes)"),
    TopicSpec(LEDGER, "ledger", "Every movement of money and the balances it leaves"),
    TopicSpec(LEDGER_COMMANDS, "ledger", "Requests to the ledger: transfers, bonus redemptions, payment type",
              open_to="the ledger's own doors (its HTTP API, for the web cabinet, call centre and operations);"
                      " the broker's ACLs keep every other writer off (deploy/kafka-acls.sh)"),
    TopicSpec(LEDGER_SEALS, "ledger", "The journal's chain head, published periodically: tamper evidence outside"
              " the ledger's database", partitions=1),
    TopicSpec(TARIFF, "tariff", "Subscriptions, daily charges, blocks and unblocks"),
    TopicSpec(NOTIFIER, "notifier", "What was told to whom, and what could not be delivered"),
    TopicSpec(REPLAY, "operations", "Earlier events published again on request, with their original ids",
              retention=timedelta(days=7), open_to="the ledger's replays (each event keeps its original producer)"),
)
_BY_NAME = {spec.name: spec for spec in EVENT_TOPICS}


def spec(name: str) -> TopicSpec:
    """The catalog's entry for a logical topic name (``KeyError`` for a name it does not list)."""
    return _BY_NAME[name]

INGRESS_TOPICS = (PAYMENTS,)
"""Topics written from outside the suite (the payment channels): no service's outbox holds what
they carry, so each service consuming one keeps the events it took (see
the runtime's ``billing_events.event_log.append_published``)."""

DEAD_LETTER_RETENTION = timedelta(days=30)


def dead_letter_topic(consumer: str) -> str:
    """Each consuming service owns the dead-letter topic of the messages it could not take."""
    return f"billing.{consumer}.dlq"


def dead_letter_spec(consumer: str) -> TopicSpec:
    return TopicSpec(
        dead_letter_topic(consumer),
        consumer,
        f"Messages the {consumer} service refused, with the reason and the original bytes",
        partitions=1,
        retention=DEAD_LETTER_RETENTION,
    )


@dataclass(frozen=True)
class TopicNames:
    """Resolves logical topic names to the deployment's real ones (an optional prefix)."""

    prefix: str = ""

    def __call__(self, name: str) -> str:
        return f"{self.prefix}{name}"
