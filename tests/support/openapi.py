"""The edge's OpenAPI document as test targets: its operations, loaded by schemathesis."""

from __future__ import annotations

from typing import Any

from schemathesis import APIOperation, BaseSchema
from schemathesis.core.result import Ok

HTTP_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation the document describes."""
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method.upper() in HTTP_METHODS
    }


def loaded(schema: BaseSchema) -> list[APIOperation[Any, Any, Any, Any]]:
    """The schema's operations; an operation schemathesis cannot load fails the test."""
    found = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        found.append(result.ok())
    return found
