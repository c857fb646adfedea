"""The edge's OpenAPI document is valid OpenAPI 3.1 and names exactly the routes it serves.

Built without services: ``make_edge`` only registers routes (its pools open at start-up).
"""

from __future__ import annotations

import jsonschema_rs
import schemathesis
from schemathesis.specs.openapi import definitions

from analytics.settings import Settings
from tests.support.openapi import HTTP_METHODS, loaded, operations
from web.app import make_edge
from web.openapi import build_document


def test_document_is_valid_openapi_31() -> None:
    document = build_document()
    # The OpenAPI Initiative's 3.1 meta-schema, as schemathesis ships it.
    errors = [str(e) for e in definitions.OPENAPI_31_VALIDATOR.iter_errors(document)]
    assert errors == []
    assert document["openapi"].startswith("3.1.")
    for name, schema in document["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name
    # Every $ref resolves, and every operation is loadable as a test target.
    api = schemathesis.openapi.from_dict(document)
    assert len(loaded(api)) == len(operations(document))
    schemes = document["components"]["securitySchemes"]
    assert {k: (v["type"], v["scheme"]) for k, v in schemes.items()} == {
        "publicKey": ("http", "bearer"),
        "privateKey": ("http", "bearer"),
        "segmentWriteKey": ("http", "basic"),
    }


def test_every_route_is_documented() -> None:
    """Every /api/ route is documented and every documented operation is served.

    Pages for humans (``/dashboard/``) are not part of the API and stay out.
    """
    registered = {
        (route.method, route.resource.canonical)
        for route in make_edge(Settings()).router.routes()
        if route.resource is not None and route.method in HTTP_METHODS
    }
    documented = operations(build_document())
    assert {op for op in registered if op[1].startswith(("/api/", "/v1/"))} - documented == set()
    assert documented - registered == set()
