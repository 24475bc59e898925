"""Durable storage: SQLModel tables, the async engine, migrations and queries."""
