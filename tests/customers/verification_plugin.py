"""A verification plugin for the tests: one identity and one credit service.

Its answers depend on the person it is given, so a test can tell the customer's data
reached the hook: a last name starting with "F" fails, with "R" is referred.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.hookspecs import VerificationResult, VerificationService, hookimpl

NAME = "pbtest_verify"
IDENTITY_SERVICE, CREDIT_SERVICE = "pbtest-id", "pbtest-credit"


def _outcome(person: Mapping[str, Any]) -> str:
    initial = (person.get("last_name") or "")[:1]
    return {"F": "failed", "R": "review"}.get(initial, "passed")


class VerificationPlugin:
    def __init__(self) -> None:
        self.people: list[Mapping[str, Any]] = []

    @hookimpl
    def powerbuyer_verification_services(self) -> Sequence[VerificationService]:
        return [
            VerificationService(IDENTITY_SERVICE, "Test identity", "identity"),
            VerificationService(CREDIT_SERVICE, "Test credit", "credit"),
        ]

    @hookimpl
    def powerbuyer_verify_identity(
        self, service: str, person: Mapping[str, Any]
    ) -> VerificationResult | None:
        if service != IDENTITY_SERVICE:
            return None
        self.people.append(person)
        return VerificationResult(
            service, _outcome(person), f"ID-{person['last_name']}", details={"matched": ["name"]}
        )

    @hookimpl
    def powerbuyer_check_credit(
        self, service: str, person: Mapping[str, Any]
    ) -> VerificationResult | None:
        if service != CREDIT_SERVICE:
            return None
        self.people.append(person)
        return VerificationResult(service, _outcome(person), "CR-1", score=720)
