"""Deploy verification in the manner of Argo Rollouts' analysis: classify every measurement,
count the classes separately, and let the limits decide. The core of the duty, pure where it
can be: `verdict` (the rules below), `history` (the records, the releases known to be good,
the refusals), `rollback` (what a rollback is asked, plans and did, and the choice of its
target), `report` (the run's alert, state, summary and artifacts). The outside world (the
probes, the process check, the rollback strategies) is in `tasks/deploy.py` and
`tasks/rollback/`; the runbook in `flows/deploy.py`. The rules, exactly as implemented:

Measurement. One measurement runs every configured check at the same time: the process
check (`process.command`, run by `/bin/sh`, exit 0 means the process runs), the health
check (GET `health.url`, judged by `health.conditions`) and one GET per URL in `pages`
(must answer 200; redirects are followed). Each check is

- Error: nothing answered. An HTTP request that timed out (the whole request is bounded by
  the check's timeout), was refused, or broke off (DNS, TLS, protocol); a process command
  that timed out, could not start, or exited 126 or 127 (the shell could not run it).
- Failed: it answered, and wrongly. A health condition was false, a page answered something
  other than 200, the process command exited with any other non-zero code.
- Inconclusive: the health endpoint answered `{"status": "degraded"}` and every condition
  that failed (if any) is about `[BODY]` (the same rule that makes a monitor DEGRADED).
- Successful: otherwise.

The measurement takes its worst check's class, in the order Failed, Error, Inconclusive,
Successful: an answer that was wrong is evidence against the release, a missing answer is
not yet.

Schedule. The first measurement starts at once; each next one starts `interval` after the
previous one started, or as soon as the previous one ends if it took longer than that. The
first measurement that starts at or after `window` has elapsed is the last.

Verdict, re-decided after every measurement from the counts so far:

1. failed, when Failed measurements > `failure_limit`;
2. failed, when consecutive Error measurements > `consecutive_error_limit` (any measurement
   that is not an Error resets the run);
3. failed, when `inconclusive_limit` is set and Inconclusive measurements > it (unset, the
   default, Inconclusive measurements are reported and never fail the release);
4. otherwise running, until the last measurement; then failed if not one measurement was
   Successful or Inconclusive (a release never seen answering well has not passed, whatever
   the limits allow), else passed.

A failure stops the verification at once; the rest of the window is not waited for.

Records. Each verification is a `deploy_verifications` row (`kind` deploy or rollback) with
every measurement in `deploy_measurements`. A release was *rolled back* when a deploy row
about it ended `rolled_back` or `rollback_failed`, or a rollback row names it as
`previous_release` (the release rolled back from). The releases known to be good, newest
first, are those whose newest verification passed and that were not rolled back afterwards.
A rollback whose steps failed (a checkout git refused, a failing restart) is recorded
`not_restored`: it never put its release in place, so it says nothing about that release
or about what runs now.
vigil never rolls back automatically a release that a rollback put in place: when the newest
records about the target all concern the release being verified and one of them is a
rollback to it, a failed verification alerts instead of rolling back again.
"""
