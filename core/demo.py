"""Demo data for the development tenant `powerbuyer run` creates.

One agency with two teams, six agents (one licence expiring within 30 days, so the
dashboard's licence card has something to show), a manager of the first team, and a
few hundred customers (people and companies) shared among the agents. Everything is
made up from small built-in lists by a seeded random.Random: the same seed gives the
same brokerage.

The rows are written directly rather than through core.agents.operations: those
authorize the signed-in user, and seeding runs from the command line with none. It is
audited all the same, as the operations would be, under the actor "system:demo".
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import insert, select

from core import audit
from core.agents.models import AGENCY, TEAM, Agent, OrgUnit
from core.customers.models import COMPANY, IDENTITY_FIELDS, PERSON, Customer, identity_value
from core.customers.rules import clean
from core.db import db
from core.policies import operations, quotes
from core.policies.rules import declarations_for
from core.products import lines
from core.products import operations as products
from core.security.models import Role, User

ACTOR = "system:demo"
AGENT_COUNT = 6
CUSTOMER_COUNT = 300
# About one customer in six is a company.
COMPANY_SHARE = 6
MANAGER_EMAIL = "manager@example.com"
TEAMS = ("North Team", "South Team")
# Customers given a quote; four in five of those quotes become issued policies.
POLICIES = 40
MOTOR, LIFE = "motor_private_car", "term_life"

FIRST_NAMES = (
    "Alice", "Ben", "Chloe", "Daniel", "Emma", "Farid", "Grace", "Hugo", "Isla", "Jamal",
    "Katie", "Liam", "Maya", "Noah", "Olivia", "Priya", "Quentin", "Ruby", "Samuel", "Tara",
    "Umar", "Violet", "William", "Yasmin", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Adams", "Baker", "Clarke", "Davies", "Evans", "Fischer", "Green", "Hughes", "Iqbal",
    "Jones", "Khan", "Lewis", "Morgan", "Nowak", "O'Brien", "Patel", "Quinn", "Roberts",
    "Singh", "Taylor", "Turner", "Walker", "Wilson", "Wright", "Young",
)  # fmt: skip
COMPANY_WORDS = (
    "Harbour", "Oak", "Summit", "Riverside", "Beacon", "Granite", "Meadow", "Northgate",
    "Silver", "Kestrel", "Atlas", "Willow",
)  # fmt: skip
COMPANY_TRADES = ("Logistics", "Bakery", "Builders", "Dental", "Consulting", "Motors", "Foods")
COMPANY_SUFFIXES = ("Ltd", "LLP", "& Co", "Group")
STREETS = ("High Street", "Station Road", "Church Lane", "Mill Road", "Park Avenue", "Queens Road")
CITIES = (
    ("London", "E1"), ("Manchester", "M1"), ("Bristol", "BS1"), ("Leeds", "LS1"),
    ("Glasgow", "G1"), ("Cardiff", "CF10"), ("Norwich", "NR1"), ("York", "YO1"),
)  # fmt: skip
CHANNELS = ("email", "email", "phone", "sms", "post")
KYC = ("verified", "verified", "pending", "not_started")


@dataclass(frozen=True)
class Seeded:
    """What a seeding created: logins to print and counts to check."""

    agent_emails: list[str]
    manager_email: str
    customers: int
    policies: int = 0


def agent_email(number: int) -> str:
    return f"agent{number}@example.com"


def seed(password_hash: str, *, seed: int = 2026, today: date | None = None) -> Seeded | None:
    """Fill the current tenant with the demo brokerage; None (and nothing written) if
    it already has agents. `password_hash` is every demo user's password, hashed."""
    if db.session.scalar(select(Agent.id).limit(1)) is not None:
        return None
    rng = random.Random(seed)
    with audit.acting_as(ACTOR):
        agent_ids = _staff(password_hash, rng, today or date.today())
        created = _customers(agent_ids, rng, today or date.today())
        issued = _policies(rng, today or date.today())
    return Seeded(
        [agent_email(n) for n in range(1, AGENT_COUNT + 1)], MANAGER_EMAIL, created, issued
    )


def _user(email: str, role: str, password_hash: str) -> User:
    datastore = current_app.extensions["security"].datastore
    user = datastore.create_user(
        email=email,
        password=password_hash,
        active=True,
        roles=[db.session.scalars(select(Role).where(Role.name == role)).one()],
    )
    db.session.flush()
    audit.record("users.create", entity="users", entity_id=user.id, after={"roles": [role]})
    return user


def _unit(kind: str, name: str, parent_id: int | None, managers: list[User]) -> OrgUnit:
    unit = OrgUnit(kind=kind, name=name, parent_id=parent_id)
    unit.managers = managers
    db.session.add(unit)
    db.session.flush()
    audit.record(
        "org_units.create",
        entity="org_units",
        entity_id=unit.id,
        after={"kind": kind, "name": name, "parent_id": parent_id},
    )
    return unit


