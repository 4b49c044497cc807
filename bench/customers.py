"""Customers at scale, 1,000,000 in one tenant: a benchmark, not a test.

One tenant is provisioned with the real provisioning code, given 200 agents (users of
the `agent` role with agent profiles) and seeded with N customers (default 1,000,000)
by COPY: people and companies with names drawn from weighted lists (common names
often, rare ones seldom), emails at common domains, UK mobile and landline numbers,
dates of birth, national insurance numbers as people type them, addresses, tags,
statuses. Dates of birth and national ids are encrypted, and the national id
blind-indexed, by the model's own column type and helper (EncryptedString,
pii.index_value), so the rows are what the application would have stored. The
table's indexes are dropped for the load and built again from their own definitions,
then the table is vacuumed and analysed. Then, each figure timed in this process
through the product's code, as a request would call it (a tenant transaction that
sets role and search_path, the pool's ping, the selectin load of contacts,
decryption of the loaded rows, the transaction's end):

  1. search: core.customers.queries.search for a mix of queries (name prefixes as
     typed, first name and a surname prefix, full names, company names, emails,
     phones, national ids exactly), drawn from customers in the caller's book, as
     the tenant's admin (the whole book) and as an agent (their book of about N/200
     customers); searches and fetches alternate, after a warm-up round. p50/p95 per
     kind of query and over all, the slowest queries, and p95(search) / p95(fetch of
     one customer by primary key, core.customers.queries.get, same caller, same
     stack), target at most 3. Full names with a letter of the surname dropped (the
     trigram fallback) are timed too but left out of "all": the issue's mix has no
     typos;
  2. keyset pages: search with no query, the admin's whole book, page 10,000 (from a
     cursor made by queries.encode_cursor from the last row of page 9,999) against
     page 1; median of each, target page 10,000 / page 1 at most 1.5;
  3. import: 100,000 new rows (a CSV as a manager would upload it, emails not yet
     on file, a few names and dates of birth that are) through the real
     job: imports.save_upload and imports.start as the admin, then jobs.run, the
     function RQ calls, which claims the job and runs imports.run_import in this
     process. Against a raw COPY of the same CSV file into the same table (PostgreSQL
     parses the file; no validation, no encryption, no duplicate check), rolled back
     and repeated, best of three; the table is vacuumed before the import. Target:
     import rows/s at least 30% of COPY rows/s.

Each figure is printed with its target and PASS/FAIL.

Run:  python bench/customers.py [--customers 1000000] [--import-rows 100000]
                                [--rounds 5] [--quick] [--reuse] [--only search]
--quick: 100,000 customers, 10,000 import rows, 3 rounds (page 10,000 does not exist
then: the last full page is used and named). --reuse keeps a database this bench
seeded earlier with the same number of customers (rows it imported are deleted
first), for working on the code being measured; without it the database is dropped
and made again. --only search|pages|import (repeatable) measures only those.

Database: BENCH_CUSTOMERS_DATABASE_URL (a superuser URL), default
postgresql://postgres@127.0.0.1:5432/powerbuyer_bench_customers, with its roles
(prefixed `<database>__`). Redis: REDIS_URL, default redis://127.0.0.1:6379/13 (the
import's queue message is pushed there and deleted after the run). Uploaded files go
to a temporary folder. Exits 0 whatever the figures: it reports, it does not judge.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as `python bench/customers.py`, Python puts bench/ first on sys.path, where
# bench/tenants.py would shadow the `tenants` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from flask import Flask  # noqa: E402
from psycopg import sql  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.orm import selectinload  # noqa: E402

from core import dbroles  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/powerbuyer_bench_customers"
DEFAULT_REDIS = "redis://127.0.0.1:6379/13"
SLUG = "bench"
PASSWORD = "bench password, not a secret one"
ACTOR = "system:bench"
AGENTS = 200
# About one customer in six is a company; one in a hundred is soft-deleted.
COMPANY_SHARE = 1 / 6
SEARCH_RATIO_TARGET = 3.0
PAGE_RATIO_TARGET = 1.5
IMPORT_SHARE_TARGET = 0.30
PAGE = 10_000
# Reported, but not in the mix the target is about (the issue names names, emails,
# phones and national ids).
TYPO = "typo in the surname (not in all)"


def _words(text: str) -> list[str]:
    return text.split()


# Most common first; drawn with Zipf-like weights, so "James" is common and "Wojciech"
# rare, as in a real book (and as the planner's statistics then see them).
FIRST_NAMES = _words("""
James Oliver Mohammed Jack Harry George Noah Jacob Charlie Thomas William Oscar Leo
Muhammad Alfie Joshua Henry Archie Freddie Ethan Isaac Alexander Joseph Lucas Daniel
Samuel Logan Edward Max Adam Benjamin Arthur Theo Dylan Finley Sebastian Elijah Harrison
Toby Reuben Ryan Jake Luca Matthew Tyler Nathan David Michael Christopher Andrew Mark
Paul Stephen Peter Richard John Robert Anthony Kevin Gary Ian Simon Neil Darren Lee
Olivia Amelia Isla Ava Emily Sophia Grace Mia Poppy Ella Lily Evie Isabella Sophie Ivy
Freya Harper Willow Charlotte Jessica Daisy Florence Chloe Alice Phoebe Ruby Evelyn
Matilda Sienna Emma Sarah Laura Rebecca Hannah Lucy Katie Amy Rachel Jennifer Nicola
Claire Michelle Karen Julie Helen Susan Elizabeth Margaret Patricia Linda Barbara Mary
Priya Aisha Fatima Zara Amira Maryam Ayesha Noor Sana Hira Anjali Deepa Kavya Meera
Arjun Rohan Vikram Rahul Amit Sanjay Ravi Imran Bilal Hamza Omar Yusuf Tariq Kamran
Piotr Krzysztof Tomasz Marcin Katarzyna Agnieszka Magdalena Wojciech Pawel Joanna
Giovanni Marco Francesca Giulia Alessandro Chiara Matteo Sofia Lorenzo Valentina
Chinedu Adebayo Oluwaseun Ngozi Chiamaka Emeka Folake Kwame Ama Kofi Abena Yaw
Siobhan Niamh Aoife Ciaran Declan Padraig Eilidh Iain Catriona Rhys Gareth Dafydd
Wei Jing Li Mei Hui Xin Chen Yan Hao Ming Anh Linh Minh Thanh Hiroshi Yuki Kenji Sakura
""")
LAST_NAMES = _words("""
Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson
Thompson Wright Walker White Edwards Hughes Green Hall Lewis Harris Clarke Patel Jackson
Wood Turner Martin Cooper Hill Ward Morris Moore Clark Lee King Baker Harrison Morgan
Allen James Scott Phillips Watson Davis Parker Price Bennett Young Griffiths Mitchell
Kelly Cook Carter Richardson Bailey Collins Bell Shaw Murphy Miller Cox Richards Khan
Marshall Anderson Simpson Ellis Adams Singh Begum Wilkinson Foster Chapman Powell Webb
Rogers Gray Mason Ali Hunt Hussain Campbell Matthews Owen Palmer Holmes Mills Barnes
Knight Lloyd Butler Russell Barker Fisher Stevens Jenkins Murray Dixon Harvey Graham
Pearson Ahmed Fletcher Walsh Kaur Gibson Howard Andrews Stewart Elliott Reynolds Saunders
Payne Fox Ford Pearce Day Brooks West Lawrence Cole Atkinson Bradley Spencer Gill Dawson
Ball Burton O'Brien Watts Rose Booth Perry Ryan Grant Wells Armstrong Francis Rees Hayes
Hart Hudson Newman Barrett Webster Hunter Gregory Carr Lowe Page Marsh Riley Dunn Woods
Parsons Berry Stone Reid Holland Hawkins Harding Porter Robertson Newton Oliver Reed
Kennedy Williamson Bird Gardner Shah Dean Lane Cooke Bates Henderson Parry Burgess Bishop
Walton Burns Nicholson Shepherd Ross Cross Long Freeman Warren Nicholls Hamilton Byrne
Sutton McDonald Yates Hodgson Robson Curtis Hopkins O'Connor Harper Coleman Watkins Moss
McCarthy Chambers O'Neill Griffin Sharp Hardy Wheeler Potter Osborne Johnston Gordon
Doyle Wallace George Jordan Hutchinson Rowe Burke May Pritchard Gilbert Willis Higgins
Read Miles Stevenson Stephenson Hammond Arnold Buckley Walters Hewitt Barber Nelson
Slater Austin Sullivan Whitehead Mann Frost Lambert Stephens Blake Akhtar Lynch Goodwin
Barton Woodward Thomson Cunningham Quinn Barnett Baxter Bibi Clayton Nash Greenwood
Jennings Holt Kemp Poole Gallagher Bond Stokes Tucker Davidson Fowler Heath Norman
Middleton Lawson Banks French Stanley Jarvis Gibbs Ferguson Hayward Carroll Douglas
Nowak Kowalski Wisniewski Wojcik Kowalczyk Kaminski Lewandowski Zielinski Szymanski
Rossi Russo Ferrari Esposito Bianchi Romano Colombo Ricci Marino Greco Bruno Gallo
Okafor Adeyemi Okonkwo Mensah Owusu Boateng Asante Nwosu Eze Oyelaran Abiodun Balogun
Wang Zhang Liu Chen Yang Huang Zhao Wu Zhou Xu Nguyen Tran Pham Tanaka Suzuki Sato
Sharma Gupta Verma Mehta Joshi Iyer Nair Reddy Chowdhury Rahman Hossain Malik Qureshi
""")
# The long tail: English place-name surnames (Ashworth, Thornbury), one person in three.
SURNAME_STARTS = _words("""
Ash Black Brad Brook Chad Clay Cold Crow Dun Fair Farn Gold Hart Hay Hol Kings Lang
Lock Mar Mid Mil Nor Pen Rad Red Rock Rush Sal Shel Stan Thorn Wal Wat Whit Wor Ather
Bex Cal Dal Elling Gar Hamble Ketter Lid Mor Pick Roth Saxon Tad Up Wey Yar Bur Cher
""")
SURNAME_ENDS = _words("""
ley ton worth ford field wood by ham well bury combe more dale hurst wick stone brook
den ridge shaw land thorpe croft gate
""")
TAIL_SHARE = 0.3
PLACES = _words("""
Thames Pennine Cotswold Mersey Severn Tyne Clyde Mendip Chiltern Solent Trent Humber
Avon Wessex Mercia Cheviot Dales Fenland Kennet Medway Ouse Tamar Wye Exe Dart Lune
""")
COMPANY_WORDS = _words("""
Harbour Oak Summit Riverside Beacon Granite Meadow Northgate Silver Kestrel Atlas Willow
Anchor Bridge Crown Falcon Heron Ivy Juniper Lantern Maple Orchard Pioneer Quay Raven
Sterling Thistle Unity Vale Wren Copper Cedar Aspen Birch Elm Harvest Horizon Keystone
""")
TRADES = _words("""
Logistics Bakery Builders Dental Consulting Motors Foods Plumbing Electrical Roofing
Haulage Catering Joinery Landscaping Printing Cleaning Security Pharmacy Veterinary
Engineering Scaffolding Glazing Interiors Textiles Brewing Recruitment Accountants
""")
SUFFIXES = ["Ltd"] * 6 + ["Limited", "LLP", "& Co", "Group", "Holdings", "Services Ltd"]
DOMAINS = [
    ("gmail.com", 30),
    ("hotmail.co.uk", 12),
    ("outlook.com", 10),
    ("yahoo.co.uk", 8),
    ("icloud.com", 6),
    ("btinternet.com", 5),
    ("hotmail.com", 4),
    ("live.co.uk", 3),
    ("sky.com", 3),
    ("aol.com", 2),
    ("virginmedia.com", 2),
    ("talktalk.net", 2),
    ("protonmail.com", 1),
    ("me.com", 1),
]
CITIES = [
    ("London", "E"), ("London", "SW"), ("London", "N"), ("Manchester", "M"),
    ("Birmingham", "B"), ("Leeds", "LS"), ("Glasgow", "G"), ("Bristol", "BS"),
    ("Liverpool", "L"), ("Sheffield", "S"), ("Edinburgh", "EH"), ("Cardiff", "CF"),
    ("Leicester", "LE"), ("Nottingham", "NG"), ("Newcastle", "NE"), ("Norwich", "NR"),
    ("Brighton", "BN"), ("Oxford", "OX"), ("York", "YO"), ("Belfast", "BT"),
]  # fmt: skip
STREETS = """
High Street|Station Road|Church Lane|Mill Road|Park Avenue|Queens Road|Victoria Road|
Green Lane|Manor Road|Kings Road|The Crescent|London Road|Grange Road|Springfield Road
""".replace("\n", "").split("|")
TAGS = ["vip", "renewal-due", "referral", "broker-transfer", "fleet", "landlord", "high-value"]
# National insurance number prefixes never start with D, F, I, Q, U or V.
NI_LETTERS = "ABCEGHJKLMNOPRSTWXYZ"


def _weights(count: int, skew: float) -> list[float]:
    return [1 / (rank + 1) ** skew for rank in range(count)]


@dataclass
class People:
    """Made-up customers, as a person would type them (plain values)."""

    rng: random.Random
    # Skews for about 2% James and 1.2% Smith: some 250 "James Smith" in a million.
    first_weights: list[float] = field(default_factory=lambda: _weights(len(FIRST_NAMES), 0.35))
    last_weights: list[float] = field(default_factory=lambda: _weights(len(LAST_NAMES), 0.5))
    domains: list[str] = field(default_factory=lambda: [d for d, _ in DOMAINS])
    domain_weights: list[int] = field(default_factory=lambda: [w for _, w in DOMAINS])
    # Emails already given (lower-case): an address belongs to one person.
    taken: set[str] = field(default_factory=set)

    def _digits(self, count: int) -> str:
        return str(self.rng.randrange(10**count)).zfill(count)

    def phone(self, landline: bool = False) -> str:
        rng = self.rng
        if landline or rng.random() < 0.15:
            number = f"20 {self._digits(4)} {self._digits(4)}"
        else:
            number = f"7{rng.randint(100, 999)} {self._digits(6)}"
        return f"+44 {number}" if rng.random() < 0.6 else f"0{number}"

    def national_id(self) -> str:
        rng = self.rng
        prefix = rng.choice(NI_LETTERS) + rng.choice(NI_LETTERS)
        digits, suffix = self._digits(6), rng.choice("ABCD")
        style = rng.random()
        if style < 0.5:
            return f"{prefix}{digits}{suffix}"
        if style < 0.85:
            return f"{prefix} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}"
        return f"{prefix}{digits}{suffix}".lower()

    def address(self) -> dict[str, str]:
        rng = self.rng
        city, area = rng.choice(CITIES)
        return {
            "line1": f"{rng.randint(1, 240)} {rng.choice(STREETS)}",
            "city": city,
            "postcode": f"{area}{rng.randint(1, 20)} {rng.randint(1, 9)}"
            f"{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}",
            "country": "GB",
        }

    def email(self, local: str, domain: str) -> str:
        """`local@domain`, or, as at sign-up, with a number added until it is free."""
        rng = self.rng
        email = f"{local}@{domain}"
        while email in self.taken:
            email = f"{local}{rng.randint(1, 9999)}@{domain}"
        self.taken.add(email)
        return email

    def customer(self) -> dict[str, Any]:
        """A new customer, plain values as typed (emails unique, as people's are)."""
        rng = self.rng
        if rng.random() < COMPANY_SHARE:
            name = f"{rng.choice(COMPANY_WORDS)} {rng.choice(TRADES)}"
            if rng.random() < 0.5:
                name = f"{rng.choice(PLACES)} {name}"
            mailbox = rng.choice(("info", "office", "accounts", "hello", "admin"))
            return {
                "kind": "company",
                "company_name": f"{name} {rng.choice(SUFFIXES)}",
                "registration_number": rng.choice(("", "", "", "SC", "NI"))
                + self._digits(8 - 2 * (rng.random() < 0.2)),
                "email": self.email(mailbox, f"{name.lower().replace(' ', '')}.co.uk"),
                "phone": self.phone(landline=True),
            }
        first = rng.choices(FIRST_NAMES, self.first_weights)[0]
        if rng.random() < TAIL_SHARE:
            last = rng.choice(SURNAME_STARTS) + rng.choice(SURNAME_ENDS)
        else:
            last = rng.choices(LAST_NAMES, self.last_weights)[0]
        if rng.random() < 0.03:
            last = f"{last}-{rng.choices(LAST_NAMES, self.last_weights)[0]}"
        born = date(1935, 1, 1) + timedelta(days=rng.randint(0, 71 * 365))
        given, family = first.lower(), last.lower().replace("'", "")
        local = rng.choice(
            (
                f"{given}.{family}",
                f"{given}{family}",
                f"{given[0]}{family}",
                f"{given}.{family}{born.year % 100:02d}",
                f"{given}{family}{born.year}",
                f"{family}.{given}",
                f"{given}_{family}",
                f"{given}{rng.randint(1, 999)}",
            )
        )
        values: dict[str, Any] = {
            "kind": "person",
            "first_name": first,
            "last_name": last,
            "date_of_birth": born.isoformat(),
        }
        if rng.random() < 0.95:
            values["email"] = self.email(local, rng.choices(self.domains, self.domain_weights)[0])
        if rng.random() < 0.9:
            values["phone"] = self.phone()
        if rng.random() < 0.8:
            values["national_id"] = self.national_id()
        return values


# --- Database, app, tenant --------------------------------------------------------------


def database_url() -> str:
    return os.environ.get("BENCH_CUSTOMERS_DATABASE_URL", DEFAULT_URL)


def redis_url() -> str:
    return os.environ.get("REDIS_URL", DEFAULT_REDIS)


def superuser_dsn() -> str:
    return make_url(database_url()).set(drivername="postgresql").render_as_string(False)


def recreate_database() -> None:
    """Drop the bench database and its roles, and create the database again."""
    dbroles.recreate_database(database_url())


def seeded_count() -> tuple[int, int] | None:
    """(customers, last seeded id) of an earlier run's seeding, if the database has one."""
    try:
        with psycopg.connect(superuser_dsn()) as conn:
            row = conn.execute("SELECT customers, last_id FROM bench.seeded").fetchone()
    except psycopg.Error:
        return None
    return (row[0], row[1]) if row else None


def bench_app(uploads: str) -> Flask:
    """The product's app, configured as a deployment would be."""
    from core.app import create_app

    name = make_url(database_url()).database
    logging.getLogger("plugins").setLevel(logging.ERROR)
    return create_app(
        {
            "DATABASE_URL": database_url(),
            "DATABASE_ADMIN_URL": None,
            "REDIS_URL": redis_url(),
            # Roles are cluster-wide; the prefix keeps the bench's apart from the rest.
            "DB_ROLE_PREFIX": f"{name}__",
            "APP_DB_ROLE": f"{name}__app",
            "RQ_QUEUE_PREFIX": f"pbbench:{name}",
            "INSTANCE_PATH": uploads,
        }
    )


def provision(app: Flask) -> None:
    """The tenant (real provisioning: role, schema, tables, roles, admin) and its agents."""
    from flask_security import hash_password

    from core.agents.models import TEAM, Agent, OrgUnit
    from core.db import db
    from core.security.models import Role
    from core.tenancy import tenant_context
    from tenants import provisioning
    from tenants.admin import admin_engine
    from tenants.cli import upgrade_public

    upgrade_public(app)
    with app.app_context():
        hashed = hash_password(PASSWORD)
        tenant = provisioning.create_tenant(
            admin_engine(app),
            provisioning.NewTenant(SLUG, "Bench Brokerage", f"admin@{SLUG}.example.com", hashed),
            app_role=app.config["APP_DB_ROLE"],
            role_prefix=app.config["DB_ROLE_PREFIX"],
        )
        with tenant_context(tenant):
            agency = OrgUnit(kind="agency", name="Bench Agency")
            db.session.add(agency)
            db.session.flush()
            teams = [OrgUnit(kind=TEAM, name=f"Team {n}", parent_id=agency.id) for n in range(10)]
            db.session.add_all(teams)
            db.session.flush()
            role = db.session.scalars(select(Role).where(Role.name == "agent")).one()
            datastore = app.extensions["security"].datastore
            for number in range(1, AGENTS + 1):
                user = datastore.create_user(
                    email=f"agent{number}@{SLUG}.example.com", password=hashed, roles=[role]
                )
                db.session.flush()
                db.session.add(
                    Agent(
                        user_id=user.id,
                        team_id=teams[number % len(teams)].id,
                        licence_number=f"LIC-{100000 + number}",
                        licence_expires_on=date(2030, 1, 1),
                    )
                )
            db.session.commit()


def tenant_of(app: Flask) -> Any:
    with app.app_context():
        return app.extensions["powerbuyer.tenants"].by_slug(SLUG)


# --- Seeding ------------------------------------------------------------------------------

SEED_COLUMNS = (
    "kind",
    "first_name",
    "last_name",
    "date_of_birth",
    "company_name",
    "registration_number",
    "national_id",
    "national_id_index",
    "identity_index",
    "email",
    "phone",
    "preferred_channel",
    "address",
    "marketing_consent",
    "consent_at",
    "kyc_status",
    "tags",
    "agent_id",
    "status",
    "is_active",
    "created_by",
    "updated_by",
)


def stored_rows(count: int, agent_ids: list[int], seed: int) -> Iterator[tuple[Any, ...]]:
    """Customers 1..count as the application stores them: clean values (emails
    lower-case, phones as + and digits), the date of birth and national id encrypted by
    the column's own type, the national id's blind index and the identity index (name
    and date of birth) by the model's helpers."""
    from core.customers.models import Customer, identity_value
    from core.security.pii import index_value, normalise

    rng = random.Random(seed)
    people = People(rng)
    table = Customer.__table__
    seal_dob = table.c.date_of_birth.type.process_bind_param
    seal_nid = table.c.national_id.type.process_bind_param
    channels = ("email", "email", "phone", "sms", "post", None)
    kyc = ("verified", "verified", "verified", "pending", "not_started", "failed")
    consent_from = datetime(2015, 1, 1, tzinfo=UTC)
    for _ in range(count):
        values = people.customer()
        nid = values.get("national_id")
        consent = rng.random() < 0.4
        roll = rng.random()
        yield (
            values["kind"],
            values.get("first_name"),
            values.get("last_name"),
            seal_dob(values["date_of_birth"], None) if "date_of_birth" in values else None,
            values.get("company_name"),
            values.get("registration_number"),
            seal_nid(nid, None) if nid else None,
            index_value(Customer.national_id, nid) if nid else None,
            identity_value(
                values.get("first_name"), values.get("last_name"), values.get("date_of_birth")
            ),
            values["email"].lower() if "email" in values else None,
            normalise(values["phone"], "phone") if "phone" in values else None,
            rng.choice(channels),
            json.dumps(people.address()),
            consent,
            consent_from + timedelta(minutes=rng.randrange(5_000_000)) if consent else None,
            rng.choice(kyc),
            [rng.choice(TAGS)] if rng.random() < 0.1 else [],
            rng.choice(agent_ids) if rng.random() < 0.95 else None,
            "inactive" if roll < 0.02 else "active",
            not (0.02 <= roll < 0.03),  # one in a hundred soft-deleted
            ACTOR,
            ACTOR,
        )


def check_sample(count: int, seed: int) -> None:
    """The seeding's clean values are what rules.clean makes of the same input."""
    from core.customers.rules import clean
    from core.security.pii import normalise

    people = People(random.Random(seed))
    for _ in range(count):
        values = people.customer()
        cleaned = clean(values)
        for name in ("first_name", "last_name", "company_name", "date_of_birth"):
            assert cleaned.get(name) == values.get(name), (name, values)
        if "email" in values:
            assert cleaned["email"] == values["email"].lower(), values
        if "phone" in values:
            assert cleaned["phone"] == normalise(values["phone"], "phone"), values


def seed(app: Flask, count: int, seed_value: int) -> float:
    """COPY `count` customers into the bench tenant; returns the seconds it took."""
    from core.agents.models import Agent
    from core.db import db
    from core.tenancy import tenant_context

    tenant = tenant_of(app)
    started = time.perf_counter()
    with app.app_context(), tenant_context(tenant):
        check_sample(2000, seed_value + 1)
        agent_ids = list(db.session.scalars(select(Agent.id).order_by(Agent.id)))
        db.session.remove()
        with psycopg.connect(superuser_dsn()) as conn:
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(tenant.schema)))
            # For the index builds below, this session only.
            conn.execute("SET maintenance_work_mem = '512MB'")
            indexes = conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s"
                " AND tablename = 'customers' AND indexname <> 'pk_customers'",
                (tenant.schema,),
            ).fetchall()
            for name, _ in indexes:
                conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
            columns = sql.SQL(", ").join(map(sql.Identifier, SEED_COLUMNS))
            copy = sql.SQL("COPY customers ({}) FROM STDIN").format(columns)
            with conn.cursor().copy(copy) as stream:
                for done, row in enumerate(stored_rows(count, agent_ids, seed_value), 1):
                    stream.write_row(row)
                    if done % 100_000 == 0:
                        elapsed = time.perf_counter() - started
                        print(f"  {done:,} rows ({elapsed:.0f} s)", flush=True)
            print(f"  rows in ({time.perf_counter() - started:.0f} s); indexes:", flush=True)
            for name, definition in indexes:
                conn.execute(definition)
                print(f"    {name} ({time.perf_counter() - started:.0f} s)", flush=True)
            last_id = conn.execute("SELECT max(id) FROM customers").fetchone()[0]
            conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
            conn.execute("CREATE TABLE bench.seeded (customers integer, last_id integer)")
            conn.execute("INSERT INTO bench.seeded VALUES (%s, %s)", (count, last_id))
            conn.commit()
    vacuum(tenant.schema)
    return time.perf_counter() - started


