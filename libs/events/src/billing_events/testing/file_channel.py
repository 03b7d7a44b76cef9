"""What the notifier's development file channel sent: one JSON line per message, the address and
the body in clear outside production, so an end-to-end test (or the bench) reads the password a
registration's SMS brought and signs in with it, as the subscriber would."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SECRETS = {"sms": r"{account}\D{{1,5}}([A-Za-z2-9]{{12}})\b", "code": r"{account}\D{{1,5}}([0-9]{{6}})\b"}
"""A password (``sms``) or a one-time code (``code``) as every template writes it: after the account number."""


def sent_messages(path: Path) -> list[dict[str, Any]]:
    """Every message the channel wrote to ``path``, oldest first (none before the first)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sent_secrets(messages: Iterable[dict[str, Any]], kind: str, account: str) -> list[str]:
    """The passwords (``sms``) or one-time codes (``code``) ``messages`` brought to ``account``, oldest first."""
    found = [re.search(SECRETS[kind].format(account=account), message["body"])
             for message in messages if message["contains_secret"]]
    return [match.group(1) for match in found if match]
