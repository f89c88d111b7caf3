/*
 * wasmsrv.h - single-header C SDK for the wasmsrv gateway ABI v1 (sync and async shapes).
 *
 * The normative contract is abi/SPEC.md in the wasmsrv repository; this header is one
 * implementation of it. Nothing else is needed: include it, write a handler, name it
 * with WASMSRV_HANDLER, and build a reactor with Debian's clang and wasi-libc:
 *
 *   clang --target=wasm32-wasi -mexec-model=reactor -O2 -o app.wasm app.c
 *
 * (packages: clang lld wasi-libc libclang-rt-14-dev-wasm32).
 *
 * A complete app:
 *
 *   #include "wasmsrv.h"
 *
 *   static int hello(wasmsrv_request *req, wasmsrv_response *resp) {
 *       wasmsrv_resp_header(resp, "content-type", "text/plain; charset=utf-8");
 *       return wasmsrv_resp_end(resp, "Hello from wasmsrv!\n", 20);
 *   }
 *   WASMSRV_HANDLER(hello)
 *
 * Model. The host calls the handler once per request, one request at a time per
 * instance (gunicorn's sync worker). Calls into the host may block. Strings handed to
 * the handler (method, path, header names and values...) are byte ranges, not
 * NUL-terminated, and stay valid until the handler returns. Header names arrive in
 * lower case, with order and duplicates kept.
 *
 * The response head (status and headers) is collected in the SDK and handed to the
 * host at the first body write, so it can be changed until then. Every write is
 * flushed to the client before it returns (streaming and Server-Sent Events work)
 * unless WASMSRV_NO_FLUSH is given. When the handler returns, the response is
 * finished: a response whose only write carried WASMSRV_END gets a Content-Length
 * from the host.
 *
 * Handler result: 0 = handled; 100..599 with nothing written = the host answers that
 * status with an empty body (handy for 404/405); anything else = application error
 * (500, or a cut response when bytes were already sent).
 *
 * Lifespan hooks (optional): WASMSRV_ON_START(fn) and WASMSRV_ON_STOP(fn) with
 * `int fn(void)`; non-zero from the start hook keeps the instance out of rotation.
 *
 * The async shape (SPEC §8) is available as callbacks: #define WASMSRV_ASYNC before
 * including this header, then see the "Async shape" section below.
 *
 * Everything here is static inline except what WASMSRV_HANDLER defines, so the header
 * may be included from several translation units; WASMSRV_HANDLER must appear in
 * exactly one.
 */
#ifndef WASMSRV_H
#define WASMSRV_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes (SPEC §2). */
#define WASMSRV_OK 0
#define WASMSRV_ERR_CLOSED (-1)
#define WASMSRV_ERR_WOULD_BLOCK (-2)
#define WASMSRV_ERR_BAD_ARGUMENT (-3)
#define WASMSRV_ERR_UNSUPPORTED (-4)
#define WASMSRV_ERR_STATE (-5)
#define WASMSRV_ERR_TOO_LARGE (-6)
#define WASMSRV_ERR_TIMEOUT (-7)
/* SDK-only: memory for a buffer could not be had. */
#define WASMSRV_ERR_NOMEM (-100)

/* resp_write flags. */
#define WASMSRV_END 1
#define WASMSRV_NO_FLUSH 2

/* host_features bits. */
#define WASMSRV_FEATURE_WEBSOCKET 1ull
#define WASMSRV_FEATURE_ASYNC 2ull

/* Request kinds and head flags. */
#define WASMSRV_KIND_HTTP 0
#define WASMSRV_KIND_WEBSOCKET 1
#define WASMSRV_FLAG_TLS 1u

/* ---- Raw host functions (SPEC §4). Prefer the wrappers below. ---- */

#define WASMSRV__IMPORT(name) __attribute__((import_module("wasmsrv"), import_name(name)))

WASMSRV__IMPORT("req_head")
int32_t wasmsrv_abi_req_head(uint32_t ctx, void *buf, uint32_t limit);
WASMSRV__IMPORT("body_read")
int64_t wasmsrv_abi_body_read(uint32_t ctx, void *buf, uint32_t limit);
WASMSRV__IMPORT("resp_start")
int32_t wasmsrv_abi_resp_start(uint32_t ctx, int32_t status, const void *hdr, uint32_t hdr_len);
WASMSRV__IMPORT("resp_write")
int32_t wasmsrv_abi_resp_write(uint32_t ctx, const void *ptr, uint32_t len, int32_t flags);
WASMSRV__IMPORT("disconnected")
int32_t wasmsrv_abi_disconnected(uint32_t ctx);
WASMSRV__IMPORT("host_features")
int64_t wasmsrv_abi_host_features(void);

/* ---- Types ---- */

/* A byte range; not NUL-terminated, may contain any byte. */
typedef struct {
    const char *ptr;
    uint32_t len;
} wasmsrv_str;

typedef struct {
    wasmsrv_str name;  /* lower case for request headers */
    wasmsrv_str value;
} wasmsrv_header;

/* A growable byte buffer that keeps its memory between requests. */
typedef struct {
    uint8_t *ptr;
    uint32_t len, cap;
} wasmsrv__buf;

