"""WSGI twin of samples/hello for the benchmark: same body, same Content-Type."""

BODY = b"Hello from wasmsrv!\n"
HEADERS = [
    ("Content-Type", "text/plain; charset=utf-8"),
    ("Content-Length", str(len(BODY))),
]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
