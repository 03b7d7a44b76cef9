"""``python -m billing_cabinet``: serve the cabinet at the settings' address (default
http://127.0.0.1:8090), over the services of the settings' URLs."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
import uvicorn

from billing_cabinet.app import build
from billing_cabinet.settings import CabinetSettings


def main() -> None:
    settings = CabinetSettings()
    configure_logging(settings.json_logs)
    print(f"cabinet: open {settings.address}", flush=True)
    # uvicorn's access log writes each URL, which carries an account number: the app logs the
    # route's template instead.
    uvicorn.run(build(settings, _shared_clock(settings.clock_file)), host=settings.host, port=settings.port,
                access_log=False, log_level="warning")


def configure_logging(json_logs: bool) -> None:
    """One line per record through structlog: JSON for a log collector, or readable in a
    terminal; a request's fields (method, route template, status, ms) as keys of their own."""
    renderer: Any = structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer(colors=False)
    handler = logging.StreamHandler()
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name,
                           structlog.stdlib.ExtraAdder(), structlog.processors.TimeStamper(fmt="iso", utc=True)],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def _shared_clock(path: Path | None) -> Callable[[], datetime] | None:
    """The time of `billing up`'s clock file: the wall clock moved by its ``offset_seconds``."""
    if path is None:
        return None

    def now() -> datetime:
        try:
            offset = float(json.loads(path.read_text())["offset_seconds"])
        except FileNotFoundError:
            offset = 0.0
        return datetime.now(UTC) + timedelta(seconds=offset)
    return now


if __name__ == "__main__":
    main()
