/*
 * A wasmsrv app in C on the single-header SDK (wasmsrv.h, written beside this file
 * by `wasmsrv new`; see its comments for the whole API). It answers every request
 * with a greeting naming the path.
 *
 *   wasmsrv run .        # compiles with clang --target=wasm32-wasi -mexec-model=reactor
 *   curl localhost:8080/you
 */
#include "wasmsrv.h"

static int hello(wasmsrv_request *req, wasmsrv_response *resp) {
    static const char prefix[] = "Hello from C! You asked for ";
    char body[512];
    size_t n = sizeof prefix - 1;
    memcpy(body, prefix, n);
    size_t path = req->path.len < sizeof body - n - 1 ? req->path.len : sizeof body - n - 1;
    memcpy(body + n, req->path.ptr, path);
    n += path;
    body[n++] = '\n';
    wasmsrv_resp_header(resp, "Content-Type", "text/plain; charset=utf-8");
    return wasmsrv_resp_end(resp, body, n);
}

WASMSRV_HANDLER(hello)
