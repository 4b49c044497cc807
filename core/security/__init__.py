"""Users, roles and login. Each tenant's users live in its own schema."""
