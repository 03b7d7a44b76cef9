"""``billing up``: the embedded broker and the four services as separate processes.

Order matters because the embedded broker keeps events in memory: it starts first and stops
last, after every service has stopped consuming and drained its outbox.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.text import Text

from billing_cli.config import CABINET_PORT, CLOCK_FILE, DEFAULT_OPERATOR, DEFAULT_PORTS, OPERATOR_KEY_FILE, SUITE_FILE
from billing_events.keys import generate_token_keypair
from billing_events.embedded import EmbeddedBroker
from billing_events.sealing import generate_keypair
from billing_events.signing import generate_signing_key

SERVICES = ("ledger", "identity", "tariff", "notifier")
PUBLISHERS = (*SERVICES, "cli")
"""Who signs what it publishes: the services, and the CLI's ``billing pay`` (a payment channel)."""
DEV_SECRETS_FILE = "dev-secrets.json"
COLOURS = {"ledger": "green", "identity": "magenta", "tariff": "cyan", "notifier": "yellow", "broker": "blue",
           "cabinet": "bright_white"}
READY = {"cabinet": "cabinet: open "}
"""What a process prints once it serves (a service: ``service started``)."""
console = Console(stderr=True, highlight=False, soft_wrap=True)


def say(source: str, line: str) -> None:
    width = max(len(name) for name in COLOURS)
    console.print(Text(f"{source:<{width}} | ", style=COLOURS.get(source, "white")) + Text(line))


def _pump(name: str, stream: object, ready: threading.Event) -> None:
    for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
        line = raw.decode(errors="replace").rstrip()
        if READY.get(name, "service started") in line:
            ready.set()
        say(name, line)


def dev_secrets(data_dir: Path) -> dict[str, str]:
    """Keys for the embedded default, made once per data folder (production takes them from
    its secret store): the notifier's sealing key pair, identity's personal-data keys, the token
    key pair, the key of its operator (``operations``, whose private half is the CLI's default
    operator key file, the public half the services' operator key ring), and each publisher's
    envelope signing key with the keyring listing them all. A folder made before a key existed
    gets that key added."""
    path = data_dir / DEV_SECRETS_FILE
    kept = dict(json.loads(path.read_text())) if path.exists() else {}
    operator_key = data_dir / OPERATOR_KEY_FILE
    if "BILLING_OPERATOR_KEYS" not in kept or not operator_key.exists():
        operator_public, operator_private = generate_token_keypair()
        operator_key.unlink(missing_ok=True)
        operator_key.touch(mode=0o600)
        operator_key.write_text(operator_private + "\n")
        kept["BILLING_OPERATOR_KEYS"] = f"{DEFAULT_OPERATOR}={operator_public}"
    public, private = generate_keypair()
    token_public, token_private = generate_token_keypair()
    values = {
        "BILLING_NOTIFIER_PUBLIC_KEY": public,
        "BILLING_NOTIFIER_PRIVATE_KEY": private,
        "BILLING_PII_LOOKUP_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "BILLING_PII_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "BILLING_TOKEN_PUBLIC_KEYS": token_public,
        "BILLING_TOKEN_PRIVATE_KEY": token_private,
        **_signing_keys(kept),
        **kept,
    }
    if values != kept:
        path.write_text(json.dumps(values, indent=2))
        path.chmod(0o600)
    return values


def _signing_keys(kept: dict[str, str]) -> dict[str, str]:
    """Every publisher's signing key and the keyring (made together: a folder that has the
    keyring has every key it lists)."""
    if "BILLING_SIGNING_PUBLIC_KEYS" in kept:
        return {}
    keys = {name: generate_signing_key(name) for name in PUBLISHERS}
    return {"BILLING_SIGNING_PUBLIC_KEYS": ",".join(entry for entry, _ in keys.values()),
            **{f"BILLING_{name.upper()}_SIGNING_PRIVATE_KEY": private for name, (_, private) in keys.items()}}