typedef struct {
    uint32_t ctx;
    uint8_t kind;         /* WASMSRV_KIND_HTTP or WASMSRV_KIND_WEBSOCKET */
    uint8_t proto_major;  /* HTTP version */
    uint8_t proto_minor;
    uint32_t flags;       /* WASMSRV_FLAG_TLS */
    int64_t content_length; /* declared body length, -1 when unknown */
    wasmsrv_str method;
    wasmsrv_str scheme;
    wasmsrv_str path;      /* raw, still percent-encoded, no query, no root_path */
    wasmsrv_str query;     /* raw, without '?' */
    wasmsrv_str root_path; /* mount prefix the router stripped */
    wasmsrv_str authority; /* Host header or :authority */
    wasmsrv_str remote_addr;
    wasmsrv_str local_addr;
    wasmsrv_str request_id;
    uint32_t num_headers;
    /* private */
    const uint8_t *hdrs_;
    const uint8_t *end_;
    int eof_;
} wasmsrv_request;

typedef struct {
    uint32_t ctx;
    int status;      /* 0 until set: 200 */
    int head_sent;   /* resp_start succeeded and bytes went out */
    int done;        /* END written, or the client is gone */
    /* private */
    uint32_t nhdr_;
    wasmsrv__buf *hdr_;
} wasmsrv_response;

/* ---- Small helpers ---- */

static inline wasmsrv_str wasmsrv_cstr(const char *s) {
    wasmsrv_str r = {s, (uint32_t)strlen(s)};
    return r;
}

/* Byte equality with a C string. */
static inline int wasmsrv_str_eq(wasmsrv_str a, const char *b) {
    size_t n = strlen(b);
    return a.len == n && memcmp(a.ptr, b, n) == 0;
}

/* ASCII case-insensitive equality with a C string (for header names). */
static inline int wasmsrv_str_ieq(wasmsrv_str a, const char *b) {
    size_t n = strlen(b);
    if (a.len != n) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a.ptr[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z') x += 'a' - 'A';
        if (y >= 'A' && y <= 'Z') y += 'a' - 'A';
        if (x != y) return 0;
    }
    return 1;
}

static inline uint32_t wasmsrv__le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void wasmsrv__put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline int wasmsrv__reserve(wasmsrv__buf *b, uint32_t n) {
    if (n <= b->cap) return 0;
    uint32_t c = b->cap ? b->cap : 256;
    while (c < n) {
        if (c > UINT32_MAX / 2) return WASMSRV_ERR_NOMEM;
        c *= 2;
    }
    uint8_t *p = (uint8_t *)realloc(b->ptr, c);
    if (!p) return WASMSRV_ERR_NOMEM;
    b->ptr = p;
    b->cap = c;
    return 0;
}

/* Reads one u32-length-prefixed string at *p, bounded by end. */
static inline int wasmsrv__lstr(const uint8_t **p, const uint8_t *end, wasmsrv_str *out) {
    if (end - *p < 4) return -1;
    uint32_t n = wasmsrv__le32(*p);
    *p += 4;
    if ((uint32_t)(end - *p) < n) return -1;
    out->ptr = (const char *)*p;
    out->len = n;
    *p += n;
    return 0;
}

/* ---- Request ---- */

/*
 * Fetches and decodes the request head into req, using buf (kept between requests)
 * for storage. WASMSRV_HANDLER calls this; it is public for hand-written exports.
 * Returns 0 or a negative status.
 */
static inline int wasmsrv_request_load(wasmsrv_request *req, uint32_t ctx, wasmsrv__buf *buf) {
    int32_t n = wasmsrv_abi_req_head(ctx, buf->ptr, buf->cap);
    if (n < 0) return n;
    if ((uint32_t)n > buf->cap) {
        /* Needed-length protocol (SPEC §2): grow, ask again. */
        int rc = wasmsrv__reserve(buf, (uint32_t)n);
        if (rc) return rc;
        n = wasmsrv_abi_req_head(ctx, buf->ptr, buf->cap);
        if (n < 0) return n;
        if ((uint32_t)n > buf->cap) return WASMSRV_ERR_STATE;
    }
    buf->len = (uint32_t)n;
    const uint8_t *p = buf->ptr, *end = buf->ptr + n;
    if (n < 24 || p[0] != 1) return WASMSRV_ERR_BAD_ARGUMENT;
    memset(req, 0, sizeof *req);
    req->ctx = ctx;
    req->kind = p[1];
    req->proto_major = p[2];
    req->proto_minor = p[3];
    req->flags = wasmsrv__le32(p + 4);
    req->content_length = (int64_t)((uint64_t)wasmsrv__le32(p + 8) | (uint64_t)wasmsrv__le32(p + 12) << 32);
    uint32_t nf = wasmsrv__le32(p + 16);
    req->num_headers = wasmsrv__le32(p + 20);
    wasmsrv_str *fields[] = {&req->method,    &req->scheme,      &req->path,
                             &req->query,     &req->root_path,   &req->authority,
                             &req->remote_addr, &req->local_addr, &req->request_id};
    p += 24;
    for (uint32_t i = 0; i < nf; i++) {
        wasmsrv_str s;
        if (wasmsrv__lstr(&p, end, &s)) return WASMSRV_ERR_BAD_ARGUMENT;
        if (i < sizeof fields / sizeof fields[0]) *fields[i] = s; /* ignore newer fields */
    }
    req->hdrs_ = p;
    req->end_ = end;
    return 0;
}

