"""Pydantic models for every request and response body (the OpenAPI document is built from them)."""
