"""Moved to the contracts package: ``billing_events.contracts`` is :mod:`billing_contracts.contracts` itself."""

import sys

from billing_contracts import contracts

sys.modules[__name__] = contracts
