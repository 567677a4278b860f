"""The HTTP service: the engine behind FastAPI, with API keys, roles, metrics and a live dashboard."""
