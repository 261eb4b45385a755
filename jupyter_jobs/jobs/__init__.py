"""The job core: the service every face calls, the queue, the runner (one job's life), the
host-wide GPU pool, retention. It knows no feature: features get the narrow `JobCore` of
`plugins` (submit, cancel, read, release held jobs), subscribe to its job events, and add
small policies (why a job must wait, what it depends on); `app` wires them in."""
