"""The product lines the current tenant's plugins declare (core.hookspecs.ProductLine).

A line is code in a plugin; only the plugins the tenant enabled count, so a line of a
plugin another tenant installed for itself is unknown here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core import plugins
from core.hookspecs import ProductLine


@dataclass(frozen=True)
class DeclaredLine:
    plugin: str
    line: ProductLine


def declared() -> dict[str, DeclaredLine]:
    """Code -> line, for every line the tenant's enabled plugins declare. When two
    plugins claim one code, the first (pluggy's order) wins."""
    found: dict[str, DeclaredLine] = {}
    for result in plugins.manager().results("powerbuyer_product_lines"):
        for line in result.value or ():
            found.setdefault(line.code, DeclaredLine(result.plugin, line))
    return found


def get(code: str) -> DeclaredLine | None:
    return declared().get(code)


def risk_schema(line: ProductLine) -> list[dict[str, Any]]:
    """The line's risk fields as integrators and the quote screen build forms from."""
    return [
        {
            "name": field.name,
            "label": field.label,
            "type": field.type,
            "required": field.required,
            "choices": list(field.choices),
            "help": field.help,
        }
        for field in line.risk_fields
    ]


def coverages(line: ProductLine) -> list[dict[str, Any]]:
    return [
        {
            "code": cover.code,
            "label": cover.label,
            "limit_basis": cover.limit_basis,
            "limits": [str(limit) for limit in cover.limits],
            "deductibles": [str(deductible) for deductible in cover.deductibles],
            "optional": cover.optional,
        }
        for cover in line.coverages
    ]