def vacuum(schema: str) -> None:
    with psycopg.connect(superuser_dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("VACUUM (ANALYZE) {}.customers").format(sql.Identifier(schema)))


def forget_imported(app: Flask, last_id: int) -> None:
    """--reuse: delete the rows an earlier run imported, so the table is as seeded."""
    tenant = tenant_of(app)
    with psycopg.connect(superuser_dsn()) as conn:
        table = sql.Identifier(tenant.schema, "customers")
        deleted = conn.execute(
            sql.SQL("DELETE FROM {} WHERE id > %s").format(table), (last_id,)
        ).rowcount
        conn.commit()
    if deleted:
        print(f"  deleted {deleted:,} rows an earlier run imported", flush=True)
        vacuum(tenant.schema)


# --- Timing ---------------------------------------------------------------------------------


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@dataclass
class Caller:
    label: str
    user: Any
    agent_id: int | None


def callers(app: Flask) -> list[Caller]:
    """The tenant's admin (whole book) and the first agent (their book), loaded with
    their roles and detached, as a request's authentication would have them."""
    from core.agents.models import Agent
    from core.db import db
    from core.security.models import User
    from core.tenancy import tenant_context

    found = []
    with app.app_context(), tenant_context(tenant_of(app)):
        for label, email in (
            ("admin", f"admin@{SLUG}.example.com"),
            ("agent", f"agent1@{SLUG}.example.com"),
        ):
            user = db.session.scalars(
                select(User).where(User.email == email).options(selectinload(User.roles))
            ).one()
            for role in user.roles:
                role.get_permissions()
            agent_id = db.session.scalar(select(Agent.id).where(Agent.user_id == user.id))
            db.session.expunge_all()
            found.append(Caller(label, user, agent_id if label == "agent" else None))
        db.session.remove()
    return found


