"""The identity service's commands: one async function of (context, command) each.

Every command validates its input first (an invalid command raises :class:`InvalidCommand`
with one error per field and changes nothing), then opens one transaction: it loads the
account (locked on PostgreSQL, so one command per account runs at a time), asks the domain,
writes the state change and stages the outgoing events in the outbox, and wakes the relay
after the commit. A refusal that must still be remembered (a failed login, a wrong code) is
committed first and raised after.

Secrets never travel in clear: passwords and codes go out in :class:`PasswordIssued` sealed for
the notifier; contact details go out in :class:`SubscriberRegistered` sealed the same way,
beside masked forms. Passport data never leaves this service. Slow hashes run in a worker
thread (:class:`identity.context.IdentityContext`).

Asking for a password never takes one away: a password sent on request waits beside the
current one (:mod:`identity.domain.pending`) until it is first used. The requests anyone can
make (a password by SMS, a reset code) take a client ``source`` address: they are throttled
per address and per account, do the same slow hashing whatever they find, and every one is
written to the audit (``store.audit``) and counted with what really came of it, since the
public answer does not say.

The commands live by concern (:mod:`.registration`, :mod:`.login`, :mod:`.recovery`,
:mod:`.revocation`) over the
steps they share (:mod:`.steps`); their models are in :mod:`identity.commands`.
"""

from identity.service.login import login
from identity.service.recovery import (
    recover_by_support,
    redeem_reset_code,
    reissue_password_by_sms,
    request_reset_code,
)
from identity.service.registration import register, register_self
from identity.service.revocation import revoke

__all__ = [
    "login",
    "recover_by_support",
    "redeem_reset_code",
    "register",
    "register_self",
    "reissue_password_by_sms",
    "request_reset_code",
    "revoke",
]
