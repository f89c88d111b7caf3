/*
 * c-counter: the C twin of samples/counter, through sdk/c/wasmsrv_plugins.h. Every
 * request adds one to "hits" with a compare-and-swap loop and answers the total; it
 * logs through the log plugin. Built by the plugin tests with clang.
 */
#include "../../sdk/c/wasmsrv.h"
#include "../../sdk/c/wasmsrv_plugins.h"

#include <stdio.h>

static int counter(wasmsrv_request *req, wasmsrv_response *resp) {
    (void)req;
    char old[32], next[32];
    unsigned long long n;
    for (;;) {
        int64_t got = wasmsrv_kv_get("hits", 4, old, sizeof old - 1);
        int32_t rc;
        int len;
        if (got == WASMSRV_ERR_NOT_FOUND) {
            n = 0;
            len = snprintf(next, sizeof next, "%llu", n + 1);
            rc = wasmsrv_kv_cas("hits", 4, NULL, 0, next, (size_t)len, WASMSRV_KV_OLD_ABSENT, 0);
        } else if (got < 0 || got >= (int64_t)sizeof old) {
            return 503;
        } else {
            old[got] = 0;
            n = strtoull(old, NULL, 10);
            len = snprintf(next, sizeof next, "%llu", n + 1);
            rc = wasmsrv_kv_cas("hits", 4, old, (size_t)got, next, (size_t)len, 0, 0);
        }
        if (rc == WASMSRV_OK) break;
        if (rc != WASMSRV_ERR_CONFLICT) return 503;
    }
    uint8_t attrs[64];
    size_t off = 0;
    wasmsrv_item(attrs, sizeof attrs, &off, "count", 5);
    wasmsrv_item(attrs, sizeof attrs, &off, next, strlen(next));
    wasmsrv_log(WASMSRV_LOG_INFO, "c hit", 5, attrs, off);
    wasmsrv_resp_header(resp, "content-type", "text/plain");
    strcat(next, "\n");
    return wasmsrv_resp_end(resp, next, strlen(next));
}

WASMSRV_HANDLER(counter)
