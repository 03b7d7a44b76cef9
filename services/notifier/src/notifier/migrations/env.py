"""The notifier database's history: run by `billing migrate`, `python -m notifier migrate` and at start."""

from billing_events.migrations import run_environment
from notifier import store

run_environment(store.metadata)
