"""The customers module (issue 4)."""