def run_suite(
    data_dir: Path,
    services: Sequence[str] = SERVICES,
    bootstrap_servers: str | None = None,
    ports: dict[str, int] = DEFAULT_PORTS,
    cabinet: bool = True,
) -> int:
    """Start the broker (unless given), the services and, beside all four, the subscriber's web
    cabinet on BILLING_CABINET_PORT (default 8090); stop them on Ctrl-C or SIGTERM."""
    data_dir.mkdir(parents=True, exist_ok=True)
    broker: EmbeddedBroker | None = None
    if bootstrap_servers is None:
        broker = EmbeddedBroker(log_file=data_dir / "broker.log").start()
        bootstrap_servers = broker.bootstrap_servers
        say("broker", f"embedded broker ready at {bootstrap_servers} (memory only; log: {data_dir / 'broker.log'})")
    clock_file = (data_dir / CLOCK_FILE).resolve()  # kept across restarts: closed days stay closed
    env = {
        **dev_secrets(data_dir),
        **os.environ,
        "BILLING_KAFKA__BOOTSTRAP_SERVERS": bootstrap_servers,
        "BILLING_DATA_DIR": str(data_dir.resolve()),
        "BILLING_CLOCK_FILE": str(clock_file),  # the clock `billing clock` moves; never set in production
        "BILLING_KAFKA__CLOSED_NETWORK": "true",  # the embedded broker, on this machine's loopback
        "PYTHONUNBUFFERED": "1",
    }
    env.setdefault("BILLING_KAFKA__SESSION_TIMEOUT_MS", "6000")
    env.setdefault("BILLING_KAFKA__HEARTBEAT_INTERVAL_MS", "1000")
    (data_dir / SUITE_FILE).write_text(json.dumps({"bootstrap_servers": bootstrap_servers, "ports": ports,
                                                       "clock_file": str(clock_file)}))
    processes: dict[str, subprocess.Popen[bytes]] = {}
    readiness: dict[str, threading.Event] = {}
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    started = time.monotonic()
    commands = {name: ("-m", name, {"BILLING_HTTP_PORT": str(ports[name])}) for name in services}
    cabinet_port = int(os.environ.get("BILLING_CABINET_PORT", CABINET_PORT))
    if cabinet and set(services) == set(SERVICES):  # the cabinet needs every service
        commands["cabinet"] = ("-m", "billing_cabinet", {
            "BILLING_CABINET_PORT": str(cabinet_port), "BILLING_CABINET_CLOCK_FILE": str(clock_file),
            **{f"BILLING_CABINET_{name.upper()}_URL": f"http://127.0.0.1:{ports[name]}" for name in SERVICES}})
        ledger_flag, ledger_module, ledger_env = commands["ledger"]  # the acquirer's page sends the payer back here
        commands["ledger"] = (ledger_flag, ledger_module, {
            **ledger_env, "BILLING_LEDGER_CARD_RETURN_URL": f"http://127.0.0.1:{cabinet_port}/card-payments/{{intent_id}}"})
    try:
        for name, (flag, module, own_env) in commands.items():
            process = subprocess.Popen(
                [sys.executable, flag, module], env={**env, **own_env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches only us; we stop the services in order
            )
            processes[name] = process
            readiness[name] = threading.Event()
            threading.Thread(target=_pump, args=(name, process.stdout, readiness[name]), daemon=True).start()
        announced = False
        while not stopping.is_set():
            for name, process in processes.items():
                if process.poll() is not None:
                    say(name, f"exited with code {process.returncode}; stopping the suite")
                    stopping.set()
            if not announced and all(event.is_set() for event in readiness.values()):
                announced = True
                say("broker", f"all {len(services)} services up in {time.monotonic() - started:.1f}s"
                    f" (HTTP: {', '.join(f'{n} :{ports[n]}' for n in services)}); Ctrl-C stops them")
                if "cabinet" in processes:
                    say("cabinet", f"the subscriber's cabinet: open http://127.0.0.1:{cabinet_port}")
            stopping.wait(0.2)
    finally:
        for name, process in processes.items():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in processes.items():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                say(name, "did not stop in 30s; killing")
                process.kill()
            say(name, "stopped")
        if broker is not None:
            broker.stop()
            say("broker", "stopped")
    failed = [name for name, process in processes.items() if process.returncode not in (0, -signal.SIGTERM)]
    return 1 if failed else 0
