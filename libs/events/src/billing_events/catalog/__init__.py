"""The catalog of event types, one module per owning service.

Importing this package registers every event type, so :func:`billing_events.envelope.decode`
knows them all.
"""

from billing_events.catalog import identity, ledger, notifier, payments, tariff

__all__ = ["identity", "ledger", "notifier", "payments", "tariff"]
