"""Daily backups as the operator thinks of them, one concept per module:

- `identity`: backup ids, where a backup's objects live, the run statuses, `BackupError`;
- `facts`: the database as of the dump's snapshot (what the manifest records);
- `manifest`: the JSON document written last, next to the dump;
- `verification`: what a stored backup must prove before anyone may rely on it;
- `retention`: which backups to keep (grandfather-father-son), as a pure plan;
- `catalog`: the backups, verifications and deletions in vigil's records store;
- `outcome`: one database's backup in one run, and how it is told (alerts, run state).

Everything here is plain code without outside connections; reading the live database
(`tasks.snapshot`), pg_dump (`tasks.pgdump`) and object storage (`tasks.storage`) live in
tasks/.
"""
