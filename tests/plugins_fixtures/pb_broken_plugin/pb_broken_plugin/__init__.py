"""A plugin whose dependency is not installed: importing it fails."""

import pb_missing_dependency  # noqa: F401
