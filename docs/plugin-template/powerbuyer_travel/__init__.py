"""Single-trip travel insurance: a Power Buyer product line in its own distribution."""
