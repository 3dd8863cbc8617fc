"""Backend-for-frontend: the download page and a streaming proxy in front of the export API.

``GET /`` serves the page; ``GET /exports/report?...`` relays the API's
``/export/report?...`` chunk by chunk, cutting the upstream request the moment its own client
goes away. ``bff.app.BffApp`` is the handler, ``bff.app.start_server`` runs it, and
``python -m bff`` reads the configuration (``bff.config``) from flags and the environment.
"""
