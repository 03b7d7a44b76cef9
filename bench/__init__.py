"""The suite's benchmarks: ``python -m bench [--quick] [--json PATH]`` (``make bench``).

Each figure is measured in the same run as its ceiling, on the same broker and PostgreSQL:
ingestion (against plain aiokafka), end-to-end latency, replay (against SQL ``SUM ... GROUP
BY``), a peer written with the ``eventsourcing`` library, and the ledger's peak memory.
"""
