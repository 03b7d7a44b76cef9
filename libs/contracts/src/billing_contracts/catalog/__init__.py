"""The catalog of event types, one module per owning service.

Importing this package registers every event type, so :func:`billing_contracts.envelope.decode`
knows them all.
"""

from billing_contracts.catalog import identity, ledger, notifier, payments, tariff

__all__ = ["identity", "ledger", "notifier", "payments", "tariff"]
