"""A seeded simulation of the whole suite against a reference model: ``python -m simulation``
(docs/architecture.md, "The seeded simulation")."""
