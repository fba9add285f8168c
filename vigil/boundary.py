"""The one boundary between vigil and everything it publishes, per medium.

Every string vigil writes out passes through here on its way: secrets masked (`vigil.redact`
knows every secret of the config and the usual shapes of undeclared ones), and outside data
(target bodies and headers, names from databases and configs, process output) made inert
for the medium it lands in:

- terminal (every command's output): `terminal`; no escape sequence (colours, clear-screen,
  OSC 8 hyperlinks) or other control character of anyone else's acts;
- markdown artifacts and reports (Prefect UI, `--report` files): `markdown`,
  `markdown_cell`, `markdown_block`, `publish_markdown`; outside data makes no live link,
  image, HTML, emphasis or table break;
- table artifacts: `publish_table`; every cell redacted, on one line, bounded;
- run state messages: `state_message`; one line, redacted, bounded;
- HTML (status page, email, HTML report): `html`; Slack mrkdwn: `slack` (no `<!channel>`,
  no link);
- logs, vigil's and Prefect's: `vigil.logs` (every record, in the record factory);
- records: the store's column types.

Artifacts are created only through `publish_markdown`/`publish_table` (a test fails when a
module calls Prefect's artifact functions directly), so none skips the boundary.
"""

from __future__ import annotations

import html as _html
import re
from collections.abc import Mapping, Sequence
from typing import Any

from vigil.redact import redact, redact_data

# ESC-introduced sequences (CSI `ESC [ ... final`, OSC `ESC ] ... BEL|ST`, and two-byte
# escapes), then any other C0/C1 control character but newline and tab.
_ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, clear-screen
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: titles, hyperlinks
    r"|\x1b[@-Z\\-_]"  # two-byte escapes
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Inline markdown that could make outside text live or change the page: emphasis, code,
# links and images, HTML, table cells, strikethrough, and GFM's bare-URL autolinks.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~!])")
_AUTOLINK = re.compile(r"(?i)(://|\bwww\.)")
_SLACK_SPECIAL = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
MAX_CELL = 500
MAX_STATE_MESSAGE = 1000


def inert(text: Any) -> str:
    """`text` redacted, with escape sequences and control characters shown as `\\xNN`
    instead of acting (a body that clears the screen or hides a hyperlink stays text)."""
    out = _ESCAPE_SEQUENCE.sub(lambda m: _visible(m.group(0)), redact(text))
    return _CONTROL.sub(lambda m: _visible(m.group(0)), out)


def _visible(sequence: str) -> str:
    return "".join(f"\\x{ord(c):02x}" if _CONTROL.match(c) else c for c in sequence)


def terminal(text: Any) -> str:
    """For a terminal: redacted, no escape sequence of anyone else's."""
    return inert(text)


def markdown(text: Any) -> str:
    """Outside text inline in vigil's markdown, on one line: every character that could
    make it live is escaped, so `[x](https://evil)`, `![](...)`, `<script>`, `**shout**` or a
    bare `https://evil` show as typed, not as links, images, HTML or emphasis."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(inert(text).split()))
    return _AUTOLINK.sub(lambda m: m.group(0).replace(":", "\\:").replace(".", "\\."), escaped)


def markdown_block(text: Any) -> str:
    """Outside text of several lines (a process's output, a response body) as a fenced code
    block, where markdown means nothing; the fence is longer than any backtick run inside."""
    body = inert(text)
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{body}\n{fence}"


def markdown_cell(text: Any) -> str:
    """Outside text in a markdown table cell: `markdown`, bounded."""
    one_line = markdown(text)
    return one_line if len(one_line) <= MAX_CELL else one_line[: MAX_CELL - 1] + "…"


def html(text: Any) -> str:
    """For HTML (status page, email, HTML report)."""
    return _html.escape(inert(text), quote=True)


def slack(text: Any) -> str:
    """For Slack mrkdwn: `<!channel>`, `<https://x|y>` and `&` lose their meaning."""
    return "".join(_SLACK_SPECIAL.get(c, c) for c in inert(text))


def state_message(text: Any) -> str:
    """A run's state message (shown in the runs list): one line, redacted, bounded."""
    one_line = " ".join(inert(text).split())
    if len(one_line) <= MAX_STATE_MESSAGE:
        return one_line
    return one_line[: MAX_STATE_MESSAGE - 1] + "…"


def table_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows for a table artifact: every string cell redacted and inert, numbers as they are.

    Each distinct text is made inert once: a sweep's 1,000 rows repeat their column names
    and most of their cells (`UP`, `-`, ''), and each pass costs some 15 us of regexes."""
    done: dict[Any, Any] = {}

    def cell(value: Any) -> Any:
        if value is None or isinstance(value, bool | int | float):
            return value
        text = str(value)
        if text not in done:
            done[text] = _cell_text(text)
        return done[text]

    return [{cell(str(k)): cell(v) for k, v in row.items()} for row in rows]


def _cell_text(text: str) -> str:
    """One table cell: inert, on one line, bounded."""
    one_line = " ".join(inert(text).split())
    return one_line if len(one_line) <= MAX_CELL else one_line[: MAX_CELL - 1] + "…"


def publish_markdown(key: str, text: str, description: str | None = None) -> Any:
    """A markdown artifact. `text` is vigil's own markdown with outside data already passed
    through `markdown`/`markdown_cell`; the whole is redacted once more on its way out."""
    from prefect.artifacts import create_markdown_artifact

    return create_markdown_artifact(
        key=key,
        markdown=redact(text),
        description=state_message(description) if description else None,
    )


def publish_table(
    key: str, rows: Sequence[Mapping[str, Any]], description: str | None = None
) -> Any:
    """A table artifact, every cell through the boundary."""
    from prefect.artifacts import create_table_artifact

    return create_table_artifact(
        key=key,
        table=table_rows(rows),
        description=state_message(description) if description else None,
    )


def summary(data: Any) -> Any:
    """A run's returned summary (kept with its state, printed by `--json`): redacted."""
    return redact_data(data)
