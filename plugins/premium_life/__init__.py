"""In-tree plugin premium_life."""
