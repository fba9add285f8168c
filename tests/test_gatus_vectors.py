"""Gatus's own condition test vectors (tests/data/gatus_conditions.yaml) through vigil.

Every vector must give Gatus's verdict, or the one vigil's data file records with a reason;
a recorded difference that stops being one fails too, so the file stays true."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from vigil.conditions import ConditionError, Observation, evaluate, parse_condition

DATA = yaml.safe_load((Path(__file__).parent / "data" / "gatus_conditions.yaml").read_text())
EVALUATE: list[dict[str, Any]] = DATA["evaluate"]
VALIDATE: list[dict[str, Any]] = DATA["validate"]


def observation(result: dict[str, Any]) -> Observation:
    """The probe result Gatus's scenario was given, as vigil's Observation."""
    obs = Observation(
        status=result.get("status"),
        ip=result.get("ip"),
        connected=bool(result.get("connected", False)),
    )
    if "body" in result:
        obs.body = str(result["body"]).encode()
    if "duration_ms" in result:
        obs.response_time = result["duration_ms"] / 1000
    if "certificate_expiration_ms" in result:
        obs.certificate_expiration = timedelta(milliseconds=result["certificate_expiration_ms"])
    return obs


def vigil_verdict(vector: dict[str, Any]) -> bool | str:
    try:
        condition = parse_condition(vector["condition"])
    except ConditionError:
        return "refused"
    return evaluate(condition, observation(vector["result"])).ok


def test_the_source_is_named() -> None:
    assert DATA["source"]["repo"] == "TwiN/gatus"
    assert DATA["source"]["path"] == "config/endpoint/condition_test.go"
    assert len(DATA["source"]["commit"]) == 40
    assert len(EVALUATE) == 97 and len(VALIDATE) == 29


@pytest.mark.parametrize("vector", EVALUATE, ids=[v["name"] for v in EVALUATE])
def test_vigil_agrees_with_gatus(vector: dict[str, Any]) -> None:
    expected = vector.get("vigil", vector["gatus"])
    if "vigil" in vector:
        assert vector["vigil"] != vector["gatus"], "a recorded difference that is none"
        assert len(vector.get("reason", "")) > 40, "a difference needs its reason"
    assert vigil_verdict(vector) == expected


@pytest.mark.parametrize("vector", VALIDATE, ids=[v["condition"] for v in VALIDATE])
def test_vigil_accepts_what_gatus_accepts(vector: dict[str, Any]) -> None:
    expected = vector.get("vigil", vector["gatus"])
    if "vigil" in vector:
        assert vector["vigil"] != vector["gatus"] and vector.get("reason")
    try:
        parse_condition(vector["condition"])
        verdict = "valid"
    except ConditionError:
        verdict = "invalid"
    assert verdict == expected


def agreement() -> tuple[int, int]:
    """How many evaluate vectors give Gatus's own verdict (for reports: `python -m`)."""
    agreed = sum(vigil_verdict(v) == v["gatus"] for v in EVALUATE)
    return agreed, len(EVALUATE)


if __name__ == "__main__":
    agreed, total = agreement()
    print(f"vigil agrees with Gatus in {agreed} of {total} vectors")