def timer(app: Flask) -> Callable[[Callable[[], Any]], tuple[float, Any]]:
    """Run `work` as a request would: in the tenant, a session ended afterwards."""
    from core.db import db
    from core.tenancy import tenant_context

    tenant = tenant_of(app)

    def timed(work: Callable[[], Any]) -> tuple[float, Any]:
        started = time.perf_counter()
        with tenant_context(tenant):
            try:
                result = work()
            finally:
                db.session.remove()
        return (time.perf_counter() - started) * 1000, result

    return timed


def sample_queries(
    app: Flask, caller: Caller, per_kind: int, seed_value: int
) -> list[tuple[str, str]]:
    """(kind, query) pairs from customers in the caller's book, decrypted by the model."""
    from core.customers.models import Customer
    from core.db import db
    from core.tenancy import tenant_context

    rng = random.Random(seed_value)
    queries: list[tuple[str, str]] = []
    with app.app_context(), tenant_context(tenant_of(app)):
        base = select(Customer).where(Customer.is_active)
        if caller.agent_id is not None:
            base = base.where(Customer.agent_id == caller.agent_id)
        last = db.session.scalar(select(func.max(Customer.id)))

        def pick(condition: Any) -> list[Customer]:
            chosen: list[Customer] = []
            while len(chosen) < per_kind:
                start = rng.randint(1, last)
                row = db.session.scalars(
                    base.where(condition, Customer.id >= start).order_by(Customer.id).limit(1)
                ).first()
                if row is not None and row.id not in {c.id for c in chosen}:
                    chosen.append(row)
            return chosen

        people = pick(Customer.kind == "person")
        for c in people:
            queries.append(("name prefix, 2 letters", c.first_name[:2]))
            queries.append(("surname prefix, 4", c.last_name[:4].lower()))
            queries.append(("first name + surname prefix", f"{c.first_name} {c.last_name[:3]}"))
            queries.append(("full name", f"{c.first_name} {c.last_name}"))
            # A letter of the surname dropped: found by trigram similarity only.
            at = len(c.last_name) // 2
            typo = f"{c.first_name} {c.last_name[:at]}{c.last_name[at + 1 :]}"
            queries.append((TYPO, typo))
        for c in pick(Customer.email.is_not(None)):
            queries.append(("email", c.email))
        for c in pick(Customer.phone.is_not(None)):
            digits = c.phone.lstrip("+")
            spaced = (
                f"+{digits[:2]} {digits[2:6]} {digits[6:]}"
                if c.phone.startswith("+")
                else (f"{digits[:5]} {digits[5:]}")
            )
            queries.append(("phone", spaced))
        for c in pick(Customer.national_id_index.is_not(None)):
            queries.append(("national id", c.national_id))
        for c in pick(Customer.kind == "company"):
            queries.append(("company name", " ".join(c.company_name.split()[:2])))
        db.session.remove()
    return queries


