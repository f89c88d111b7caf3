/*
 * c-hostile: a guest that breaks the plugin ABIs on purpose, one way per path, for
 * the plugin tests. Every one of these must cost the guest its instance (a trap) or
 * get a status code back, and never touch the host.
 */
#include "../../sdk/c/wasmsrv.h"
#include "../../sdk/c/wasmsrv_plugins.h"

#include <stdio.h>

static int path_is(wasmsrv_request *req, const char *p) {
    size_t n = strlen(p);
    return req->path.len == n && memcmp(req->path.ptr, p, n) == 0;
}

static int hostile(wasmsrv_request *req, wasmsrv_response *resp) {
    char buf[64];
    char out[64];
    long long r = 0;
    void *far = (void *)(uintptr_t)0xfffffff0u; /* past the end of linear memory */
    if (path_is(req, "/kv-key-oob")) {
        r = wasmsrv_kv_get(far, 100, buf, sizeof buf);
    } else if (path_is(req, "/kv-buf-oob")) {
        wasmsrv_kv_set("k", 1, "v", 1, 0);
        r = wasmsrv_kv_get("k", 1, far, 4096);
    } else if (path_is(req, "/kv-huge-len")) {
        r = wasmsrv_kv_set("k", 1, buf, 0x7fffffff, 0);
    } else if (path_is(req, "/kv-bad-flags")) {
        r = wasmsrv_kv_cas("k", 1, "v", 1, "w", 1, 0x40, 0);
    } else if (path_is(req, "/kv-neg-ttl")) {
        r = wasmsrv_kv_set("k", 1, "v", 1, -5);
    } else if (path_is(req, "/ps-bad-handle")) {
        r = wasmsrv_pubsub_receive(999, buf, sizeof buf, 0);
    } else if (path_is(req, "/ps-notify-bad-handle")) {
        r = wasmsrv_pubsub_notify(999, 0, 1);
    } else if (path_is(req, "/ps-notify-sync")) {
        /* A sync guest has no events: notify is refused, receive waits instead. */
        int32_t s = wasmsrv_pubsub_subscribe("t", 1);
        r = wasmsrv_pubsub_notify(s, 12345, 1);
        wasmsrv_pubsub_unsubscribe(s);
    } else if (path_is(req, "/http-bad-handle")) {
        r = wasmsrv_http_response(12345, buf, sizeof buf);
    } else if (path_is(req, "/http-garbage")) {
        r = wasmsrv_http_send("\xff\xff\xff\x7f", 4, NULL, 0);
    } else if (path_is(req, "/log-garbage")) {
        r = wasmsrv_log_write(0, "m", 1, "\x05\x00\x00\x00ab", 6);
    } else if (path_is(req, "/config-oob")) {
        r = wasmsrv_config_keys(far, 1000);
    } else if (path_is(req, "/ok")) {
        r = 0;
    } else {
        return 404;
    }
    int n = snprintf(out, sizeof out, "%lld", r);
    return wasmsrv_resp_end(resp, out, (size_t)n);
}

WASMSRV_HANDLER(hostile)
