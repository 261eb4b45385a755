"""The domain: pure types and rules, no I/O. What a user asks for (`spec`), what the service
reports (`job`, with `verdict()`), the errors every face reports alike (`errors`), the public
reply shapes of the REST API (`replies`) and instance types (named spec presets)."""
