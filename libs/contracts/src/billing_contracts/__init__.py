"""The billing suite's published contract, for the services and for any team consuming their
topics: the envelope and :func:`decode` (:mod:`billing_contracts.envelope`), the event catalog
(:mod:`billing_contracts.catalog`, importing it registers every event type and upcaster), Money,
the topic names, the dead-letter message and the JSON Schemas (``billing_contracts/schemas``).
It depends on pydantic alone."""
