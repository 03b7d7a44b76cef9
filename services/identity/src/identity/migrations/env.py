"""The identity database's history: run by `billing migrate`, `python -m identity migrate` and at start."""

from billing_events.migrations import run_environment
from identity import store

run_environment(store.metadata)
