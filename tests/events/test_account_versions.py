"""The "only newer" rule a view applies to an account's events (billing_contracts.versions)."""

from __future__ import annotations

import pytest

from billing_contracts.versions import is_newer


@pytest.mark.parametrize(("incoming", "held", "newer"), [
    (1, None, True),      # a view with no version yet takes the first versioned event
    (None, None, True),   # ... and, as before versions, an unversioned one
    (8, 7, True),
    (7, 7, False),        # the same state delivered again
    (6, 7, False),        # an older state delivered again
    (None, 7, False),     # published before versions: never newer than a versioned view
])
def test_an_event_is_applied_only_if_newer_than_the_view(incoming: int | None, held: int | None, newer: bool) -> None:
    assert is_newer(incoming, held) is newer
