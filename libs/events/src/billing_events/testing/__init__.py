"""Test helpers for the suite and for teams that consume its events."""

PATIENCE = 120.0
"""How long a test waits for a condition by default: a deadline, not a duration. A condition that
holds returns at once, so only a broken run pays it; a loaded CI machine (two cores, the suite's
own services on them) must never be what fails a test."""
