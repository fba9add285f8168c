"""Headless Chromium for the page tests: render a file, dump the DOM it built, screenshot it;
or drive a live app over DevTools until it has drawn what a test looks for (`render`).

Debian's `chromium` package; tests that need it skip with a clear message where it is not
installed. The DOM comes back as a small tree (stdlib html.parser), enough to find elements
by tag, class and attribute and read their text.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed (apt-get install -y chromium): "
    "the page is not rendered in a browser",
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = (390, 844)
DESKTOP = (1400, 2000)
VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="vigil-chromium-") as profile:
        return subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
            env=_env(profile),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )


def _env(profile: str) -> dict[str, str]:
    """Chromium keeps its own temporary folders (org.chromium.Chromium.*) under TMPDIR: put
    them inside the profile, which is removed afterwards, not in /tmp for good."""
    return {**os.environ, "TMPDIR": profile}


def dump_dom(page: Path) -> Node:
    """The DOM Chromium built from `page`, after load."""
    return parse(_run("--dump-dom", page.resolve().as_uri()).stdout)


def screenshot(page: Path, out: Path, size: tuple[int, int] = PHONE) -> Path:
    _run(f"--screenshot={out}", f"--window-size={size[0]},{size[1]}", page.resolve().as_uri())
    return out


def render(
    url: str,
    ready: str,
    timeout: float = 90.0,
    size: tuple[int, int] = DESKTOP,
    screenshot_to: Path | None = None,
) -> Node:
    """The DOM of a live page (a single-page app) once the JavaScript expression `ready` is
    true, polled over the DevTools protocol.

    `--dump-dom` snapshots right after load, before an app has fetched its data; with
    `--virtual-time-budget` it waits, but draws no frames, so lists that only render what is
    on screen (the Prefect UI's runs list) stay empty. With `screenshot_to`, what the page
    shows then is saved there as a PNG."""
    assert CHROMIUM is not None
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory(
        prefix="vigil-chromium-", ignore_cleanup_errors=True
    ) as profile:
        process = subprocess.Popen(
            [
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                f"--window-size={size[0]},{size[1]}",
                "about:blank",
            ],
            env=_env(profile),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its renderers too, so all of them can be stopped
        )
        try:
            with _DevTools(_page_endpoint(Path(profile), process, deadline)) as page:
                page.call("Page.navigate", url=url)
                while not page.evaluate(f"Boolean({ready})"):
                    if time.monotonic() > deadline:
                        text = str(page.evaluate("document.body ? document.body.innerText : ''"))
                        raise AssertionError(
                            f"{url}: `{ready}` still false after {timeout:.0f}s; the page "
                            f"shows: {' '.join(text.split())[:1500]}"
                        )
                    time.sleep(0.25)
                if screenshot_to is not None:
                    shot = page.call("Page.captureScreenshot", format="png")
                    screenshot_to.parent.mkdir(parents=True, exist_ok=True)
                    screenshot_to.write_bytes(base64.b64decode(shot["data"]))
                return parse(str(page.evaluate("document.documentElement.outerHTML")))
        finally:
            _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop Chromium and the helpers it started (its own process group)."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _page_endpoint(profile: Path, process: subprocess.Popen[bytes], deadline: float) -> str:
    """The DevTools WebSocket of Chromium's first tab (the port is in DevToolsActivePort)."""
    active = profile / "DevToolsActivePort"
    while not (active.exists() and active.read_text().strip()):
        if process.poll() is not None:
            raise AssertionError(f"chromium exited {process.returncode} at start")
        if time.monotonic() > deadline:
            raise AssertionError("chromium did not open its DevTools port")
        time.sleep(0.05)
    port = active.read_text().split()[0]
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with no_proxy.open(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
        targets = json.load(response)
    return str(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])


class _DevTools:
    """Just enough of the DevTools protocol: call a method, evaluate an expression."""

    def __init__(self, endpoint: str) -> None:
        self._endpoint = endpoint
        self._ids = itertools.count(1)

    def __enter__(self) -> _DevTools:
        from websockets.sync.client import connect

        self._socket = connect(self._endpoint, max_size=None, open_timeout=30, proxy=None)
        return self

    def __exit__(self, *exc: object) -> None:
        self._socket.close()

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self._ids)
        self._socket.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=30))
            if message.get("id") == number:  # events and other replies are not ours
                if "error" in message:
                    raise AssertionError(f"DevTools {method}: {message['error']}")
                return dict(message.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")


@dataclass
class Node:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.walk()

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        return [
            n
            for n in self.walk()
            if (tag is None or n.tag == tag)
            and (cls is None or cls in n.attrs.get("class", "").split())
            and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node:
        found = self.find_all(tag, cls, **attrs)
        assert found, f"no <{tag or '*'} class={cls} {attrs}> in the page"
        return found[0]

    @property
    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text for c in self.children]
        return " ".join(" ".join(parts).split())


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document")
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(markup: str) -> Node:
    builder = _Builder()
    builder.feed(markup)
    return builder.root