def measure_search(
    app: Flask, caller: Caller, queries: list[tuple[str, str]], rounds: int, seed_value: int
) -> dict[str, list[float]]:
    """Latency (ms) of each kind of query, and of primary-key fetches ("pk"), alternated."""
    from core.customers import queries as customer_queries
    from core.customers.models import Customer
    from core.db import db
    from core.tenancy import tenant_context

    rng = random.Random(seed_value)
    timed = timer(app)
    with app.app_context(), tenant_context(tenant_of(app)):
        base = select(Customer.id).where(Customer.is_active)
        if caller.agent_id is not None:
            base = base.where(Customer.agent_id == caller.agent_id)
        ids = list(db.session.scalars(base))
        db.session.remove()

    def search(q: str) -> Any:
        return customer_queries.search(customer_queries.Filters(q=q), user=caller.user)

    samples: dict[str, list[float]] = {}
    found_nothing: set[tuple[str, str]] = set()
    slowest: dict[tuple[str, str], float] = {}
    with app.app_context():
        # Warm-up: every query once, and as many fetches; not counted.
        for _, q in queries:
            timed(lambda q=q: search(q))
            ident = rng.choice(ids)
            timed(lambda ident=ident: customer_queries.get(ident, caller.user))
        for _ in range(rounds):
            order = queries[:]
            rng.shuffle(order)
            for kind, q in order:
                ms, page = timed(lambda q=q: search(q))
                samples.setdefault(kind, []).append(ms)
                slowest[kind, q] = max(ms, slowest.get((kind, q), 0.0))
                if not page.items:
                    found_nothing.add((kind, q))
                ident = rng.choice(ids)
                ms, customer = timed(lambda ident=ident: customer_queries.get(ident, caller.user))
                assert customer.id == ident
                samples.setdefault("pk", []).append(ms)
    if found_nothing:
        print(f"  note: {len(found_nothing)} queries found nothing: {sorted(found_nothing)[:5]}")
    worst = sorted(slowest.items(), key=lambda item: -item[1])[:6]
    print(f"  slowest ({caller.label}): " + ", ".join(f"{q!r} {ms:.0f} ms" for (_, q), ms in worst))
    return samples


