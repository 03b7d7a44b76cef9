"""The ledger database's history: run by `billing migrate`, `python -m ledger migrate` and at start."""

from billing_events.migrations import run_environment
from ledger import store

run_environment(store.metadata)
