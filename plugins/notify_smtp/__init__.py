"""In-tree plugin notify_smtp: the default email channel."""
