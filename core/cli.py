"""The `powerbuyer` command: the Flask CLI with the components' command groups."""

from __future__ import annotations

from flask.cli import FlaskGroup

from core.app import create_app


def main() -> None:
    cli = FlaskGroup(create_app=lambda: create_app(), help="Power Buyer operations.")
    cli.main(prog_name="powerbuyer")
