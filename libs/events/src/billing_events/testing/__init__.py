"""Test helpers for the suite and for teams that consume its events."""
