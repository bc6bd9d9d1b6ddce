"""No criminal-justice data or secrets in application logs (DESIGN §7, issue 8).

Every known test subject goes through the real switch; then the daemon's and the
simulators' log output is searched for any name, DOB, plate, VIN, OLN, serial or link
secret. They belong in the audit trail only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.integration.gateway_harness import NETWORKS, Gateway, start_gateway

pytestmark = pytest.mark.integration

SUBJECTS = [
    ("person", {"name": "DOE, JOHN A", "dob": "1980-01-01"}),
    ("person", {"name": "ROE, JANE", "dob": "1975-05-05"}),
    ("person", {"name": "CLEAN, CARL", "dob": "1990-01-01"}),
    ("driver", {"oln": "R100200300", "oln_state": "MO"}),
    ("vehicle", {"plate": "ABC1234", "plate_state": "MO"}),
    ("vehicle", {"vin": "1HGCM82633A004352"}),
    ("registration", {"plate": "ABC1234", "plate_state": "MO"}),
    ("gun", {"serial": "G1234567"}),
    ("article", {"serial": "LT0000042", "article_type": "LAPTOP"}),
]
FORBIDDEN = [
    "DOE", "JOHN A", "ROE, JANE", "CLEAN, CARL", "1980-01-01", "19800101", "1975-05-05",
    "19750505", "1990-01-01", "R100200300", "ABC1234", "1HGCM82633A004352", "G1234567",
    "LT0000042", "demo-only-change-me",
]  # fmt: skip


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    gateway = start_gateway()
    try:
        gateway.links_up()
        yield gateway
    finally:
        gateway.close()


def test_logs_carry_no_cji_or_secrets(gw: Gateway) -> None:
    """After every known subject ran (hits and no records), no identifier appears in the
    JSON log lines of switchd or the simulators, and every line is JSON."""
    client = gw.client("DISPATCH1")
    for subject, fields in SUBJECTS:
        result = client.call(
            "POST", "/v1/inquiries?wait=20", {"subject": subject, "fields": fields}
        )
        assert result["status"] == "complete"
    assert gw.stop_switchd() == 0
    secrets = [(gw.root / "var" / "secrets" / f"{n}.secret").read_text().strip() for n in NETWORKS]
    for name in ("switchd.log", "sim.log"):
        text = (gw.root / name).read_text(errors="replace")
        assert text.strip(), f"{name} is empty: the test would prove nothing"
        for needle in FORBIDDEN + secrets:
            assert needle not in text, f"{needle!r} found in {name}"
        for line in text.splitlines():
            if line.strip():
                json.loads(line)  # structured logs only, no stray prints
