"""The boundary per medium: hostile outside text (markup, markdown links and images, bare
URLs, Slack mentions, terminal escapes, invalid bytes) comes out inert in each, and secrets
come out masked. Markdown is checked by rendering it (markdown-it, CommonMark + tables) and
looking for what must not be in the HTML; a check is first seen failing on the raw text."""

from __future__ import annotations

import re

import pytest
from markdown_it import MarkdownIt

from vigil import boundary
from vigil.config import parse_config

HOSTILE = [
    "[click me](https://evil.example/steal)",
    "![pixel](https://evil.example/track.png)",
    "<script>alert(1)</script><img src=x onerror=alert(2)>",
    "**URGENT** _rollback_ `rm -rf /` ~~ok~~",
    "| a | b |\n|---|---|\n| c | d |",
    "<https://evil.example/autolink>",
    "see https://evil.example/bare and www.evil.example",
    "\x1b]8;;https://evil.example\x1b\\innocent text\x1b]8;;\x1b\\",
    "\x1b[2J\x1b[H\x1b[31mscreen cleared\x1b[0m\x07\x08",
    "bad bytes: \udcff\ufffd and NUL \x00",
]
RENDER = MarkdownIt("commonmark").enable("table")


def live(html: str) -> list[str]:
    """What in rendered markdown is live or markup: links, images, raw HTML, emphasis."""
    return re.findall(r"<(?:a|img|script|strong|em|code|s|del|table)\b[^>]*>", html)


@pytest.mark.parametrize("text", HOSTILE)
def test_outside_text_in_markdown_stays_text(text: str) -> None:
    assert live(RENDER.render(f"observed: {boundary.markdown(text)}")) == []
    row = f"| monitor | {boundary.markdown_cell(text)} |\n|---|---|\n| x | y |\n"
    html = RENDER.render(row)
    assert html.count("<td>") == 2 and live(html) in ([], ["<table>"]), html


def test_the_check_sees_live_markdown_on_raw_text() -> None:
    assert live(RENDER.render("observed: [click me](https://evil.example/steal)"))
    assert live(RENDER.render("observed: <script>x</script>"))


def test_a_block_of_outside_output_stays_in_its_fence() -> None:
    text = "line 1\n```\n# heading [x](https://e)\n````"
    html = RENDER.render(boundary.markdown_block(text))
    assert html.count("<pre>") == 1 and html.count("<code") == 1, html
    assert live(html.replace('<code class="language-text">', "")) == [], html


@pytest.mark.parametrize("text", HOSTILE)
def test_nothing_acts_on_a_terminal(text: str) -> None:
    shown = boundary.terminal(text)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", shown), repr(shown)


def test_escape_sequences_are_shown_not_obeyed() -> None:
    shown = boundary.terminal("\x1b[2Jcleared")
    assert shown == "\\x1b[2Jcleared"


def test_html_and_slack_carry_no_markup() -> None:
    assert "<script>" not in boundary.html("<script>x</script>")
    slack = boundary.slack("<!channel> please see <https://evil|here> & <@U123>")
    assert "<" not in slack and ">" not in slack and "&amp;" in slack


def test_secrets_are_masked_in_every_medium() -> None:
    parse_config('monitors: [{name: a, url: "https://ops:Pl4nted-PW@app.example.com/"}]')
    said = "login as ops:Pl4nted-PW and access_token=Tok3n-abc"
    for medium in (
        boundary.terminal,
        boundary.markdown,
        boundary.markdown_cell,
        boundary.markdown_block,
        boundary.html,
        boundary.slack,
        boundary.state_message,
    ):
        out = medium(said)
        assert "Pl4nted-PW" not in out and "Tok3n-abc" not in out, (medium.__name__, out)
    [row] = boundary.table_rows([{"observed": said, "latency_ms": 12, "ok": False}])
    assert "Pl4nted-PW" not in row["observed"] and row["latency_ms"] == 12 and row["ok"] is False


def test_every_table_row_is_inert_even_when_cells_repeat() -> None:
    """Repeated cells are made inert once (a sweep's table repeats most of them): every copy,
    and every column name, still comes out masked and inert."""
    parse_config('monitors: [{name: a, url: "https://ops:Pl4nted-PW@app.example.com/"}]')
    hostile = "ops:Pl4nted-PW \x1b[2J\x1b]8;;https://evil\x07"
    rows = [{hostile: hostile, "n": 1, "same": "UP"} for _ in range(3)]
    rows.append({hostile: "ok", "n": 2.5, "same": None})
    out = boundary.table_rows(rows)
    assert len(out) == 4
    for row in out:
        [key] = [k for k in row if k not in ("n", "same")]
        for text in (key, *[v for v in row.values() if isinstance(v, str)]):
            assert "Pl4nted-PW" not in text and "\x1b" not in text, text
    assert [r["n"] for r in out] == [1, 1, 1, 2.5] and out[3]["same"] is None
    assert out[0] == out[1] == out[2]


def test_state_messages_are_one_bounded_line() -> None:
    message = boundary.state_message("first\nsecond\r\n" + "x" * 5000)
    assert "\n" not in message and len(message) <= boundary.MAX_STATE_MESSAGE
