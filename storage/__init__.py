"""Persistence for feedwatch: SQLAlchemy schema, engine setup, intent-named queries, migrations."""
