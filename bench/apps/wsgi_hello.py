"""WSGI twins for the benchmark: app of samples/hello (same body, same
Content-Type), upload of bench/apps/upload (reads the request body first)."""

BODY = b"Hello from wasmsrv!\n"
HEADERS = [
    ("Content-Type", "text/plain; charset=utf-8"),
    ("Content-Length", str(len(BODY))),
]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]


def upload(environ, start_response):
    stream = environ["wsgi.input"]
    while stream.read(65536):
        pass
    return app(environ, start_response)
