"""Moved to the contracts package: ``billing_events.envelope`` is :mod:`billing_contracts.envelope` itself."""

import sys

from billing_contracts import envelope

sys.modules[__name__] = envelope