/*
 * Iterates the request headers in order. Start with *it = 0; returns 1 and fills h
 * while there are headers, then 0.
 *
 *   uint32_t it = 0; wasmsrv_header h;
 *   while (wasmsrv_header_next(req, &it, &h)) { ... }
 */
static inline int wasmsrv_header_next(const wasmsrv_request *req, uint32_t *it, wasmsrv_header *h) {
    /* *it is a byte offset into the header pairs. */
    const uint8_t *p = req->hdrs_ + *it;
    if (p >= req->end_) return 0;
    if (wasmsrv__lstr(&p, req->end_, &h->name) || wasmsrv__lstr(&p, req->end_, &h->value)) return 0;
    *it = (uint32_t)(p - req->hdrs_);
    return 1;
}

/* Finds the first value of a header (name matched case-insensitively). Returns 1 if found. */
static inline int wasmsrv_header_get(const wasmsrv_request *req, const char *name, wasmsrv_str *value) {
    uint32_t it = 0;
    wasmsrv_header h;
    while (wasmsrv_header_next(req, &it, &h)) {
        if (wasmsrv_str_ieq(h.name, name)) {
            *value = h.value;
            return 1;
        }
    }
    return 0;
}

/*
 * Reads request body bytes into buf, blocking until some arrive. Returns the number of
 * bytes read (> 0), 0 at the end of the body, or a negative status:
 * WASMSRV_ERR_TOO_LARGE (over the host's limit: it answers 413 unless the response has
 * started), WASMSRV_ERR_CLOSED (client gone), WASMSRV_ERR_TIMEOUT.
 */
static inline int64_t wasmsrv_body_read(wasmsrv_request *req, void *buf, uint32_t limit) {
    if (limit == 0) return WASMSRV_ERR_BAD_ARGUMENT;
    while (!req->eof_) {
        int64_t r = wasmsrv_abi_body_read(req->ctx, buf, limit);
        if (r < 0) return r;
        uint32_t n = (uint32_t)r;
        if ((r >> 32) & 1) req->eof_ = 1;
        if (n > limit) return WASMSRV_ERR_STATE; /* a host bug; never trust it blindly */
        if (n > 0) return n;
    }
    return 0;
}

/* 1 when the client has gone away or the request deadline passed. */
static inline int wasmsrv_disconnected(const wasmsrv_request *req) {
    return wasmsrv_abi_disconnected(req->ctx) == 1;
}

/* Bitset of WASMSRV_FEATURE_* the host offers. */
static inline uint64_t wasmsrv_host_features(void) { return (uint64_t)wasmsrv_abi_host_features(); }

/* ---- Response ---- */

/* Sets the status code; only before the first write. Returns 0 or WASMSRV_ERR_STATE. */
static inline int wasmsrv_resp_status(wasmsrv_response *resp, int status) {
    if (resp->head_sent || resp->done) return WASMSRV_ERR_STATE;
    resp->status = status;
    return 0;
}

/* Adds a header (duplicates kept, in order), with explicit lengths. Only before the first write. */
static inline int wasmsrv_resp_header_n(wasmsrv_response *resp, const char *name, uint32_t name_len,
                                        const char *value, uint32_t value_len) {
    if (resp->head_sent || resp->done) return WASMSRV_ERR_STATE;
    wasmsrv__buf *b = resp->hdr_;
    if (b->len == 0) b->len = 4; /* room for the count */
    uint64_t need = (uint64_t)b->len + 8 + name_len + value_len;
    if (need > UINT32_MAX) return WASMSRV_ERR_NOMEM;
    int rc = wasmsrv__reserve(b, (uint32_t)need);
    if (rc) return rc;
    uint8_t *p = b->ptr + b->len;
    wasmsrv__put32(p, name_len);
    memcpy(p + 4, name, name_len);
    wasmsrv__put32(p + 4 + name_len, value_len);
    memcpy(p + 8 + name_len, value, value_len);
    b->len = (uint32_t)need;
    resp->nhdr_++;
    return 0;
}

/* Adds a header from two C strings. */
static inline int wasmsrv_resp_header(wasmsrv_response *resp, const char *name, const char *value) {
    return wasmsrv_resp_header_n(resp, name, (uint32_t)strlen(name), value, (uint32_t)strlen(value));
}

/* Drops every header added so far (e.g. to turn a 200 into a 500 before writing). */
static inline int wasmsrv_resp_reset_headers(wasmsrv_response *resp) {
    if (resp->head_sent || resp->done) return WASMSRV_ERR_STATE;
    resp->hdr_->len = 0;
    resp->nhdr_ = 0;
    return 0;
}

/*
 * Writes body bytes; the first write sends the head. flags: WASMSRV_END (last write),
 * WASMSRV_NO_FLUSH (the host may buffer). Returns 0, WASMSRV_ERR_CLOSED (client gone;
 * later writes are dropped), WASMSRV_ERR_STATE (after END) or WASMSRV_ERR_BAD_ARGUMENT
 * (invalid status or header).
 */
