"""The omnirelay command, run as a real subprocess against both engines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from tests.pipeline import Pipeline


def _run(
    args: list[str], database_url: str, cwd: Path, **settings: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMNIRELAY_DATABASE_URL": database_url}
    env.update({f"OMNIRELAY_{name.upper()}": value for name, value in settings.items()})
    return subprocess.run(
        [sys.executable, "-m", "omnirelay", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_create_org_json_credentials_work(
    client: TestClient, database_url: str, tmp_path: Path
) -> None:
    r = _run(["admin", "create-org", "--name", "Cli Co", "--json"], database_url, tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert set(data) >= {"organization_id", "subscription_keys", "access_token"}
    assert set(data["subscription_keys"]) == {"primary", "secondary"}
    for key in data["subscription_keys"].values():
        me = client.get(
            "/api/me",
            headers={"Ocp-Apim-Subscription-Key": key, "Authorization": data["access_token"]},
        )
        assert me.status_code == 200, me.text
        assert me.json()["organization"]["id"] == data["organization_id"]
        assert me.json()["organization"]["name"] == "Cli Co"


def test_create_org_text_output(database_url: str, tmp_path: Path) -> None:
    r = _run(["admin", "create-org", "--name", "Text Co"], database_url, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "subscription key" in r.stdout and "access token" in r.stdout


def test_create_org_requires_name(database_url: str, tmp_path: Path) -> None:
    r = _run(["admin", "create-org"], database_url, tmp_path)
    assert r.returncode != 0 and "--name" in r.stderr


def test_admin_housekeeping_sweeps_now(database_url: str, tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    unused = media / ("0" * 32 + "-old.jpg")  # named as an upload; no message carries it
    unused.write_bytes(b"x")
    os.utime(unused, (0, 0))
    r = _run(["admin", "housekeeping"], database_url, tmp_path, media_dir=str(media))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "removed 0 expired idempotency keys, 1 unused uploads"
    assert not unused.exists()


def test_migrate_fresh_sqlite_and_demo_is_stable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'var' / 'fresh.db'}"
    r = _run(["migrate"], url, tmp_path)
    assert r.returncode == 0, r.stderr
    first = _run(["demo"], url, tmp_path)
    assert first.returncode == 0, first.stderr
    second = _run(["demo"], url, tmp_path)
    assert second.returncode == 0, second.stderr
    assert "access token" in first.stdout and first.stdout == second.stdout
    saved = json.loads((tmp_path / "var" / "demo-credentials.json").read_text())
    assert saved["access_token"] in first.stdout
    # The demo's call-back profile answers on /3.0 with the printed credentials.
    from omnirelay.app import create_app
    from omnirelay.config import Settings

    with TestClient(create_app(Settings(database_url=url))) as client:
        auth = (saved["account_sid"], saved["auth_token"])
        profiles = client.get("/3.0/profiles.json", auth=auth).json()["data"]["profiles"]
        assert [(p["name"], p["total_options"]) for p in profiles] == [("Support", 1)]
        # Its sandbox WhatsApp device answers with the printed device token, and the
        # printed account token lists it.
        assert saved["gateway_device_token"] in first.stdout
        device = client.post("/device", headers={"Authorization": saved["gateway_device_token"]})
        assert device.json()["name"] == "Demo device"
        listing = client.post(
            "/get-devices", headers={"Authorization": saved["gateway_account_token"]}
        ).json()
        assert listing["devices"] == 1 and listing["data"][0]["device"] == device.json()["device"]


def test_api_token_sends_and_tail_shows_the_status(
    client: TestClient, database_url: str, tmp_path: Path
) -> None:
    from omnirelay.db import Database

    r = _run(["admin", "create-org", "--name", "Tail Co", "--json"], database_url, tmp_path)
    data = json.loads(r.stdout)
    sent = client.post(
        "/v3/message/sendSMS",
        json={"sender": "SANDBOX", "phone": "79161234567", "text": "hi", "custom_id": "t1"},
        headers={"Authorization": f"Token {data['api_token']}"},
    )
    assert sent.status_code == 200, sent.text
    message_id = sent.json()["id"]
    db = Database(database_url)
    try:
        import omnirelay.tasks  # noqa: F401

        Pipeline(db).dispatcher.run_until_idle()  # dispatch: the sandbox reports later
    finally:
        db.dispose()
    out = _run(["tail", "--once", "--org", data["organization_id"]], database_url, tmp_path)
    assert out.returncode == 0, out.stderr
    [line] = [ln for ln in out.stdout.splitlines() if message_id in ln]
    assert " sent " in line and "sms" in line and "custom_id=t1" in line
    other = _run(["tail", "--once", "--org", "someone-else"], database_url, tmp_path)
    assert message_id not in other.stdout
