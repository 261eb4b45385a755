"""Telemetry: samples of a running job's CPU, memory and GPUs (NVML) appended to its series,
and signed webhooks told of job, workflow and schedule events. Both only listen to the core."""
