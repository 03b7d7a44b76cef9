"""The subscriber's web cabinet."""
