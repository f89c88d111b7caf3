/*
 * The ABI conformance app in C (sdk/c/wasmsrv.h). abi/conformance/README.md
 * defines its routes; gonative/ and gohttp/ implement the same app in Go, and the
 * conformance test runs one table of HTTP scenarios against all three.
 *
 * Rebuild: bash sdk/c/build.sh
 */
#include <stdio.h>
#include <time.h>

#include "../../../sdk/c/wasmsrv.h"

static int has_prefix(wasmsrv_str s, const char *p) {
    size_t n = strlen(p);
    return s.len >= n && memcmp(s.ptr, p, n) == 0;
}

/* Parses a decimal number after prefix in s ("size=7"); -1 if absent or malformed. */
static long num_after(wasmsrv_str s, const char *prefix) {
    size_t n = strlen(prefix);
    if (s.len <= n || memcmp(s.ptr, prefix, n) != 0) return -1;
    long v = 0;
    for (uint32_t i = n; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9' || v > 100000000) return -1;
        v = v * 10 + (s.ptr[i] - '0');
    }
    return v;
}

/* A small append-only text buffer for /req. */
typedef struct {
    char *p;
    uint32_t len, cap;
} text;

static int put(text *t, const char *s, uint32_t n) {
    if (t->len + n > t->cap) {
        uint32_t c = t->cap ? t->cap : 1024;
        while (c < t->len + n) c *= 2;
        char *q = realloc(t->p, c);
        if (!q) return -1;
        t->p = q;
        t->cap = c;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    return 0;
}
static int puts_(text *t, const char *s) { return put(t, s, (uint32_t)strlen(s)); }
static int putstr(text *t, wasmsrv_str s) { return put(t, s.ptr, s.len); }

static text out;

/* Set by the start hook (SPEC §6), which runs before the instance takes traffic. */
static int started;

static int on_start(void) {
    started = 1;
    return 0;
}

static int text_plain(wasmsrv_response *resp) {
    return wasmsrv_resp_header(resp, "Content-Type", "text/plain; charset=utf-8");
}

static int route_req(wasmsrv_request *req, wasmsrv_response *resp) {
    char num[64];
    out.len = 0;
    puts_(&out, "method=");
    putstr(&out, req->method);
    puts_(&out, "\npath=");
    putstr(&out, req->path);
    puts_(&out, "\nquery=");
    putstr(&out, req->query);
    puts_(&out, "\nroot=");
    putstr(&out, req->root_path);
    snprintf(num, sizeof num, "\nproto=HTTP/%d.%d\ncontent-length=%lld\n", req->proto_major, req->proto_minor,
             (long long)req->content_length);
    puts_(&out, num);
    uint32_t it = 0;
    wasmsrv_header h;
    while (wasmsrv_header_next(req, &it, &h)) {
        if (!has_prefix(h.name, "x-")) continue;
        puts_(&out, "h:");
        putstr(&out, h.name);
        puts_(&out, "=");
        putstr(&out, h.value);
        puts_(&out, "\n");
    }
    text_plain(resp);
    return wasmsrv_resp_end(resp, out.p, out.len);
}

/* Streams the body back, reading at most size bytes at a time. */
static int route_echo(wasmsrv_request *req, wasmsrv_response *resp, uint32_t size) {
    static uint8_t buf[65536];
    if (size == 0 || size > sizeof buf) return 400;
    wasmsrv_resp_header(resp, "Content-Type", "application/octet-stream");
    for (;;) {
        int64_t n = wasmsrv_body_read(req, buf, size);
        if (n < 0) return n == WASMSRV_ERR_TOO_LARGE ? 413 : -1;
        if (n == 0) break;
        if ((uint64_t)n > size) return -1; /* the host broke its contract */
        if (wasmsrv_resp_write_flags(resp, buf, (uint32_t)n, WASMSRV_NO_FLUSH) != 0) return -1;
    }
    return 0;
}

static int conform(wasmsrv_request *req, wasmsrv_response *resp) {
    wasmsrv_str path = req->path;
    long n;
    if (wasmsrv_str_eq(path, "/hello")) {
        text_plain(resp);
        return wasmsrv_resp_end(resp, "Hello from wasmsrv!\n", 20);
    }
    if (has_prefix(path, "/status/")) {
        wasmsrv_str code = {path.ptr + 8, path.len - 8};
        long c = num_after(code, "");
        if (c < 200 || c > 999) return 400;
        char body[32];
        int len = snprintf(body, sizeof body, "status %ld\n", c);
        wasmsrv_resp_status(resp, (int)c);
        text_plain(resp);
        if (c == 204 || c == 304) return wasmsrv_resp_end(resp, NULL, 0);
        return wasmsrv_resp_end(resp, body, (uint32_t)len);
    }
    if (has_prefix(path, "/return/")) {
        wasmsrv_str code = {path.ptr + 8, path.len - 8};
        return (int)num_after(code, "");
    }
    if (wasmsrv_str_eq(path, "/req") || has_prefix(path, "/req/")) return route_req(req, resp);
    if (wasmsrv_str_eq(path, "/echo")) return route_echo(req, resp, 65536);
    if (wasmsrv_str_eq(path, "/chunks")) {
        n = num_after(req->query, "size=");
        return n < 1 ? 400 : route_echo(req, resp, (uint32_t)n);
    }
    if (wasmsrv_str_eq(path, "/binary")) {
        uint8_t b[256];
        for (int i = 0; i < 256; i++) b[i] = (uint8_t)i;
        wasmsrv_resp_header(resp, "Content-Type", "application/octet-stream");
        return wasmsrv_resp_end(resp, b, sizeof b);
    }
    if (wasmsrv_str_eq(path, "/empty")) return 0;
    if (wasmsrv_str_eq(path, "/large")) {
        static uint8_t chunk[16384];
        n = num_after(req->query, "n=");
        if (n < 0) return 400;
        wasmsrv_resp_header(resp, "Content-Type", "application/octet-stream");
        for (long off = 0; off < n;) {
            uint32_t k = 0;
            for (; k < sizeof chunk && off < n; k++, off++) chunk[k] = (uint8_t)(off % 251);
            if (wasmsrv_resp_write_flags(resp, chunk, k, WASMSRV_NO_FLUSH) != 0) return -1;
        }
        return 0;
    }
    if (wasmsrv_str_eq(path, "/stream")) {
        n = num_after(req->query, "n=");
        if (n < 1 || n > 100) return 400;
        text_plain(resp);
        for (long i = 0; i < n; i++) {
            char line[32];
            int len = snprintf(line, sizeof line, "chunk %ld\n", i);
            if (wasmsrv_resp_write(resp, line, (uint32_t)len) != 0) return -1;
            if (i + 1 < n) {
                struct timespec ts = {0, 100 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
        }
        return 0;
    }
    if (wasmsrv_str_eq(path, "/resp-headers")) {
        wasmsrv_resp_header(resp, "X-Multi", "one");
        wasmsrv_resp_header(resp, "X-Multi", "two");
        wasmsrv_resp_header(resp, "X-Multi", "three");
        wasmsrv_resp_header(resp, "Set-Cookie", "a=1");
        wasmsrv_resp_header(resp, "Set-Cookie", "b=2");
        wasmsrv_resp_header(resp, "X-Bytes", "caf\xc3\xa9");
        text_plain(resp);
        return wasmsrv_resp_end(resp, "ok\n", 3);
    }
    if (wasmsrv_str_eq(path, "/replace")) {
        wasmsrv_resp_header(resp, "X-First", "1");
        wasmsrv_resp_reset_headers(resp);
        wasmsrv_resp_header(resp, "X-Second", "2");
        wasmsrv_resp_status(resp, 503);
        text_plain(resp);
        return wasmsrv_resp_end(resp, "replaced\n", 9);
    }
    if (wasmsrv_str_eq(path, "/started")) {
        text_plain(resp);
        return started ? wasmsrv_resp_end(resp, "started\n", 8) : wasmsrv_resp_end(resp, "not started\n", 12);
    }
    if (wasmsrv_str_eq(path, "/fail")) return -1;
    return 404;
}

WASMSRV_HANDLER(conform)
WASMSRV_ON_START(on_start)
