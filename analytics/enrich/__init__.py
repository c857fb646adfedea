"""Per-event enrichment (SPEC §10): page, referrer, campaign, user agent, country.

Pure functions over what an event is stored with (``properties``,
``ip_address``, ``user_agent``), so the worker computes the same columns
before the insert that ``analytics enrich-events`` computes for older rows.
``enricher.Enricher`` is the per-batch entry point; its caches (per distinct
user agent, per IP prefix) make repeated traffic cheap.
"""
