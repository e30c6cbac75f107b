"""GET /v1/models and /health (routes.py: no request body, so no protocol)."""
