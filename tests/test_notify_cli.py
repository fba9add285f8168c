"""`vigil notify-test` end to end: real channels, per-channel report, records, no leaked secret."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from vigil.cli import app
from vigil.store import Notification, open_store

SECRET = "xyzzy-plugh-secret-token-4242"


def test_notify_test_reports_each_channel_and_records_it(
    tmp_path: Path, webhook_receiver, closed_port: int
) -> None:
    good = webhook_receiver.url_for(f"/hooks/{SECRET}")
    config = tmp_path / "vigil.yaml"
    db = tmp_path / "vigil.db"
    config.write_text(
        f"""
store: {{url: "sqlite:///{db}"}}
channels:
  good: {{type: webhook, url: "{good}"}}
  broken: {{type: webhook, url: "http://127.0.0.1:{closed_port}/hooks/{SECRET}", timeout: 1s}}
"""
    )
    result = CliRunner().invoke(app, ["notify-test", "-c", str(config), "--json"])
    assert result.exit_code == 1, result.output
    report = {d["channel"]: d for d in json.loads(result.stdout)}
    assert report["good"]["status"] == "sent"
    assert report["broken"]["status"] == "failed"
    assert webhook_receiver.json_bodies()[0]["title"] == "vigil test message"
    assert SECRET not in result.output

    with open_store(f"sqlite:///{db}") as store, store.session() as session:
        rows = session.scalars(select(Notification)).all()
        assert {(r.channel, r.status) for r in rows} == {("good", "sent"), ("broken", "failed")}
    for path in tmp_path.glob("vigil.db*"):
        assert SECRET.encode() not in path.read_bytes(), f"secret leaked into {path.name}"


def test_notify_test_one_unknown_channel_is_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "vigil.yaml"
    config.write_text("channels:\n  a: {type: webhook, url: 'http://127.0.0.1:9/x'}\n")
    result = CliRunner().invoke(app, ["notify-test", "nope", "-c", str(config)])
    assert result.exit_code == 2
    assert "no channel named 'nope'" in result.output
