/*
 * c-sockets: the sockets plugin from C, through sdk/c/wasmsrv_plugins.h, for the
 * plugin tests (built with clang there). /ping?addr=HOST:PORT talks to the test's
 * line server; every other path breaks the ABI one way, written from
 * plugins/sockets/ABI.md alone: each must cost the guest its instance (a trap) or
 * get a status code back, and never touch the host.
 */
#include "../../../sdk/c/wasmsrv.h"
#include "../../../sdk/c/wasmsrv_plugins.h"

#include <stdio.h>

static int path_is(wasmsrv_request *req, const char *p) {
    size_t n = strlen(p);
    return req->path.len == n && memcmp(req->path.ptr, p, n) == 0;
}

static char big[4096];

static int reply(wasmsrv_response *resp, long long r) {
    char out[32];
    int n = snprintf(out, sizeof out, "%lld", r);
    return wasmsrv_resp_end(resp, out, (size_t)n);
}

static int handler(wasmsrv_request *req, wasmsrv_response *resp) {
    void *far = (void *)(uintptr_t)0xfffffff0u; /* past the end of linear memory */
    const char *addr = "";
    size_t addr_len = 0;
    if (req->query.len > 5 && memcmp(req->query.ptr, "addr=", 5) == 0) {
        addr = req->query.ptr + 5;
        addr_len = req->query.len - 5;
    }
    if (path_is(req, "/ping")) {
        int64_t h = wasmsrv_sockets_connect(addr, addr_len, 0, NULL, 0, 0);
        if (h < 0) return reply(resp, h);
        int32_t rc = wasmsrv_sockets_write_all((int32_t)h, "ping\n", 5);
        if (rc < 0) return reply(resp, rc);
        char line[16];
        size_t got = 0;
        while (got < sizeof line && (got == 0 || line[got - 1] != '\n')) {
            int64_t n = wasmsrv_sockets_read_wait((int32_t)h, line + got, sizeof line - got);
            if (n <= 0) return reply(resp, n);
            got += (size_t)n;
        }
        char peer[64];
        int64_t pn = wasmsrv_sockets_addr((int32_t)h, 1, peer, sizeof peer);
        wasmsrv_sockets_close((int32_t)h);
        if (pn < 0 || (size_t)pn != addr_len || memcmp(peer, addr, addr_len) != 0) return reply(resp, -100);
        return wasmsrv_resp_end(resp, line, got - 1);
    }
    /* Each of these gets a status back. */
    if (path_is(req, "/long-addr")) {
        memset(big, 'a', 600);
        return reply(resp, wasmsrv_sockets_connect(big, 600, 0, NULL, 0, 0));
    }
    if (path_is(req, "/long-name")) {
        memset(big, 'a', 300);
        return reply(resp, wasmsrv_sockets_connect(addr, addr_len, WASMSRV_SOCKETS_TLS, big, 300, 0));
    }
    if (path_is(req, "/bad-flags")) return reply(resp, wasmsrv_sockets_connect(addr, addr_len, 8, NULL, 0, 0));
    if (path_is(req, "/both-families"))
        return reply(resp, wasmsrv_sockets_connect(addr, addr_len, WASMSRV_SOCKETS_IPV4 | WASMSRV_SOCKETS_IPV6, NULL, 0, 0));
    if (path_is(req, "/name-without-tls")) return reply(resp, wasmsrv_sockets_connect(addr, addr_len, 0, "x", 1, 0));
    if (path_is(req, "/garbage-addr")) return reply(resp, wasmsrv_sockets_connect("\xff\x00:1", 4, 0, NULL, 0, 0));
    if (path_is(req, "/calls-on-open")) {
        /* Bad arguments on a good handle, in one request: one status per call. */
        int64_t h = wasmsrv_sockets_connect(addr, addr_len, 0, NULL, 0, 0);
        if (h < 0) return reply(resp, h);
        int32_t a = wasmsrv_sockets_set_deadline((int32_t)h, 4, 0);
        int32_t b = wasmsrv_sockets_notify((int32_t)h, 3, 0, 1);
        int32_t c = wasmsrv_sockets_notify((int32_t)h, WASMSRV_SOCKETS_READ, 0, 1); /* sync: unsupported */
        int32_t d = wasmsrv_sockets_wait((int32_t)h, WASMSRV_SOCKETS_READ);         /* sync: 0 at once */
        int64_t e = wasmsrv_sockets_addr((int32_t)h, 2, big, sizeof big);
        int64_t f = wasmsrv_sockets_read((int32_t)h, big, 0);
        int32_t g = wasmsrv_sockets_shutdown((int32_t)h);
        int64_t i = wasmsrv_sockets_write((int32_t)h, "x", 1); /* after shutdown */
        int32_t j = wasmsrv_sockets_starttls((int32_t)h, NULL, 0); /* after shutdown */
        wasmsrv_sockets_close((int32_t)h);
        char out[128];
        int n = snprintf(out, sizeof out, "%d %d %d %d %lld %lld %d %lld %d", a, b, c, d, (long long)e, (long long)f, g,
                         (long long)i, j);
        return wasmsrv_resp_end(resp, out, (size_t)n);
    }
    /* Each of these traps. */
    if (path_is(req, "/connect-addr-oob")) return reply(resp, wasmsrv_sockets_connect(far, 100, 0, NULL, 0, 0));
    if (path_is(req, "/connect-name-oob"))
        return reply(resp, wasmsrv_sockets_connect(addr, addr_len, WASMSRV_SOCKETS_TLS, far, 100, 0));
    if (path_is(req, "/connect-huge-len")) return reply(resp, wasmsrv_sockets_connect(big, 0x7fffffff, 0, NULL, 0, 0));
    if (path_is(req, "/read-bad-handle")) return reply(resp, wasmsrv_sockets_read(999, big, sizeof big));
    if (path_is(req, "/write-zero-handle")) return reply(resp, wasmsrv_sockets_write(0, "x", 1));
    if (path_is(req, "/close-twice")) {
        int64_t h = wasmsrv_sockets_connect(addr, addr_len, 0, NULL, 0, 0);
        if (h < 0) return reply(resp, h);
        wasmsrv_sockets_close((int32_t)h);
        return reply(resp, wasmsrv_sockets_close((int32_t)h));
    }
    if (path_is(req, "/read-oob") || path_is(req, "/write-oob") || path_is(req, "/addr-oob") ||
        path_is(req, "/read-huge")) {
        int64_t h = wasmsrv_sockets_connect(addr, addr_len, 0, NULL, 0, 0);
        if (h < 0) return reply(resp, h);
        if (path_is(req, "/read-oob")) return reply(resp, wasmsrv_sockets_read((int32_t)h, far, 4096));
        if (path_is(req, "/write-oob")) return reply(resp, wasmsrv_sockets_write((int32_t)h, far, 4096));
        if (path_is(req, "/addr-oob")) return reply(resp, wasmsrv_sockets_addr((int32_t)h, 0, far, 100));
        return reply(resp, wasmsrv_sockets_read((int32_t)h, big, 0x7fffffff));
    }
    if (path_is(req, "/ok")) return reply(resp, 0);
    return 404;
}

WASMSRV_HANDLER(handler)
