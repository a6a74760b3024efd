"""Benchmark files (fetch + verify), their loaders, and user log parsing."""