def measure_pages(app: Flask, caller: Caller, page: int, rounds: int) -> tuple[float, float, int]:
    """Median ms of page 1 and of page `page` of the caller's book, no query."""
    from core.customers import queries as customer_queries
    from core.customers.models import Customer
    from core.db import db
    from core.tenancy import tenant_context

    size = customer_queries.PAGE_SIZE
    with app.app_context(), tenant_context(tenant_of(app)):
        visible = select(Customer).where(Customer.is_active)
        total = db.session.scalar(select(func.count()).select_from(visible.subquery()))
        page = min(page, total // size)
        # The last row of the page before: its cursor is the one page `page` is asked with.
        before = db.session.scalars(
            visible.order_by(Customer.sort_name, Customer.id).offset((page - 1) * size - 1).limit(1)
        ).one()
        cursor = customer_queries.encode_cursor(before)
        expected = db.session.scalars(
            select(Customer.id)
            .where(Customer.is_active)
            .order_by(Customer.sort_name, Customer.id)
            .offset((page - 1) * size)
            .limit(size)
        ).all()
        # The cursor code chains: page 2 from page 1's cursor starts where OFFSET says.
        first = customer_queries.search(customer_queries.Filters(), user=caller.user)
        second = customer_queries.search(
            customer_queries.Filters(), cursor=first.next_cursor, user=caller.user
        )
        second_expected = db.session.scalars(
            select(Customer.id)
            .where(Customer.is_active)
            .order_by(Customer.sort_name, Customer.id)
            .offset(size)
            .limit(size)
        ).all()
        assert [c.id for c in second.items] == second_expected
        db.session.remove()

    def page_at(cursor: str | None) -> Any:
        return customer_queries.search(customer_queries.Filters(), cursor=cursor, user=caller.user)

    timed = timer(app)
    with app.app_context():
        far = timed(lambda: page_at(cursor))[1]
        assert [c.id for c in far.items] == expected, "page from the cursor is not the page"
        firsts, fars = [], []
        for _ in range(5):  # warm-up
            timed(lambda: page_at(None))
        for _ in range(rounds * 40):
            firsts.append(timed(lambda: page_at(None))[0])
            fars.append(timed(lambda: page_at(cursor))[0])
    return statistics.median(firsts), statistics.median(fars), page


# --- Import ----------------------------------------------------------------------------------

IMPORT_HEADER = [
    "Kind",
    "First name",
    "Last name",
    "Date of birth",
    "Company",
    "Company number",
    "Email",
    "Phone",
    "National ID",
]
COPY_COLUMNS = (
    "kind",
    "first_name",
    "last_name",
    "date_of_birth",
    "company_name",
    "registration_number",
    "email",
    "phone",
    "national_id",
)


def import_file(rows: int, seed_value: int) -> bytes:
    """A CSV of `rows` new customers as a manager would upload it (their emails not yet
    on file; some typed with a capital)."""
    with psycopg.connect(superuser_dsn()) as conn:
        schema = conn.execute("SELECT schema_name FROM public.tenants WHERE slug = %s", (SLUG,))
        table = sql.Identifier(schema.fetchone()[0], "customers")
        taken = conn.execute(sql.SQL("SELECT email FROM {} WHERE email IS NOT NULL").format(table))
        people = People(random.Random(seed_value), taken={email for (email,) in taken})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(IMPORT_HEADER)
    for _ in range(rows):
        v = people.customer()
        email = v.get("email", "")
        if email and people.rng.random() < 0.2:
            email = email[0].upper() + email[1:]
        writer.writerow(
            [
                v["kind"],
                v.get("first_name", ""),
                v.get("last_name", ""),
                v.get("date_of_birth", ""),
                v.get("company_name", ""),
                v.get("registration_number", ""),
                email,
                v.get("phone", ""),
                v.get("national_id", ""),
            ]
        )
    return out.getvalue().encode()


def raw_copy(schema: str, data: bytes) -> float:
    """Seconds to COPY the CSV file into the table, in a transaction rolled back."""
    columns = sql.SQL(", ").join(map(sql.Identifier, COPY_COLUMNS))
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv, HEADER true)").format(
        sql.Identifier(schema, "customers"), columns
    )
    with psycopg.connect(superuser_dsn()) as conn:
        started = time.perf_counter()
        with conn.cursor().copy(statement) as stream:
            for offset in range(0, len(data), 1 << 20):
                stream.write(data[offset : offset + (1 << 20)])
        seconds = time.perf_counter() - started
        conn.rollback()
    return seconds