static inline int wasmsrv_resp_write_flags(wasmsrv_response *resp, const void *p, uint32_t n, int32_t flags) {
    if (resp->done) return WASMSRV_ERR_STATE;
    if (!resp->head_sent) {
        static const uint8_t empty[4] = {0, 0, 0, 0};
        const void *hdr = empty;
        uint32_t hdr_len = 4;
        if (resp->hdr_->len) {
            wasmsrv__put32(resp->hdr_->ptr, resp->nhdr_);
            hdr = resp->hdr_->ptr;
            hdr_len = resp->hdr_->len;
        }
        int32_t rc = wasmsrv_abi_resp_start(resp->ctx, resp->status ? resp->status : 200, hdr, hdr_len);
        if (rc != WASMSRV_OK) {
            if (rc != WASMSRV_ERR_BAD_ARGUMENT) resp->done = 1;
            return rc;
        }
        resp->head_sent = 1;
    }
    int32_t rc = wasmsrv_abi_resp_write(resp->ctx, p, n, flags);
#ifdef WASMSRV_ASYNC
    /* ERR_WOULD_BLOCK (async shape only) took nothing: the same write is retried
     * after WRITABLE, so the response stays open. (Only compiled in for async apps so
     * sync binaries stay byte-identical.) */
    if (rc == WASMSRV_ERR_WOULD_BLOCK) return rc;
#endif
    if (rc != WASMSRV_OK || (flags & WASMSRV_END)) resp->done = 1;
    return rc;
}

/* Writes and flushes body bytes. */
static inline int wasmsrv_resp_write(wasmsrv_response *resp, const void *p, uint32_t n) {
    return wasmsrv_resp_write_flags(resp, p, n, 0);
}

/* Writes a C string and flushes. */
static inline int wasmsrv_resp_write_str(wasmsrv_response *resp, const char *s) {
    return wasmsrv_resp_write_flags(resp, s, (uint32_t)strlen(s), 0);
}

/* Writes the last body bytes (may be none) and ends the response. */
static inline int wasmsrv_resp_end(wasmsrv_response *resp, const void *p, uint32_t n) {
    return wasmsrv_resp_write_flags(resp, p, n, WASMSRV_END);
}

/* ---- Glue: the exports ---- */

typedef int (*wasmsrv_handler_fn)(wasmsrv_request *req, wasmsrv_response *resp);

/*
 * Runs one request: WASMSRV_HANDLER's wasmsrv_handle export calls this with buffers
 * it keeps between requests.
 */
static inline int32_t wasmsrv_serve(uint32_t ctx, wasmsrv_handler_fn fn, wasmsrv__buf *head,
                                    wasmsrv__buf *hdr) {
    wasmsrv_request req;
    wasmsrv_response resp;
    if (wasmsrv_request_load(&req, ctx, head) != 0) return 500;
    memset(&resp, 0, sizeof resp);
    resp.ctx = ctx;
    hdr->len = 0;
    resp.hdr_ = hdr;
    int rc = fn(&req, &resp);
    if (rc == 0 && !resp.done) {
        /* Finish the response: sends a held head with an empty body, or ends a stream. */
        if (wasmsrv_resp_end(&resp, NULL, 0) == WASMSRV_ERR_BAD_ARGUMENT) return 500;
    }
    return rc;
}

#define WASMSRV__EXPORT(name) __attribute__((export_name(name), visibility("default")))

#ifndef WASMSRV_ASYNC
/* Defines the ABI markers and the wasmsrv_handle export for a sync app. */
#define WASMSRV_HANDLER(fn)                                                           \
    WASMSRV__EXPORT("wasmsrv_abi_v1") void wasmsrv__marker_abi_v1(void) {}            \
    WASMSRV__EXPORT("wasmsrv_mode_sync") void wasmsrv__marker_mode_sync(void) {}      \
    static wasmsrv__buf wasmsrv__head_buf, wasmsrv__hdr_buf;                          \
    WASMSRV__EXPORT("wasmsrv_handle") int32_t wasmsrv__export_handle(uint32_t ctx) {  \
        return wasmsrv_serve(ctx, fn, &wasmsrv__head_buf, &wasmsrv__hdr_buf);         \
    }
#else
/* An async build has no wasmsrv_handle: say so instead of a cryptic syntax error. */
#define WASMSRV_HANDLER(fn) \
    _Static_assert(0, "WASMSRV_HANDLER is the sync shape; with WASMSRV_ASYNC use WASMSRV_ASYNC_APP");
#endif

/* Defines the wasmsrv_on_start export: int fn(void), non-zero = failed. */
#define WASMSRV_ON_START(fn) \
    WASMSRV__EXPORT("wasmsrv_on_start") int32_t wasmsrv__export_on_start(void) { return fn(); }

/* Defines the wasmsrv_on_stop export: int fn(void), non-zero is logged. */
#define WASMSRV_ON_STOP(fn) \
    WASMSRV__EXPORT("wasmsrv_on_stop") int32_t wasmsrv__export_on_stop(void) { return fn(); }

/*
 * ---- WebSocket host functions (SPEC §9.2; both shapes) ----
 *
 * The host checks every upgrade's Origin before the app sees it: a browser page of
 * another origin gets 403 (cross-site WebSocket hijacking), so an app only sees its own
 * pages, origins the operator allowed (`wasmsrv run --ws-origins`, `ws_origins` in a
 * site file) and clients that send no Origin. It also answers pings, reassembles
 * fragments and fails clients that break the protocol (1002, 1007, 1009), and closes a
 * client that stops taking what the app sends with 1013.
 */

WASMSRV__IMPORT("ws_accept")
int32_t wasmsrv_abi_ws_accept(uint32_t ctx, const void *proto, uint32_t proto_len, const void *hdr,
                              uint32_t hdr_len);
