"""Products: the lines a brokerage sells (from plugins), their versions and rate tables."""