def run_import(app: Flask, admin: Caller, data: bytes) -> tuple[float, dict[str, Any]]:
    """Upload and start as the admin (not timed), then the job as a worker runs it."""
    from flask_login import login_user

    from core import jobs
    from core.customers import imports
    from core.db import db
    from core.tenancy import tenant_context

    tenant = tenant_of(app)
    with app.test_request_context(), tenant_context(tenant):
        user = db.session.merge(admin.user)
        login_user(user)
        upload_id = imports.save_upload(data)
        mapping = imports.guess_mapping(imports.headers(upload_id))
        assert sorted(mapping.values()) == sorted(COPY_COLUMNS), mapping
        job = imports.start(upload_id, mapping, user=user)
        job_id = str(job.id)
        db.session.remove()
    with app.app_context():
        started = time.perf_counter()
        status = jobs.run(tenant.id, job_id)
        seconds = time.perf_counter() - started
        with tenant_context(tenant):
            result = imports.get_import(job_id).result or {}
            db.session.remove()
        jobs.queue("bulk").empty()  # the message the commit pushed: nobody will take it
    assert status == "finished", status
    return seconds, result


# --- Report -------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report_search(label: str, samples: dict[str, list[float]]) -> tuple[float, float]:
    pk = samples.pop("pk")
    every = [ms for kind in samples if kind != TYPO for ms in samples[kind]]
    print(f"\nsearch as the {label}: {len(every)} searches, {len(pk)} fetches by id (ms)")
    print(f"  {'kind of query':<30} {'n':>5} {'p50':>7} {'p95':>7} {'max':>7}  p95/pk p95")
    pk95 = percentile(pk, 0.95)
    for kind, values in [*samples.items(), ("all searches", every), ("fetch by id (pk)", pk)]:
        p95 = percentile(values, 0.95)
        print(
            f"  {kind:<30} {len(values):>5} {percentile(values, 0.5):>7.2f} {p95:>7.2f}"
            f" {max(values):>7.2f}  {p95 / pk95:>6.2f}"
        )
    return percentile(every, 0.95), pk95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the query mix")
    parser.add_argument("--per-kind", type=int, default=12, help="queries of each kind")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--quick", action="store_true", help="100,000 customers, 10,000 imported")
    parser.add_argument("--reuse", action="store_true", help="keep an earlier run's seeding")
    parser.add_argument(
        "--only", choices=("search", "pages", "import"), action="append", help="measure only"
    )
    args = parser.parse_args()
    if args.quick:
        args.customers, args.import_rows, args.rounds = 100_000, 10_000, 3
    only = set(args.only or ("search", "pages", "import"))
    started = time.perf_counter()
    name = make_url(database_url()).database
    print(f"database {name}, redis {redis_url()}", flush=True)
    uploads = tempfile.TemporaryDirectory(prefix="pb-bench-customers-")
    existing = seeded_count() if args.reuse else None
    if existing is not None and existing[0] == args.customers:
        app = bench_app(uploads.name)
        print(f"reusing {existing[0]:,} seeded customers", flush=True)
        forget_imported(app, existing[1])
        seed_seconds = None
    else:
        recreate_database()
        app = bench_app(uploads.name)
        print("provisioning the tenant and 200 agents", flush=True)
        provision(app)
        print(f"seeding {args.customers:,} customers by COPY", flush=True)
        seed_seconds = seed(app, args.customers, args.seed)
        print(f"  seeded in {seed_seconds:.0f} s", flush=True)
    admin, agent = callers(app)
    results: list[tuple[str, bool]] = []
    if "search" in only:
        for caller in (admin, agent):
            queries = sample_queries(app, caller, args.per_kind, args.seed + 7)
            samples = measure_search(app, caller, queries, args.rounds, args.seed + 11)
            p95, pk95 = report_search(caller.label, samples)
            ratio = p95 / pk95
            results.append(
                (
                    f"search p95 / fetch-by-id p95 as the {caller.label}: {ratio:.2f}"
                    f" ({p95:.2f} / {pk95:.2f} ms), target at most {SEARCH_RATIO_TARGET:g}",
                    ratio <= SEARCH_RATIO_TARGET,
                )
            )
    if "pages" in only:
        first, far, page = measure_pages(app, admin, PAGE, args.rounds)
        ratio = far / first
        print(
            f"\nkeyset pages of the whole book ({queries_page_size()} a page), medians:"
            f" page 1 {first:.2f} ms, page {page:,} {far:.2f} ms"
        )
        results.append(
            (
                f"page {page:,} / page 1: {ratio:.2f}, target at most {PAGE_RATIO_TARGET:g}",
                ratio <= PAGE_RATIO_TARGET,
            )
        )
    if "import" in only:
        tenant = tenant_of(app)
        data = import_file(args.import_rows, args.seed + 13)
        copies = [raw_copy(tenant.schema, data) for _ in range(3)]
        vacuum(tenant.schema)
        seconds, result = run_import(app, admin, data)
        copy_rate = args.import_rows / min(copies)
        import_rate = args.import_rows / seconds
        print(
            f"\nimport of {args.import_rows:,} rows ({len(data) / 1e6:.1f} MB CSV):"
            f" job {seconds:.1f} s = {import_rate:,.0f} rows/s"
            f" (created {result.get('created'):,}, skipped {result.get('skipped'):,} as"
            f" duplicates, failed {result.get('failed'):,});"
            f" raw COPY {min(copies):.2f} s = {copy_rate:,.0f} rows/s"
            f" (runs: {', '.join(f'{c:.2f}' for c in copies)} s)"
        )
        share = import_rate / copy_rate
        results.append(
            (
                f"import rate / raw COPY rate: {share:.0%}, target at least"
                f" {IMPORT_SHARE_TARGET:.0%}",
                share >= IMPORT_SHARE_TARGET,
            )
        )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\n{args.customers:,} customers, {os.cpu_count()} CPUs, load average now {load};"
        f" bench took {time.perf_counter() - started:.0f} s"
        + (f" (seeding {seed_seconds:.0f} s)" if seed_seconds else "")
    )
    for line, ok in results:
        print(f"{verdict(ok)}  {line}")
    uploads.cleanup()


def queries_page_size() -> int:
    from core.customers.queries import PAGE_SIZE

    return PAGE_SIZE


if __name__ == "__main__":
    main()