WASMSRV__IMPORT("ws_recv")
int64_t wasmsrv_abi_ws_recv(uint32_t ctx, void *buf, uint32_t limit);
WASMSRV__IMPORT("ws_send")
int32_t wasmsrv_abi_ws_send(uint32_t ctx, int32_t kind, const void *ptr, uint32_t len);
WASMSRV__IMPORT("ws_close")
int32_t wasmsrv_abi_ws_close(uint32_t ctx, int32_t code, const void *reason, uint32_t reason_len);
WASMSRV__IMPORT("ws_close_info")
int64_t wasmsrv_abi_ws_close_info(uint32_t ctx, void *buf, uint32_t limit);

/* WebSocket message kinds. */
#define WASMSRV_WS_BINARY 1
#define WASMSRV_WS_TEXT 2

/* Close codes (RFC 6455 §7.4). A close frame may carry 1000–1003, 1007–1014 and
 * 3000–4999 only; 1005 and 1006 are reported, never sent. */
#define WASMSRV_WS_CLOSE_NORMAL 1000
#define WASMSRV_WS_CLOSE_GOING_AWAY 1001
#define WASMSRV_WS_CLOSE_POLICY 1008
#define WASMSRV_WS_CLOSE_INTERNAL 1011
#define WASMSRV_WS_CLOSE_TRY_AGAIN_LATER 1013 /* the host closed a client too slow to read */

#ifdef WASMSRV_ASYNC
/*
 * ======== Async shape (SPEC §8) ========
 *
 * Define WASMSRV_ASYNC before including this header. One instance then carries many
 * connections at once; the host calls the SDK's wasmsrv_on_event export once per
 * event and the SDK calls the app's callbacks. Nothing blocks: a host call that
 * would wait returns WASMSRV_ERR_WOULD_BLOCK and a later callback says when to try
 * again. A complete app:
 *
 *   #define WASMSRV_ASYNC
 *   #include "wasmsrv.h"
 *
 *   static int on_request(wasmsrv_conn *c) {
 *       wasmsrv_resp_header(&c->resp, "content-type", "text/plain; charset=utf-8");
 *       if (wasmsrv_resp_end(&c->resp, "hi\n", 3) == WASMSRV_ERR_WOULD_BLOCK)
 *           return 0;                  // on_writable retries
 *       return wasmsrv_done(c, 0);     // every connection ends with exactly one done
 *   }
 *   static const wasmsrv_callbacks app = {.on_request = on_request};
 *   WASMSRV_ASYNC_APP(app)
 *
 * Connections. Each HTTP request or WebSocket is a wasmsrv_conn the SDK allocates at
 * REQUEST_START / WS_CONNECT, with its head already decoded in c->req and an open
 * response in c->resp (the sync response calls work on it). c->user and c->state are
 * the app's, for per-connection state. The SDK keeps a table keyed by the host's
 * handle, so wasmsrv_conn_get(ctx) finds a live connection again (e.g. from a timer).
 * wasmsrv_done(c, code) ends the connection (ctx_done; code means what a sync
 * handler's result means), calls on_end, and frees c: do not touch c afterwards.
 *
 * Events are hints (SPEC §8.2): a callback may come when there is nothing to do, so
 * re-check with the host call (wasmsrv_body_read, wasmsrv_ws_recv, a write) and wait
 * for the next callback on WASMSRV_ERR_WOULD_BLOCK.
 *
 * Callback results: 0 = done for now; WASMSRV_YIELD = more work pending (the host
 * calls on_poll after serving other events); negative = the instance is broken (the
 * host discards it with every connection it carries).
 *
 * Callbacks left NULL get a safe default: a request without on_request is answered
 * 500; a WebSocket without on_ws_connect is denied (403); DISCONNECT, CANCEL and
 * WS_CLOSED end the connection; unwanted WebSocket messages are received and dropped.
 */

/* Event kinds (SPEC §8.2) and wasmsrv_on_event results. */
#define WASMSRV_EV_POLL 0
#define WASMSRV_EV_REQUEST_START 1
#define WASMSRV_EV_BODY 2
#define WASMSRV_EV_WRITABLE 3
#define WASMSRV_EV_WS_CONNECT 4
#define WASMSRV_EV_WS_MESSAGE 5
#define WASMSRV_EV_WS_CLOSED 6
#define WASMSRV_EV_DISCONNECT 7
#define WASMSRV_EV_TIMER 8
#define WASMSRV_EV_CANCEL 9
#define WASMSRV_EV_PLUGIN 10 /* ABI 1.1 (SPEC §8.6) */
#define WASMSRV_IDLE 0
#define WASMSRV_YIELD 1

WASMSRV__IMPORT("ctx_done")
int32_t wasmsrv_abi_ctx_done(uint32_t ctx, int32_t code);
WASMSRV__IMPORT("timer_set")
int32_t wasmsrv_abi_timer_set(uint32_t id, int64_t delay_ms);
WASMSRV__IMPORT("timer_cancel")
int32_t wasmsrv_abi_timer_cancel(uint32_t id);
WASMSRV__IMPORT("set_backpressure")
int32_t wasmsrv_abi_set_backpressure(int32_t on);

