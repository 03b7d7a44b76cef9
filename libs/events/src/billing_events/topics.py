"""Moved to the contracts package: ``billing_events.topics`` is :mod:`billing_contracts.topics` itself."""

import sys

from billing_contracts import topics

sys.modules[__name__] = topics
