"""The notifier's pure rules: what to tell whom, the low-balance alarm, the retry policy.

No I/O here: opening sealed texts and reaching gateways are ports (:mod:`notifier.domain.ports`)
the shell implements; the service layer loads the profile and the alarm, calls :func:`decide`,
and stores the intents it returns. Every refusal is a :class:`NotifierError`.
"""

from notifier.domain.alarm import LowBalanceAlarm, spendable
from notifier.domain.errors import ErrorCode, NotifierError
from notifier.domain.notices import (
    Decision,
    MessageIntent,
    NoticeContext,
    decide,
    notice,
    password_notice,
)
from notifier.domain.ports import Channel, Unsealer
from notifier.domain.profile import (
    Contact,
    Destination,
    IssuedSecret,
    SubscriberProfile,
    profile_from_registration,
)
from notifier.domain.retry import RandomSource, RetryPolicy
from notifier.domain.templates import PASSWORD_TEMPLATES, Message, TemplateKey

__all__ = [
    "PASSWORD_TEMPLATES",
    "Channel",
    "Contact",
    "Decision",
    "Destination",
    "ErrorCode",
    "IssuedSecret",
    "LowBalanceAlarm",
    "Message",
    "MessageIntent",
    "NoticeContext",
    "NotifierError",
    "RandomSource",
    "RetryPolicy",
    "SubscriberProfile",
    "TemplateKey",
    "Unsealer",
    "decide",
    "notice",
    "password_notice",
    "profile_from_registration",
    "spendable",
]
