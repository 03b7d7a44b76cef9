"""Moved to the contracts package: ``billing_events.catalog`` (and each of its modules) is
:mod:`billing_contracts.catalog` itself, so every event class exists once."""

import sys

from billing_contracts import catalog
from billing_contracts.catalog import common, identity, ledger, notifier, payments, tariff

for _module in (common, identity, ledger, notifier, payments, tariff):
    sys.modules[f"{__name__}.{_module.__name__.rsplit('.', 1)[1]}"] = _module
sys.modules[__name__] = catalog
