"""Moved to the contracts package: ``billing_events.money`` is :mod:`billing_contracts.money` itself."""

import sys

from billing_contracts import money

sys.modules[__name__] = money
