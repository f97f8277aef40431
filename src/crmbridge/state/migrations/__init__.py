"""Alembic migrations of the state store, applied by ``StateStore.open`` (no alembic.ini needed)."""
