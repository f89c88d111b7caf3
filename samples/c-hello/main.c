/*
 * c-hello: the C twin of samples/hello. Answers every request with a short plain-text
 * greeting through the C SDK (sdk/c/wasmsrv.h).
 *
 *   just c                 # rebuilds main.wasm (bash sdk/c/build.sh)
 *   wasmsrv run samples/c-hello/main.wasm
 */
#include "../../sdk/c/wasmsrv.h"

static const char greeting[] = "Hello from wasmsrv!\n";

static int hello(wasmsrv_request *req, wasmsrv_response *resp) {
    (void)req;
    wasmsrv_resp_header(resp, "Content-Type", "text/plain; charset=utf-8");
    return wasmsrv_resp_end(resp, greeting, sizeof greeting - 1);
}

WASMSRV_HANDLER(hello)
