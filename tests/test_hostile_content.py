"""Outside data is hostile, end to end: a real target answers with markup, Slack mrkdwn,
markdown links and images, terminal escapes, a huge header and invalid UTF-8, and every duty
that shows what it saw runs through the `vigil` command against a real Prefect server: the
sweep (terminal, run logs, table artifact, Slack and webhook alerts as received, status page
with its errors shown, HTML report, metrics), `vigil status`, and a deploy verification whose
health check reads that body (terminal, its markdown report). Each output is searched for
what must not get through; each search is first shown to find its needle in the raw text."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from markdown_it import MarkdownIt

from tests.deploy_helpers import LocalApp
from tests.fixtures.prefect_server import PrefectServer
from tests.fixtures.receivers import HttpReceiver, Reply
from tests.fixtures.targets import HttpTarget

pytestmark = pytest.mark.slow

VIGIL = str(Path(sys.executable).with_name("vigil"))
OUTPUTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "hostile-content"
HOSTILE = (
    "<script>alert(1)</script> [click](https://evil.example/x) ![px](https://evil.example/p.png)"
    " <!channel> <https://evil.example|click> *bold* \x1b]8;;https://evil.example\x1b\\link"
    "\x1b]8;;\x1b\\ \x1b[2J\x1b[31mred\x07"
)
BODY = json.dumps({"status": HOSTILE}).encode()
RAW = HOSTILE.encode() + b" \xff\xfe invalid UTF-8"
EVIL_HEADER = "\x1b[31m" + "h" * 6000


def controls(text: str) -> list[str]:
    """Control characters that would act on a terminal (all but newline and tab)."""
    return sorted(
        {repr(c) for c in text if (ord(c) < 32 and c not in "\n\t") or 127 <= ord(c) < 160}
    )


def live_markup(markdown: str) -> list[str]:
    """What a markdown renderer would make live out of the text."""
    rendered = MarkdownIt("commonmark").enable("table").render(markdown)
    return re.findall(r"<(?:a|img|script)\b[^>]*>", rendered)


def live_html(page: str) -> list[str]:
    return re.findall(r"<script>alert|href=\"https://evil|src=\"https://evil", page)


def live_slack(text: str) -> list[str]:
    return re.findall(r"<!channel>|<https://evil[^>]*>", text)


def test_the_searches_see_what_they_look_for() -> None:
    assert controls(HOSTILE) and live_markup(HOSTILE) and live_slack(HOSTILE)
    assert live_html(f'<p>{HOSTILE}</p><a href="https://evil.example">x</a>')


@pytest.fixture(scope="module")
def seen(prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("hostile")
    target, hook, slack = (
        HttpTarget(),
        HttpReceiver(Reply(200, "ok")),
        HttpReceiver(Reply(200, "ok")),
    )
    url = target.set("/h", status=500, body=BODY, headers={"X-Evil": EVIL_HEADER})
    raw = target.set("/raw", status=200, body=RAW)
    app = LocalApp.create(root / "app")
    app.add_release("r1", "good")
    app.add_release("r2", "good")
    app.deploy("r2")
    conditions = ["[STATUS] == 200", "[BODY].status == ok"]
    config = {
        "store": {"url": f"sqlite:///{root / 'vigil.db'}"},
        "channels": {
            "hook": {"type": "webhook", "url": hook.url_for("/hook")},
            "slack": {"type": "slack", "webhook_url": slack.url_for("/slack")},
        },
        "routes": {s: ["hook", "slack"] for s in ("critical", "high", "medium", "low")},
        "monitors": [
            {
                "name": "raw",
                "url": raw,
                "conditions": ["[BODY] == ok"],
                "public": True,
                "failure_threshold": 1,
            },
            {
                "name": "shop",
                "url": url,
                "conditions": conditions,
                "public": True,
                "failure_threshold": 1,
            },
        ],
        "deploys": {
            "web": app.target(
                health={"url": url, "conditions": conditions, "timeout": "1s"}, pages=[]
            )
        },
        "status_page": {"show_errors": True, "out": str(root / "site")},
    }
    path = root / "vigil.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = prefect_server.client_env(root / "home", NO_COLOR="1")
    outputs = {}
    for args in (
        ["sweep"],
        ["status"],
        ["status-page"],
        ["verify-deploy", "web", "--release", "r2"],
        ["report", "--html", str(root / "report.html")],
        ["metrics", "--textfile", str(root / "vigil.prom")],
    ):
        done = subprocess.run(
            [VIGIL, *args, "-c", str(path)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=300,
        )
        outputs[args[0]] = done.stdout + done.stderr
        OUTPUTS.mkdir(parents=True, exist_ok=True)
        (OUTPUTS / f"{args[0]}.txt").write_text(outputs[args[0]])
    with prefect_server.client() as client:
        artifacts = {a.key: (a.type, a.data) for a in client.read_artifacts(limit=50)}
    app.stop()
    for closing in (target, hook, slack):
        closing.close()
    return {
        "root": root,
        "outputs": outputs,
        "artifacts": artifacts,
        "hook": hook.requests,
        "slack": slack.requests,
    }


def test_the_target_was_seen(seen: dict[str, Any]) -> None:
    assert "shop" in seen["outputs"]["sweep"] and seen["hook"] and seen["slack"]
    assert "script" in seen["outputs"]["sweep"], "the body's text is shown, made inert"


def test_nothing_acts_on_the_terminal(seen: dict[str, Any]) -> None:
    found = {name: controls(text) for name, text in seen["outputs"].items() if controls(text)}
    assert found == {}, found
    assert "Traceback" not in "".join(seen["outputs"].values())


def test_artifacts_make_nothing_live(seen: dict[str, Any]) -> None:
    assert seen["artifacts"], "artifacts were published"
    kinds = {kind for kind, _ in seen["artifacts"].values()}
    assert {"markdown", "table"} <= kinds, kinds
    for key, (kind, data) in seen["artifacts"].items():
        text = data if isinstance(data, str) else json.dumps(data)
        assert not controls(text), key
        if kind == "markdown":  # the UI renders it; a table's cells are shown as text
            assert live_markup(data) == [], (key, live_markup(data))


def test_alerts_carry_no_mention_no_link_no_escape(seen: dict[str, Any]) -> None:
    for request in seen["slack"] + seen["hook"]:
        text = json.dumps(request.json())
        assert live_slack(request.text) == [], request.text
        assert "\\u001b" not in text and "\\u0007" not in text, text


def test_pages_and_files_are_inert(seen: dict[str, Any]) -> None:
    root: Path = seen["root"]
    pages = [*sorted((root / "site").glob("*.html")), root / "report.html"]
    assert pages[0].exists() and "shop" in pages[0].read_text()
    for page in pages:
        text = page.read_text(errors="replace")
        assert live_html(text) == [], page.name
        assert not controls(text), page.name
    metrics = (root / "vigil.prom").read_text()
    assert not controls(metrics)
