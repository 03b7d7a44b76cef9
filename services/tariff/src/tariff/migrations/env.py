"""The tariff database's history: run by `billing migrate`, `python -m tariff migrate` and at start."""

from billing_events.migrations import run_environment
from tariff import store

run_environment(store.metadata)
