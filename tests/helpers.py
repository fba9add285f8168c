"""Small helpers the duty tests share: a config file in tmp_path and a real flow run."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from vigil.runtime import summary_of


def write_config(tmp_path: Path, body: str, *, hook: str | None = None) -> Path:
    """A config file with a SQLite store in tmp_path and, given `hook`, every severity
    routed to a webhook channel at that URL."""
    text = f"store:\n  url: sqlite:///{tmp_path / 'vigil.db'}\n"
    if hook:
        text += (
            f"channels:\n  hook: {{type: webhook, url: '{hook}'}}\n"
            "routes: {critical: [hook], high: [hook], medium: [hook], low: [hook]}\n"
        )
    path = tmp_path / "vigil.yaml"
    path.write_text(text + textwrap.dedent(body))
    return path


def run(flow: Any, **parameters: Any) -> tuple[Any, Any]:
    """Run a flow for real; return (final state, summary)."""
    state = flow(**parameters, return_state=True)
    return state, summary_of(state)


def latest_artifact_data(key: str) -> Any:
    """The data of the newest artifact with this key, read through the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_latest_artifacts(
            artifact_filter=ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=[key]))
        )
    assert found, f"no artifact {key!r}"
    return found[0].data


def table_artifact(key: str) -> list[dict[str, Any]]:
    """The rows of the newest table artifact with this key."""
    data = latest_artifact_data(key)
    rows = json.loads(data) if isinstance(data, str) else data
    assert isinstance(rows, list)
    return rows


def markdown_artifact(key: str) -> str:
    """The text of the newest markdown artifact with this key."""
    return str(latest_artifact_data(key))
