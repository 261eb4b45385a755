"""Schedules: a job spec fired on a cron expression in a time zone, once per due time (the job
recorded in the same transaction that moves the schedule on), submitted through the job core."""
