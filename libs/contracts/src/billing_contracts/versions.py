"""An account's version: how a consumer that keeps a view of another service's account state
tells a newer state from one it has already seen.

The producer numbers every state it announces of an account (``account_version``: greater with
each change of that account, never reused; the ledger counts the changes of the account it
journals). A consumer stores the version it applied with its view and applies an event only if
:func:`is_newer`: an old event delivered again (a consumer-group rewind, a broker refilled at
start, an inbox that forgot the event after its retention) then changes nothing and triggers
no decision.

Events published before the field existed carry no version. A view that holds none yet (it was
built before the upgrade, or is new) takes every event as before; once it has applied a
versioned event, an unversioned one is never newer than it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

AccountVersion = Annotated[
    int | None,
    Field(
        default=None,
        ge=1,
        description="The producer's number of this state of the account: greater with every change"
                    " of the account. A consumer keeping a view applies the event only if it is"
                    " greater than the version it holds (absent: published before versions existed;"
                    " applied only by a view that holds no version yet)",
    ),
]


def is_newer(incoming: int | None, held: int | None) -> bool:
    """Whether an event carrying ``incoming`` is newer than a view holding ``held``."""
    if held is None:
        return True
    return incoming is not None and incoming > held
