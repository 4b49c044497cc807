"""The `powerbuyer` command: the Flask CLI with the components' command groups."""

from __future__ import annotations

from flask.cli import FlaskGroup, routes_command, shell_command

from core.app import create_app


def main() -> None:
    # Flask's built-in `run` would win over the app's own `powerbuyer run` (web/cli.py),
    # which starts the whole stack, so the defaults are added back without it.
    cli = FlaskGroup(
        create_app=lambda: create_app(), add_default_commands=False, help="Power Buyer operations."
    )
    cli.add_command(shell_command)
    cli.add_command(routes_command)
    cli.main(prog_name="powerbuyer")


if __name__ == "__main__":
    main()
