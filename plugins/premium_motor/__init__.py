"""In-tree plugin premium_motor."""
