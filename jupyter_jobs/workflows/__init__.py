"""Workflows: specs with needs, matrices and outputs (`spec`), which jobs of a run may go now
as a pure function of their statuses (`dag`), and runs that record, release, skip, cancel and
rerun jobs through the job core's narrow interface (`runs`)."""
