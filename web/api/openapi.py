"""The OpenAPI 3 document, built from the routes that describe themselves.

An endpoint is added with `spec.route(...)` in place of `bp.route(...)`: it is routed
and documented in one place, so the document cannot forget an endpoint. Later modules
(and plugins' API screens) add theirs the same way, and their schemas with
`spec.schema(...)`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint

OPENAPI_VERSION = "3.0.3"
PROBLEM_MEDIA_TYPE = "application/problem+json"

# Flask converter -> OpenAPI schema of the path parameter.
_CONVERTERS: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "int": {"type": "integer"},
    "uuid": {"type": "string", "format": "uuid"},
    "path": {"type": "string"},
}
_RULE_PARAM = re.compile(r"<(?:(?P<converter>[a-z]+):)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)>")

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem document.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "A URI naming the problem type."},
        "title": {"type": "string", "description": "The status' short description."},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "description": "What went wrong, for a person."},
        "errors": {
            "type": "object",
            "description": "On 422: each invalid field with its messages.",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
}


# --- Pieces the endpoint modules' declarations share ------------------------------

STRING: dict[str, Any] = {"type": "string"}
NULLABLE_STRING: dict[str, Any] = {"type": "string", "nullable": True}
DATE: dict[str, Any] = {"type": "string", "format": "date"}
# The shared problem+json response (registered in the document's components).
PROBLEM: dict[str, Any] = {"$ref": "#/components/responses/Problem"}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    """A request body's or response's `content` of JSON `schema`."""
    return {"content": {"application/json": {"schema": schema}}}


def ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A successful response answering JSON `schema`."""
    return {"description": description, **json_content(schema)}


def page(items: dict[str, Any]) -> dict[str, Any]:
    """A keyset page of `items`, as every list endpoint answers."""
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": items},
            "next_cursor": {
                **NULLABLE_STRING,
                "description": "Pass as `cursor` for the next page; null on the last.",
            },
        },
    }


@dataclass(frozen=True)
class Operation:
    path: str
    method: str
    operation_id: str
    summary: str
    responses: dict[str, Any]
    tags: tuple[str, ...] = ()
    description: str | None = None
    public: bool = False
    parameters: tuple[dict[str, Any], ...] = ()
    request_body: dict[str, Any] | None = None


def openapi_path(rule: str) -> tuple[str, tuple[dict[str, Any], ...]]:
    """`/jobs/<uuid:job_id>` -> (`/jobs/{job_id}`, its path parameter)."""
    parameters = tuple(
        {
            "name": m["name"],
            "in": "path",
            "required": True,
            "schema": _CONVERTERS.get(m["converter"] or "string", {"type": "string"}),
        }
        for m in _RULE_PARAM.finditer(rule)
    )
    return _RULE_PARAM.sub(lambda m: "{" + m["name"] + "}", rule), parameters


@dataclass
class ApiSpec:
    blueprint: Blueprint
    title: str
    version: str
    description: str = ""
    operations: list[Operation] = field(default_factory=list)
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)

    def schema(self, name: str, schema: dict[str, Any]) -> dict[str, str]:
        """Register a component schema; returns the `$ref` to use in responses."""
        self.schemas[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}

    def route(
        self,
        rule: str,
        method: str,
        *,
        summary: str,
        responses: dict[str, Any],
        tags: tuple[str, ...] = (),
        public: bool = False,
        request_body: dict[str, Any] | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Route `rule` on the blueprint and document it.

        `public` operations need no bearer token; all others do. Every operation can
        answer with a problem document, which the spec adds as its default response.
        """

        def register(view: Callable[..., Any]) -> Callable[..., Any]:
            self.blueprint.add_url_rule(rule, view_func=view, methods=[method])
            path, parameters = openapi_path(rule)
            self.operations.append(
                Operation(
                    path=path,
                    method=method.lower(),
                    operation_id=view.__name__,
                    summary=summary,
                    description=(view.__doc__ or "").strip() or None,
                    responses=responses,
                    tags=tags,
                    public=public,
                    parameters=parameters,
                    request_body=request_body,
                )
            )
            return view

        return register

    def document(self) -> dict[str, Any]:
        paths: dict[str, dict[str, Any]] = {}
        for op in self.operations:
            entry: dict[str, Any] = {
                "operationId": op.operation_id,
                "summary": op.summary,
                "responses": {
                    **op.responses,
                    "default": {"$ref": "#/components/responses/Problem"},
                },
            }
            if op.description:
                entry["description"] = op.description
            if op.tags:
                entry["tags"] = list(op.tags)
            if op.public:
                entry["security"] = []
            if op.parameters:
                entry["parameters"] = list(op.parameters)
            if op.request_body:
                entry["requestBody"] = op.request_body
            paths.setdefault(op.path, {})[op.method] = entry
        return {
            "openapi": OPENAPI_VERSION,
            "info": {"title": self.title, "version": self.version, "description": self.description},
            "servers": [{"url": self.blueprint.url_prefix or "/"}],
            "paths": paths,
            "security": [{"bearerAuth": []}],
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
                },
                "schemas": {"Problem": PROBLEM_SCHEMA, **self.schemas},
                "responses": {
                    "Problem": {
                        "description": "An error, described as RFC 9457 problem details.",
                        "content": {
                            PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
                        },
                    }
                },
            },
        }
