"""The Prompt-OIRL HTTP service (FastAPI), thin over the ``oirl`` library."""
