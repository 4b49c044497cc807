"""Policies: quotes, binding and issue, versions (endorsements), renewals, cancellation."""
