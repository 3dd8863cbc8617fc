"""The HTTP edge both services share: what every request meets before a route does.

- ``responses``: the JSON answers, ``{"error": {"message": ..., "code": ...}}`` included.
- ``listener``: the aiohttp low-level server with request-size limits, a header timeout, a
  cap on open connections, JSON answers to requests that are not valid HTTP, and the way a
  download that failed half-way is broken off (a TCP reset for HTTP/1.0).
- ``request_id``: ``X-Request-ID`` accepted when well formed, else generated.
- ``forwarded``: the client's address behind trusted proxies (``X-Forwarded-For``).
"""