def _staff(password_hash: str, rng: random.Random, today: date) -> list[int]:
    """The agency, its teams, the manager and the agents, in one transaction."""
    manager = _user(MANAGER_EMAIL, "manager", password_hash)
    agency = _unit(AGENCY, "Demo Agency", None, [])
    teams = [
        _unit(TEAM, name, agency.id, [manager] if index == 0 else [])
        for index, name in enumerate(TEAMS)
    ]
    agent_ids = []
    for number in range(1, AGENT_COUNT + 1):
        user = _user(agent_email(number), "agent", password_hash)
        # The first licence runs out within the alert window, the others in 1-3 years.
        days = 12 if number == 1 else rng.randint(365, 3 * 365)
        agent = Agent(
            user_id=user.id,
            team_id=teams[(number - 1) % len(teams)].id,
            licence_number=f"LIC-{rng.randint(100000, 999999)}",
            licence_expires_on=today + timedelta(days=days),
            territories=[rng.choice(CITIES)[0]],
        )
        db.session.add(agent)
        db.session.flush()
        audit.record(
            "agents.create",
            entity="agents",
            entity_id=agent.id,
            after={"user_id": user.id, "team_id": agent.team_id},
        )
        agent_ids.append(agent.id)
    db.session.commit()
    return agent_ids


def _payload(number: int, rng: random.Random, today: date) -> dict[str, Any]:
    city, postcode_area = rng.choice(CITIES)
    address = {
        "line1": f"{rng.randint(1, 180)} {rng.choice(STREETS)}",
        "city": city,
        "postcode": f"{postcode_area} {rng.randint(1, 9)}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
        f"{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}",
        "country": "GB",
    }
    common = {
        "phone": f"+44 7{rng.randint(100, 999)} {rng.randint(100000, 999999)}",
        "address": address,
        "preferred_channel": rng.choice(CHANNELS),
        "kyc_status": rng.choice(KYC),
    }
    if number % COMPANY_SHARE == 0:
        name = f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_TRADES)}"
        domain = name.lower().replace(" ", "")
        return {
            **common,
            "kind": COMPANY,
            "company_name": f"{name} {rng.choice(COMPANY_SUFFIXES)}",
            "registration_number": f"{rng.randint(10_000_000, 99_999_999)}",
            # The number keeps emails unique, as the import's duplicate check expects.
            "email": f"office{number}@{domain}.example.com",
        }
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    born = today - timedelta(days=rng.randint(18 * 365, 85 * 365))
    local = f"{first}.{last}".lower().replace("'", "")
    return {
        **common,
        "kind": PERSON,
        "first_name": first,
        "last_name": last,
        "date_of_birth": born.isoformat(),
        "email": f"{local}{number}@example.net",
    }


def _customers(agent_ids: list[int], rng: random.Random, today: date) -> int:
    """The customers, validated as an API create would be, in one batched INSERT and
    one transaction (encrypted columns are encrypted by their column type)."""
    rows = []
    for number in range(1, CUSTOMER_COUNT + 1):
        values = clean(_payload(number, rng, today))
        # A bulk INSERT skips the model's attribute events: the identity index (the
        # duplicate checks' name and date of birth) is given here, as the import does.
        identity = identity_value(*(values.get(name) for name in IDENTITY_FIELDS))
        rows.append(
            {**values, "identity_index": identity, "agent_id": rng.choice(agent_ids),
             "created_by": ACTOR, "updated_by": ACTOR}
        )  # fmt: skip
    db.session.execute(insert(Customer), rows)
    audit.record("customers.import", entity="customers", details={"created": len(rows)})
    db.session.commit()
    return len(rows)


def _motor_risk(rng: random.Random) -> dict[str, Any]:
    age = rng.choice((3, 10, 18, 30, 42, 54))
    return {
        "vehicle_value": str(rng.randrange(400_000, 2_500_000, 5_000)),
        "vehicle_age_months": age,
        "engine_cc": rng.choice((998, 1197, 1498, 1995)),
        "zone": rng.choice(("A", "B")),
        "claim_free_years": rng.randint(0, 5),
        "voluntary_deductible": rng.choice((0, 0, 2500, 5000, 7500, 15000)),
    }


def _life_risk(rng: random.Random) -> dict[str, Any]:
    return {
        "issue_age": rng.randint(25, 55),
        "term_years": rng.choice((10, 15, 20)),
        "sum_assured": str(rng.randrange(50_000, 500_000, 10_000)),
        "sex": rng.choice(("male", "female")),
        "smoker": rng.random() < 0.2,
    }


def _policies(rng: random.Random, today: date) -> int:
    """Motor and term-life business, if the tenant enabled those plugins: the products,
    open quotes, and policies issued over the past year (so renewal offers come due),
    all through the policy operations as the tenant's admin."""
    sold = [code for code in (MOTOR, LIFE) if lines.get(code) is not None]
    admin = db.session.scalars(
        select(User).join(User.roles).where(Role.name == "admin").order_by(User.id)
    ).first()
    if not sold or admin is None:
        return 0
    for code in sold:
        products.enable_product(code, user=admin)
    customers = db.session.scalars(
        select(Customer.id).where(Customer.kind == PERSON).order_by(Customer.id).limit(POLICIES)
    ).all()
    issued = 0
    for number, customer_id in enumerate(customers):
        code = sold[number % len(sold)] if number % 4 == 3 else sold[0]
        risk = _motor_risk(rng) if code == MOTOR else _life_risk(rng)
        start = today - timedelta(days=rng.randint(0, 360))
        quote = quotes.create_quote(
            customer_id=customer_id, line_code=code, start_date=start, risk=risk, user=admin
        )
        if number % 5 == 4:
            continue  # some quotes stay open, waiting for the customer
        declarations = {key: True for key, _ in declarations_for(code)} or None
        policy = operations.bind(quote.id, declarations=declarations, user=admin)
        operations.issue(policy.id, user=admin)
        issued += 1
    return issued
