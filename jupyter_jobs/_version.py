"""The package's version (one place: the build, the OpenAPI document and `jupyter_jobs.__version__`)."""

__version__ = "0.1.0"