typedef struct wasmsrv_conn {
    uint32_t ctx;
    int websocket;          /* 1: a WebSocket upgrade (WS_CONNECT), 0: an HTTP request */
    wasmsrv_request req;    /* the decoded head; its strings live as long as c */
    wasmsrv_response resp;  /* held head and writes, as in the sync shape */
    void *user;             /* the app's, NULL at the start */
    int state;              /* the app's, 0 at the start */
    wasmsrv_str msg;        /* the last message wasmsrv_ws_recv took (valid until the next) */
    /* private: buffers kept with the connection and reused by the next one */
    wasmsrv__buf head_, hdr_, msg_;
    struct wasmsrv_conn *next_free_;
} wasmsrv_conn;

typedef struct {
    int (*on_request)(wasmsrv_conn *c);                  /* REQUEST_START: c->req is loaded */
    int (*on_body)(wasmsrv_conn *c, int64_t ahead);      /* BODY: retry wasmsrv_body_read */
    int (*on_writable)(wasmsrv_conn *c);                 /* WRITABLE: retry a blocked write or ws send */
    int (*on_disconnect)(wasmsrv_conn *c);               /* DISCONNECT: the client left */
    int (*on_cancel)(wasmsrv_conn *c);                   /* CANCEL: deadline or drain: finish now */
    int (*on_timer)(uint32_t id);                        /* TIMER: timer id fired (no connection) */
    int (*on_poll)(void);                                /* POLL: after a callback returned WASMSRV_YIELD */
    int (*on_ws_connect)(wasmsrv_conn *c);               /* WS_CONNECT: accept or deny */
    int (*on_ws_message)(wasmsrv_conn *c, int kind, uint32_t len); /* WS_MESSAGE: wasmsrv_ws_recv */
    int (*on_ws_closed)(wasmsrv_conn *c, int code);      /* WS_CLOSED: end the connection */
    void (*on_end)(wasmsrv_conn *c);                     /* c is about to be freed: release c->user */
    /* PLUGIN (ABI 1.1): a plugin notification armed with token is ready: retry the
     * plugin call. c is the connection named when arming, NULL for ctx 0. */
    int (*on_plugin)(wasmsrv_conn *c, uint32_t token);
} wasmsrv_callbacks;

/* Open-addressing table ctx -> connection, with linear probing; one per module
 * (WASMSRV_ASYNC_APP defines it), so the header stays usable from several files. */
typedef struct {
    wasmsrv_conn **slots;
    uint32_t cap, n;
    wasmsrv_conn *free_;
    const wasmsrv_callbacks *cb;
} wasmsrv__async_state;
extern wasmsrv__async_state wasmsrv__async;

static inline uint32_t wasmsrv__slot(uint32_t ctx, uint32_t cap) {
    return (ctx * 2654435761u) & (cap - 1); /* Fibonacci hashing; cap is a power of two */
}

/* The live connection with handle ctx, or NULL. */
static inline wasmsrv_conn *wasmsrv_conn_get(uint32_t ctx) {
    wasmsrv__async_state *s = &wasmsrv__async;
    if (!s->cap) return NULL;
    for (uint32_t i = wasmsrv__slot(ctx, s->cap);; i = (i + 1) & (s->cap - 1)) {
        wasmsrv_conn *c = s->slots[i];
        if (!c) return NULL;
        if (c->ctx == ctx) return c;
    }
}

static inline int wasmsrv__table_put(wasmsrv_conn *c) {
    wasmsrv__async_state *s = &wasmsrv__async;
    if ((uint64_t)(s->n + 1) * 2 > s->cap) {
        /* Keep the load at most 1/2 so probes stay short. */
        uint32_t cap = s->cap ? s->cap * 2 : 64;
        wasmsrv_conn **slots = (wasmsrv_conn **)calloc(cap, sizeof *slots);
        if (!slots) return WASMSRV_ERR_NOMEM;
        for (uint32_t j = 0; j < s->cap; j++) {
            wasmsrv_conn *o = s->slots[j];
            if (!o) continue;
            uint32_t i = wasmsrv__slot(o->ctx, cap);
            while (slots[i]) i = (i + 1) & (cap - 1);
            slots[i] = o;
        }
        free(s->slots);
        s->slots = slots;
        s->cap = cap;
    }
    uint32_t i = wasmsrv__slot(c->ctx, s->cap);
    while (s->slots[i]) i = (i + 1) & (s->cap - 1);
    s->slots[i] = c;
    s->n++;
    return 0;
}

static inline void wasmsrv__table_del(uint32_t ctx) {
    wasmsrv__async_state *s = &wasmsrv__async;
    if (!s->cap) return;
    uint32_t mask = s->cap - 1, i = wasmsrv__slot(ctx, s->cap);
    while (s->slots[i] && s->slots[i]->ctx != ctx) i = (i + 1) & mask;
    if (!s->slots[i]) return;
    s->slots[i] = NULL;
    s->n--;
    /* Backward-shift deletion: move later entries of the probe run into the hole
     * when their home slot does not lie cyclically in (hole, j], so lookups that
     * stop at an empty slot still find them (no tombstones needed). */
    for (uint32_t j = (i + 1) & mask; s->slots[j]; j = (j + 1) & mask) {
        uint32_t k = wasmsrv__slot(s->slots[j]->ctx, s->cap);
        int in_range = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!in_range) {
            s->slots[i] = s->slots[j];
            s->slots[j] = NULL;
            i = j;
        }
    }
}

