"""``python -m billing_cabinet``: serve the cabinet at the settings' address (default
http://127.0.0.1:8090), over the services of the settings' URLs."""

from __future__ import annotations

import logging

import uvicorn

from billing_cabinet.app import build
from billing_cabinet.settings import CabinetSettings


def main() -> None:
    settings = CabinetSettings()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(f"cabinet: open {settings.address}", flush=True)
    # uvicorn's access log writes each URL, which carries an account number: the app logs the
    # route's template instead.
    uvicorn.run(build(settings), host=settings.host, port=settings.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
