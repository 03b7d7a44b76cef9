"""The contracts package, as a consuming team gets it: built into a wheel, installed alone into
a fresh virtual environment (pydantic its only dependency), and reading a recorded event."""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECORDED = Path(__file__).parent / "recorded" / "ChargeApplied.v1.option.json"
UV = shutil.which("uv") or str(Path.home() / ".local/bin/uv")
PYDANTIC = ("pydantic", "pydantic-core", "annotated-types", "typing-extensions", "typing-inspection")
RUNTIME = {"billing-events", "fastapi", "sqlalchemy", "aiokafka", "faststream", "uuid6", "structlog"}

READER = """
import importlib.metadata as metadata, json, sys
from pathlib import Path
from billing_contracts.envelope import decode, is_current
from billing_contracts import contracts

envelope = decode(Path(sys.argv[1]).read_bytes())
installed = sorted(d.metadata["Name"].lower() for d in metadata.distributions())
print(json.dumps({
    "type": type(envelope.payload).__name__, "version": envelope.schema_version,
    "charged_for": envelope.payload.charged_for.code, "amount": str(envelope.payload.amount),
    "current": is_current(envelope), "schemas": len(list(contracts.SCHEMA_DIR.glob("*.json"))),
    "requires": metadata.requires("billing-contracts"), "installed": installed,
    "modules": sorted(m for m in sys.modules if m.split(".")[0] in {"billing_events", "uuid6", "sqlalchemy"}),
}))
"""


def test_the_contracts_package_installs_alone_and_reads_an_event(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if name != "VIRTUAL_ENV"}
    run = lambda *args: subprocess.run(args, check=True, capture_output=True, text=True, env=env, cwd=tmp_path)  # noqa: E731
    run(UV, "build", str(ROOT / "libs/contracts"), "--wheel", "--out-dir", str(tmp_path / "dist"))
    [wheel] = (tmp_path / "dist").glob("billing_contracts-*.whl")
    run(UV, "venv", "--python", sys.executable, str(tmp_path / "venv"))
    python = tmp_path / "venv" / "bin" / "python"
    # pydantic at the versions the suite is locked to (the uv cache serves them; else the index)
    pins = tmp_path / "constraints.txt"
    pins.write_text("".join(f"{name}=={metadata.version(name)}\n" for name in PYDANTIC))
    run(UV, "pip", "install", "--python", str(python), str(wheel), "--constraint", str(pins))

    seen = json.loads(run(str(python), "-c", READER, str(RECORDED)).stdout)

    assert seen["requires"] == ["pydantic>=2.9"]
    assert "billing-contracts" in seen["installed"] and "pydantic" in seen["installed"]
    assert RUNTIME.isdisjoint(seen["installed"]), seen["installed"]
    assert seen["modules"] == []
    assert (seen["type"], seen["version"], seen["charged_for"], seen["amount"], seen["current"]) == (
        "ChargeApplied", 2, "antivirus", "3.33 RUB", True)
    assert seen["schemas"] == len(list((ROOT / "libs/contracts/src/billing_contracts/schemas").glob("*.json")))
