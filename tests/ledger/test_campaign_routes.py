"""The bonus campaigns are the ledger's: a data file a setting names (validated at start, with
errors naming the file, the campaign and the field) and a public route listing those in force
or announced, with their channels, percent, caps and dates."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from billing_events.clock import ManualClock
from ledger.app import build_runtime
from ledger.domain import InvalidCampaign
from ledger.settings import DEFAULT_CAMPAIGNS, LedgerSettings

NOW = datetime(2027, 1, 15, 9, 0, tzinfo=UTC)
ENDED = {"name": "autumn", "basis_points": 500, "valid_from": "2026-09-01T00:00:00+03:00",
         "valid_to": "2026-12-01T00:00:00+03:00"}
SPRING = {"name": "spring 5 %", "basis_points": 500, "valid_from": "2027-03-01T00:00:00+03:00",
          "valid_to": "2027-06-01T00:00:00+03:00"}


async def _campaigns(make_settings: Any, file: Path | None) -> list[dict[str, Any]]:
    settings = await make_settings(LedgerSettings, database="sqlite", bonus_campaigns_file=file)
    runtime = build_runtime(settings, ManualClock(NOW))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.http_app), base_url="http://ledger") as http:
        answer = await http.get("/ledger/campaigns")  # no token: campaigns are public
    assert answer.status_code == 200
    return list(answer.json())


async def test_the_campaigns_in_force_and_announced_are_listed(make_settings: Any, tmp_path: Path) -> None:
    file = tmp_path / "campaigns.json"
    file.write_text(json.dumps([ENDED, *json.loads(DEFAULT_CAMPAIGNS.read_text()), SPRING]))
    listed = await _campaigns(make_settings, file)
    assert [(c["name"], c["active"]) for c in listed] == [
        ("20 % back on card and e-wallet payments", True), ("spring 5 %", False)]  # the ended one is left out
    card = listed[0]
    assert (card["percent_back"], card["basis_points"], card["channels"]) == ("20 %", 2000, ["card", "ewallet"])
    assert card["min_payment"] == {"minor": 50000, "currency": "RUB"}
    assert card["max_bonus"] == {"minor": 100000, "currency": "RUB"}
    assert datetime.fromisoformat(card["valid_to"]) == datetime(2027, 2, 28, 21, 0, tzinfo=UTC)
    assert (listed[1]["percent_back"], listed[1]["channels"], listed[1]["max_bonus"]) == ("5 %", [], None)
    assert await _campaigns(make_settings, None) == []  # the setting unset: no campaigns


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("[{", "not readable JSON"),
        ('{"name": "x"}', "the top level must be a list of campaigns"),
        (json.dumps([SPRING, {**SPRING, "basis_points": 0}]), "campaign 2: basis_points: basis_points must be in 1..10000"),
        (json.dumps([{**SPRING, "channels": ["pigeon"]}]), "campaign 1: channels.0: Input should be"),
        (json.dumps([{"name": "x"}]), "campaign 1: basis_points: Field required"),
        (None, "cannot be read: No such file or directory"),
    ],
)
async def test_a_broken_campaigns_file_stops_the_start_naming_what_is_wrong(
    make_settings: Any, tmp_path: Path, content: str | None, problem: str
) -> None:
    file = tmp_path / "campaigns.json"
    if content is not None:
        file.write_text(content)
    with pytest.raises(InvalidCampaign) as caught:
        await _campaigns(make_settings, file)
    assert caught.value.message.startswith(f"bonus campaigns {file}")
    assert problem in caught.value.message
