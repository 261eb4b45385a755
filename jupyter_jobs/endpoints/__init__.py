"""Endpoints: the ports a running job exposes, where they are (from the job's record and its
backend only) and whether they answer (readiness probes). The proxy that reaches them is a
face (`server.proxy`)."""
