"""The composition root: the service's settings (`config`, traitlets) and the one place that
builds the job core, its backends and every feature, and wires them together (`compose`)."""