/* Allocates (or reuses) a connection for a new handle and loads its head. */
static inline wasmsrv_conn *wasmsrv__conn_new(uint32_t ctx, int websocket) {
    wasmsrv__async_state *s = &wasmsrv__async;
    wasmsrv_conn *c = s->free_;
    if (c) {
        s->free_ = c->next_free_;
    } else {
        c = (wasmsrv_conn *)calloc(1, sizeof *c);
        if (!c) return NULL;
    }
    wasmsrv__buf head = c->head_, hdr = c->hdr_, msg = c->msg_;
    memset(c, 0, sizeof *c);
    c->head_ = head;
    c->hdr_ = hdr;
    c->msg_ = msg;
    c->hdr_.len = 0;
    c->ctx = ctx;
    c->websocket = websocket;
    c->resp.ctx = ctx;
    c->resp.hdr_ = &c->hdr_;
    if (wasmsrv__table_put(c) != 0) {
        c->next_free_ = s->free_;
        s->free_ = c;
        return NULL;
    }
    return c;
}

/*
 * Ends connection c (SPEC §8.3 ctx_done) and frees it. code: 0 = handled (a head
 * still held in the SDK is sent with an empty body); 100..599 with nothing written =
 * that status, empty body; anything else = application error (500 or a cut
 * response). A WebSocket still open is closed with 1000. Returns what ctx_done
 * returned (0).
 */
static inline int wasmsrv_done(wasmsrv_conn *c, int code) {
    if (code == 0 && !c->resp.done && !c->resp.head_sent && !c->websocket) {
        /* Nothing written yet, so nothing is queued and this cannot block. A started
         * stream is not ended with an extra write (that could block): ctx_done
         * finishes the response itself (SPEC §4). */
        if (wasmsrv_resp_end(&c->resp, NULL, 0) == WASMSRV_ERR_BAD_ARGUMENT) code = 500;
    }
    int32_t rc = wasmsrv_abi_ctx_done(c->ctx, code);
    if (wasmsrv__async.cb->on_end) wasmsrv__async.cb->on_end(c);
    wasmsrv__table_del(c->ctx);
    c->next_free_ = wasmsrv__async.free_;
    wasmsrv__async.free_ = c;
    return rc;
}

/* Arms timer id (the app's choice, per instance) to fire once after delay_ms as
 * on_timer(id); re-arms an armed id. 0, WASMSRV_ERR_TOO_LARGE or _BAD_ARGUMENT. */
static inline int wasmsrv_timer_set(uint32_t id, int64_t delay_ms) { return wasmsrv_abi_timer_set(id, delay_ms); }

/* Disarms timer id; WASMSRV_ERR_CLOSED if it was not armed. */
static inline int wasmsrv_timer_cancel(uint32_t id) { return wasmsrv_abi_timer_cancel(id); }

/* on != 0: no new connections for this instance until called with 0. */
static inline int wasmsrv_set_backpressure(int on) { return wasmsrv_abi_set_backpressure(on); }

/*
 * Accepts a WebSocket upgrade (in on_ws_connect) with subprotocol proto (NULL or ""
 * for none) and the headers added with wasmsrv_resp_header. To deny, write an
 * ordinary response, or call wasmsrv_done(c, 0) (403) or wasmsrv_done(c, status).
 */
static inline int wasmsrv_ws_accept(wasmsrv_conn *c, const char *proto) {
    uint32_t plen = proto ? (uint32_t)strlen(proto) : 0;
    const void *hdr = NULL;
    uint32_t hdr_len = 0;
    if (c->hdr_.len) {
        wasmsrv__put32(c->hdr_.ptr, c->resp.nhdr_);
        hdr = c->hdr_.ptr;
        hdr_len = c->hdr_.len;
    }
    return wasmsrv_abi_ws_accept(c->ctx, proto, plen, hdr, hdr_len);
}

/*
 * Takes the next whole message into c->msg (valid until the next call) and returns
 * its kind (WASMSRV_WS_TEXT or _BINARY), or WASMSRV_ERR_WOULD_BLOCK (wait for
 * on_ws_message), WASMSRV_ERR_CLOSED (closed and drained) or another negative status.
 */
static inline int wasmsrv_ws_recv(wasmsrv_conn *c) {
    for (;;) {
        int64_t r = wasmsrv_abi_ws_recv(c->ctx, c->msg_.ptr, c->msg_.cap);
        if (r < 0) return (int)r;
        uint32_t n = (uint32_t)r;
        int kind = (int)(r >> 32);
        if (n <= c->msg_.cap) {
            c->msg.ptr = (const char *)c->msg_.ptr;
            c->msg.len = n;
            return kind;
        }
        /* Nothing was taken: grow and ask again (SPEC §2). */
        int rc = wasmsrv__reserve(&c->msg_, n);
        if (rc) return rc;
    }
}

/*
 * Sends one message; WASMSRV_ERR_WOULD_BLOCK: nothing queued, the host's send buffer for
 * this client has no room for it; retry in on_writable. WASMSRV_ERR_TOO_LARGE: bigger than
 * both the send buffer and the message limit (never fits); WASMSRV_ERR_BAD_ARGUMENT: text
 * that is not UTF-8; WASMSRV_ERR_CLOSED: closing (e.g. 1013: the client stopped reading).
 */
