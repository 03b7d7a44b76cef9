"""Who may ask the ledger for what: a subscriber's request (``cabinet:<account>``) touches only
their own account and stays within the self-service limits, whichever door it came through;
anyone else is who the credentials of the door (or the command topic's access list) say."""

from __future__ import annotations

from billing_contracts.requesters import InvalidRequester, own_account

from ledger.domain.errors import CommandRefused, ErrorCode


def check_requester(requested_by: str, account: str) -> bool:
    """Refuse a subscriber's request for another account, or a malformed one; ``True`` when it is
    the subscriber's own request (the self-service limits apply), ``False`` for anyone else's."""
    try:
        own = own_account(requested_by)
    except InvalidRequester as exc:
        raise CommandRefused(ErrorCode.INVALID_REQUESTER, str(exc), field="requested_by") from None
    if own is None:
        return False
    if own != account:
        raise CommandRefused(ErrorCode.NOT_OWN_ACCOUNT,
                             f"a subscriber's request may touch only their own account, not {account}",
                             field="requested_by")
    return True
