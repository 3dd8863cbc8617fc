"""Backend-for-frontend: the download page and a streaming proxy in front of the export APIs.

``GET /`` serves the page; ``GET /exports/<report id>?...`` relays an API's
``/export/<report id>?...`` chunk by chunk, cutting the upstream request the moment its own
client goes away; ``GET /reports`` relays the API's report catalog. With several APIs,
``bff.balancer`` picks one per request and ``bff.health`` checks each one's readiness in the
background. ``bff.app.BffApp`` is the handler, ``bff.app.start_server`` runs it, and
``python -m bff`` reads the configuration (``bff.config``) from flags and the environment.
"""
