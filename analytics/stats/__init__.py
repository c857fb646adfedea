"""The stats API's vocabulary (SPEC §10): periods, filters, properties and metrics.

Pure parsing and validation, no I/O: ``web.stats`` reads the query string through
here, ``analytics.storage.stats`` answers the parsed question.
"""
