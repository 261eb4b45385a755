"""Storage: everything the service keeps on disk. The SQLite history (one connection on its
own thread; one row class per aggregate: jobs, workflow runs, schedules), append-only logs and
metric series read by offset, content-addressed workspace snapshots, artifacts and files
opened without following links. Knows the domain only."""
