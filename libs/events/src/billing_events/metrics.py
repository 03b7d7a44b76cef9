"""Prometheus metrics every service exposes, labelled by service so one registry serves all."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter(
    "billing_events_consumed_total", "Messages read from the broker", ["service", "event_type"]
)
EVENTS_HANDLED = Counter(
    "billing_events_handled_total", "Events applied to the service's state", ["service", "event_type"]
)
EVENTS_DUPLICATE = Counter(
    "billing_events_duplicate_total", "Redelivered events the inbox absorbed", ["service"]
)
CONFLICTING_DUPLICATES = Counter(
    "billing_conflicting_duplicates_total",
    "Requests repeated under a key already decided, with other content: refused, the first stands",
    ["service", "family"],
)
VIEW_EVENTS_NOT_NEWER = Counter(
    "billing_view_events_not_newer_total",
    "Events about an account no newer than the view the service keeps of it (account_version):"
    " ignored, nothing decided",
    ["service", "event_type"],
)
OPERATOR_REQUESTS = Counter(
    "billing_operator_requests_total",
    "Requests made with an operator's own token (each also logged as \"operator request\"), by outcome:"
    " accepted, or revoked (refused)",
    ["service", "operator", "outcome"],
)
TOKENS_REVOKED = Counter(
    "billing_tokens_revoked_total", "Revocations (of a token or of an operator) the service learnt", ["service"]
)
EVENTS_DEAD_LETTERED = Counter(
    "billing_events_dead_lettered_total", "Messages refused to the dead-letter topic, by refusal code",
    ["service", "event_type", "code"],
)
EVENTS_PUBLISHED = Counter(
    "billing_events_published_total", "Outbox rows published and acknowledged by the broker", ["service"]
)
BATCH_SECONDS = Histogram(
    "billing_batch_seconds",
    "Time to handle one consumed batch, commit included",
    ["service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HANDLER_SECONDS = Histogram(
    "billing_handler_seconds",
    "Time to apply one event (per-event handlers; batch handlers are timed by billing_batch_seconds)",
    ["service", "event_type"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
OUTBOX_BACKLOG = Gauge("billing_outbox_backlog", "Outbox rows not yet published", ["service"])
CONSUMER_LAG = Gauge(
    "billing_consumer_lag", "Messages behind the end of each partition", ["service", "topic", "partition"]
)
LEDGER_JOURNAL_TRANSACTIONS = Gauge("billing_ledger_journal_transactions", "Transactions in the ledger's journal")
LEDGER_POSTINGS = Gauge("billing_ledger_postings", "Postings in the ledger's journal")
PUBLISH_FAILURES = Counter(
    "billing_publish_failures_total",
    "Outbox publish rounds the broker failed (the batch is sent again) and rows it refused for good",
    ["service", "outcome"],
)
HTTP_REQUESTS = Counter(
    "billing_http_requests_total", "HTTP requests answered, by route template and status",
    ["service", "method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "billing_http_request_seconds", "Time to answer one HTTP request, by route template",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DB_CONNECTIONS_IN_USE = Gauge(
    "billing_db_connections_in_use", "Database connections checked out of the pool", ["service"]
)
DB_CONNECTIONS_WAITING = Gauge(
    "billing_db_connections_waiting", "Tasks waiting for a database connection (the pool is exhausted)", ["service"]
)
