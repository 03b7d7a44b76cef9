"""Moved to the contracts package: ``billing_events.refusal`` is :mod:`billing_contracts.refusal` itself."""

import sys

from billing_contracts import refusal

sys.modules[__name__] = refusal
