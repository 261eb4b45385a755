"""The job service as a Jupyter Server extension."""
