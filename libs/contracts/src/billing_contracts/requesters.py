"""Who asked for a request (``requested_by`` on the ledger's commands, ``changed_by`` on what
they changed).

A subscriber's own request is ``cabinet:<account>``, the account their token opens; anyone else
(a service, an operator) is named by their credentials, e.g. ``operator:ivanova`` or ``call-centre``.
The HTTP doors write it from the caller's token; a request written onto the command topic says
it itself, so the ledger holds a ``cabinet`` requester to its own account and to the
self-service limits wherever the request came from.
"""

from __future__ import annotations

from billing_contracts.accounts import AccountNumber

SELF_SERVICE = "cabinet"
OPERATOR = "operator"
_SEPARATOR = ":"


class InvalidRequester(ValueError):
    """Claims to be a subscriber (``cabinet``) without naming a valid account of its own."""


def subscriber(account: str) -> str:
    """The requester of a subscriber's own request for ``account``."""
    return f"{SELF_SERVICE}{_SEPARATOR}{account}"


def operator(name: str) -> str:
    """The requester of an operator's command, made with the operator's own token."""
    return f"{OPERATOR}{_SEPARATOR}{name}"


def own_account(requested_by: str) -> AccountNumber | None:
    """The account a subscriber's request may touch; ``None`` when the requester is not a
    subscriber. Whatever starts like ``cabinet`` (in any case, around any spaces) is a subscriber's
    and must be exactly ``cabinet:<valid account>``: a variant never passes for an operator."""
    kind, _, account = requested_by.partition(_SEPARATOR)
    if kind.strip().lower() != SELF_SERVICE:
        return None
    if kind != SELF_SERVICE or not AccountNumber.is_valid(account):
        raise InvalidRequester(f"a subscriber's request is {SELF_SERVICE}{_SEPARATOR}<their 12-digit account number>")
    return AccountNumber(account)
