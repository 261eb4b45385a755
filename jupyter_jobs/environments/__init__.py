"""Environments: what a job's code runs with. Python environments built by uv from
requirements (`venvs`, shared by content hash, collected when unused) and workspaces taken
from git (`git`: a commit's files, never a hook run). Backends build on these; they know no job
service."""