static inline int wasmsrv_ws_send(wasmsrv_conn *c, int kind, const void *p, uint32_t n) {
    return wasmsrv_abi_ws_send(c->ctx, kind, p, n);
}

/*
 * Starts the closing handshake (code 0 = 1000; UTF-8 reason, cut to 123 bytes); WS_CLOSED
 * follows. WASMSRV_ERR_BAD_ARGUMENT (nothing sent) for a code that may not be sent or a
 * reason that is not UTF-8.
 */
static inline int wasmsrv_ws_close(wasmsrv_conn *c, int code, const char *reason) {
    return wasmsrv_abi_ws_close(c->ctx, code, reason, reason ? (uint32_t)strlen(reason) : 0);
}

/* Once closed: the close code (the reason is not fetched); 0 while open. */
static inline int wasmsrv_ws_close_code(wasmsrv_conn *c) {
    int64_t r = wasmsrv_abi_ws_close_info(c->ctx, NULL, 0);
    return r < 0 ? (int)r : (int)(r >> 32);
}

/* The body of wasmsrv_on_event: dispatches one event to the callbacks. */
static inline int32_t wasmsrv_dispatch(const wasmsrv_callbacks *cb, uint32_t ctx, int32_t kind, int64_t a,
                                       int64_t b) {
    wasmsrv__async.cb = cb;
    wasmsrv_conn *c;
    switch (kind) {
    case WASMSRV_EV_POLL:
        return cb->on_poll ? cb->on_poll() : WASMSRV_IDLE;
    case WASMSRV_EV_TIMER:
        return cb->on_timer ? cb->on_timer((uint32_t)a) : WASMSRV_IDLE;
    case WASMSRV_EV_PLUGIN:
        if (!cb->on_plugin) return WASMSRV_IDLE;
        if (ctx == 0) return cb->on_plugin(NULL, (uint32_t)a);
        c = wasmsrv_conn_get(ctx);
        return c ? cb->on_plugin(c, (uint32_t)a) : WASMSRV_IDLE;
    case WASMSRV_EV_REQUEST_START:
    case WASMSRV_EV_WS_CONNECT: {
        int ws = kind == WASMSRV_EV_WS_CONNECT;
        c = wasmsrv__conn_new(ctx, ws);
        if (!c) {
            /* Out of memory for the connection itself: answer 500 and keep serving. */
            wasmsrv_abi_ctx_done(ctx, 500);
            return WASMSRV_IDLE;
        }
        if (wasmsrv_request_load(&c->req, ctx, &c->head_) != 0) {
            wasmsrv_done(c, 500);
            return WASMSRV_IDLE;
        }
        int (*fn)(wasmsrv_conn *) = ws ? cb->on_ws_connect : cb->on_request;
        if (fn) return fn(c);
        wasmsrv_done(c, ws ? 0 : 500); /* 0 on a WebSocket denies it: 403 */
        return WASMSRV_IDLE;
    }
    }
    c = wasmsrv_conn_get(ctx);
    if (!c) return WASMSRV_IDLE; /* already ended: a late hint */
    switch (kind) {
    case WASMSRV_EV_BODY:
        return cb->on_body ? cb->on_body(c, a) : WASMSRV_IDLE;
    case WASMSRV_EV_WRITABLE:
        return cb->on_writable ? cb->on_writable(c) : WASMSRV_IDLE;
    case WASMSRV_EV_WS_MESSAGE:
        if (cb->on_ws_message) return cb->on_ws_message(c, (int)a, (uint32_t)b);
        while (wasmsrv_ws_recv(c) >= 0) {
        }
        return WASMSRV_IDLE;
    case WASMSRV_EV_WS_CLOSED:
        if (cb->on_ws_closed) return cb->on_ws_closed(c, (int)a);
        wasmsrv_done(c, 0);
        return WASMSRV_IDLE;
    case WASMSRV_EV_DISCONNECT:
        if (cb->on_disconnect) return cb->on_disconnect(c);
        wasmsrv_done(c, 0);
        return WASMSRV_IDLE;
    case WASMSRV_EV_CANCEL:
        if (cb->on_cancel) return cb->on_cancel(c);
        wasmsrv_done(c, 0);
        return WASMSRV_IDLE;
    }
    return WASMSRV_IDLE; /* unknown kinds are ignored (SPEC §8.2) */
}

/*
 * Defines the ABI markers, the connection table and the wasmsrv_on_event export for
 * an async app; cb is a wasmsrv_callbacks object (not a pointer). Use it in exactly
 * one translation unit.
 */
#define WASMSRV_ASYNC_APP(cb)                                                                   \
    WASMSRV__EXPORT("wasmsrv_abi_v1") void wasmsrv__marker_abi_v1(void) {}                      \
    WASMSRV__EXPORT("wasmsrv_mode_async") void wasmsrv__marker_mode_async(void) {}              \
    wasmsrv__async_state wasmsrv__async;                                                        \
    WASMSRV__EXPORT("wasmsrv_on_event")                                                         \
    int32_t wasmsrv__export_on_event(uint32_t ctx, int32_t kind, int64_t a, int64_t b) {        \
        return wasmsrv_dispatch(&(cb), ctx, kind, a, b);                                        \
    }

#endif /* WASMSRV_ASYNC */

#ifdef __cplusplus
}
#endif

#endif /* WASMSRV_H */
