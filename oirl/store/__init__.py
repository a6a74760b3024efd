"""Persistence: SQLAlchemy models, engines, migrations and repositories. Knows nothing of the maths."""
