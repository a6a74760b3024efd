"""Alembic environment and versions (shipped in the wheel so `oirl serve` can migrate)."""
