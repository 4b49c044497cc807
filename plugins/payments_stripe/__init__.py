"""In-tree plugin payments_stripe."""
