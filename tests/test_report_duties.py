"""`vigil report`'s duty figures over 30 days, exact, on SQLite and PostgreSQL: backup runs,
failures, verification failures, size and duration trends; restore tests against the RTO;
drills' RTO/RPO; deploy verifications and rollbacks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.history import END, STANDARD, seeded_store
from vigil.report import Report, build_report


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def report(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Report]:
    server = request.getfixturevalue("pg_server_url") if request.param == "postgresql" else None
    folder = tmp_path_factory.mktemp("duties")
    with seeded_store(STANDARD, request.param, folder, server, monitors=False) as seeded:
        yield build_report(STANDARD.config(), seeded.store, END, days=30)


def test_backups_runs_failures_and_verification_failures(report: Report) -> None:
    main, billing = report.backups
    assert main.database == "main"
    # Nightly for 30 days; the one 7 days back failed, the one 10 days back failed to verify.
    assert (main.runs, main.failures, main.verification_failures) == (30, 1, 1)
    assert (billing.runs, billing.failures, billing.verification_failures) == (20, 0, 0)


def test_backup_size_and_duration_trends(report: Report) -> None:
    main = report.backups[0]
    # Backup i (of 40) weighs 1 GB + i x 10 MB and takes 60 + i seconds; i = 10..39 fall
    # in the 30 days, and i = 32 (7 days back) failed.
    assert main.last_size_bytes == 1_000_000_000 + 39 * 10_000_000
    first, last = 1_000_000_000 + 10 * 10_000_000, 1_000_000_000 + 39 * 10_000_000
    assert main.size_change_pct == pytest.approx(100 * (last - first) / first, rel=1e-12)
    good = [60 + i for i in range(10, 40) if i != 32]
    assert main.mean_duration_s == pytest.approx(sum(good) / len(good), rel=1e-12)
    assert main.last_duration_s == 99.0
    assert main.last_success_at == STANDARD.ago(0, hours=10)


def test_restore_tests_against_the_rto(report: Report) -> None:
    main = report.restore_tests[0]
    # In 30 days: 600s, 2000s (over the 30m RTO), a failed run, 650s.
    assert (main.runs, main.failures, main.rto_missed) == (4, 1, 1)
    assert main.rto_s == 1800
    assert (main.last_duration_s, main.max_duration_s) == (650, 2000)
    assert main.mean_duration_s == pytest.approx((600 + 2000 + 650) / 3, rel=1e-12)
    assert report.restore_tests[1].runs == 0 and report.restore_tests[1].max_duration_s is None


def test_drills_report_what_they_achieved(report: Report) -> None:
    [drill] = report.drills
    assert (drill.rto_s, drill.rpo_s, drill.rto_met, drill.rpo_met) == (2400, 90000, True, False)


def test_deploys_verifications_and_rollbacks(report: Report) -> None:
    [web] = report.deploys
    assert (web.verifications, web.passed, web.failed) == (5, 3, 2)
    assert (web.rolled_back, web.rollback_failures) == (2, 1)
