"""Backend-for-frontend: the download page and a streaming proxy in front of the export APIs.

``GET /`` serves the page; ``GET /reports`` relays the API's report catalog, from which the
page builds its form; ``GET /exports/<report id>?...`` relays an API's
``/export/<report id>?...`` chunk by chunk, cutting the upstream request the moment its own
client goes away; ``POST /exports/ticket`` and ``GET /exports/status/<ticket>`` let the page
follow its own download (state, bytes, the rows the API has read). With several APIs,
``bff.balancer`` picks one per request and ``bff.health`` checks each one's readiness in the
background. ``bff.app.BffApp`` is the handler, ``bff.app.start_server`` runs it, and
``python -m bff`` reads the configuration (``bff.config``) from flags and the environment.

Modules, from the edge inwards:

- ``__main__``: flags and environment -> :class:`~bff.config.BffConfig`; signals.
- ``config``: the configuration's frozen record and its table of options.
- ``app``: :class:`~bff.app.BffApp`: the dispatch table, the handlers, start-up and shutdown.
- ``routes``: the URL space under ``/exports/`` and ``/reports``, and the API paths it maps to.
- ``page``: the download page's three static files, served with strict headers.
- ``access``: who may use the downloads and the catalog, and how a refusal reads.
- ``cors``: the CORS allowlist.
- ``auth``: the optional bearer-token check.
- ``limits``: the per-client cap on concurrent downloads.
- ``errors``: the BFF's exceptions.
- ``metrics``: the counters of ``GET /metrics`` (Prometheus text).
- ``downloads``: the page's download tickets and what each download's state is.
- ``progress``: the rows of a tracked download, asked of the API that serves it.
- ``catalog``: ``GET``/``HEAD /reports``: the API's report catalog, relayed whole.
- ``balancer``: which API a download goes to: what each is known to be, which is tried first.
- ``health``: the background ``/readyz`` check of each API, fed to the balancer.
- ``proxy``: talking to the APIs: one client session, header filtering, the chunk relay.
"""
