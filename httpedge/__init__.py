"""What both services share: their HTTP edge, the way they read settings and their metrics' format.

The listener adds what a route handler cannot do: request-size limits, a header timeout, caps
on open connections (in all and per client address), bounded socket buffers, JSON answers to
requests that are not valid HTTP, and the way a download that failed half-way is broken off (a
TCP reset for HTTP/1.0).

Modules, from the edge inwards:

- ``listener``: aiohttp's low-level server with our limits, and JSON answers to invalid HTTP.
- ``request_id``: ``X-Request-ID`` accepted when well formed, else generated.
- ``forwarded``: the client's address behind trusted proxies (``X-Forwarded-For``).
- ``responses``: the JSON answers: ``{"error": {"message": ..., "code": ...}}`` and the rest.
- ``options``: one table of options per service: flag over environment variable over default.
- ``prometheus``: the Prometheus text format (0.0.4) that both services' ``/metrics`` answer in.
"""
