"""The cabinet's settings: where the four services answer, where the cabinet listens, and how its
session cookie is kept. Environment variables ``BILLING_CABINET_<NAME>`` set them."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORT = 8090
MIN_SECRET_LENGTH = 32
"""Characters of a session secret outside development: 128 bits and more, written in hex or base64."""
"""`make run` serves the cabinet here, beside the services' 8101-8104."""


class CabinetSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BILLING_CABINET_", extra="ignore")

    environment: Literal["development", "production"] = Field(
        default="development", description="production: the cookie is Secure and a session secret is required")
    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    identity_url: str = "http://127.0.0.1:8102"
    ledger_url: str = "http://127.0.0.1:8101"
    tariff_url: str = "http://127.0.0.1:8103"
    notifier_url: str = "http://127.0.0.1:8104"
    session_secret: SecretStr | None = Field(
        default=None, description="Signs the session cookie; unset in development: a new one at each start"
                                  " (everyone signs in again after a restart)")
    refresh_after_seconds: float = Field(
        default=600, ge=0, description="An access token this old (it lasts 15 minutes) is traded for the next one"
                                       " before the page's calls")
    time_zone: str = Field(default="Europe/Moscow", description="Where billing days are counted: a statement"
                                                                " period's days start at midnight here")
    service_timeout_seconds: float = 10.0
    log_format: Literal["console", "json"] | None = Field(
        default=None, description="console (readable in a terminal) or json; default: json in production")
    catalog_cache_seconds: float = Field(
        default=60.0, ge=0, description="How long the tariff's public catalog pages are kept (0: asked every time)")
    ledger_public_url: str | None = Field(
        default=None, description="Where a browser reaches the ledger (its development payment page) when that is not"
                                  " ledger_url, e.g. a service name only the containers resolve; default: ledger_url")
    payment_page_origins: list[str] = Field(
        default_factory=list, description="The acquirer's payment page origins (https://pay.example): a top-up sends"
                                          " the browser there, so the policy's form-action allows them")
    clock_file: Path | None = Field(
        default=None, description="Development only: the suite's shared clock file (`billing up` names it, `billing"
                                  " clock` moves it), so the cabinet's billing day is the services'")

    @model_validator(mode="after")
    def _secret_outside_development(self) -> CabinetSettings:
        if self.clock_file is not None and self.environment != "development":
            raise ValueError("BILLING_CABINET_CLOCK_FILE is a development setting")
        if self.session_secret is None:
            if self.environment != "development":
                raise ValueError("BILLING_CABINET_SESSION_SECRET is required outside development")
            self.session_secret = SecretStr(secrets.token_urlsafe(32))
        elif self.environment != "development" and not re.fullmatch(
                rf"\S{{{MIN_SECRET_LENGTH},}}", self.session_secret.get_secret_value()):  # a placeholder has spaces
            raise ValueError(f"BILLING_CABINET_SESSION_SECRET needs at least {MIN_SECRET_LENGTH} characters and no"
                             " spaces (openssl rand -hex 32)")
        return self

    @property
    def browser_ledger_url(self) -> str:
        return self.ledger_public_url or self.ledger_url

    @property
    def json_logs(self) -> bool:
        return self.log_format == "json" or (self.log_format is None and self.environment == "production")

    @property
    def secure_cookie(self) -> bool:
        return self.environment != "development"

    @property
    def service_urls(self) -> dict[str, str]:
        return {"identity": self.identity_url, "ledger": self.ledger_url, "tariff": self.tariff_url,
                "notifier": self.notifier_url}

    @property
    def address(self) -> str:
        return f"http://{self.host}:{self.port}"
