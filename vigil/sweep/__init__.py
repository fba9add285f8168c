"""The uptime sweep's core, as plain functions a test can call directly; `flows/sweep.py`
only sequences them as Prefect tasks.

- `checks`: what each probe saw, judged (`MonitorCheck`), and which failures to confirm;
- `decision`: the one decision point (`SweepDecision`), states and fallbacks;
- `records`: check rows, rollups, states and incidents in the store, and incidents read back;
- `handoff`: checks handed from a shard's run to the run that decides;
- `presentation`: the run's state and message, its summary, the table artifact.

The state machine and the alert plan are `vigil.monitoring`; maintenance windows
`vigil.maintenance`; conditions `vigil.conditions`.
"""
