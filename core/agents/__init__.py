"""The agents module (issue 4)."""
