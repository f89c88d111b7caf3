"""WSGI twin of bench/apps/upload: read the body to its end, then answer hello."""

BODY = b"Hello from wasmsrv!\n"
HEADERS = [
    ("Content-Type", "text/plain; charset=utf-8"),
    ("Content-Length", str(len(BODY))),
]


def app(environ, start_response):
    stream = environ["wsgi.input"]
    while stream.read(65536):
        pass
    start_response("200 OK", HEADERS)
    return [BODY]
