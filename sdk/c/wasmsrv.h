/*
 * wasmsrv.h - single-header C SDK for the wasmsrv gateway ABI v1 (sync shape).
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
 * The async shape (SPEC §8) is not in this header yet.
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

/* Defines the ABI markers and the wasmsrv_handle export for a sync app. */
#define WASMSRV_HANDLER(fn)                                                           \
    WASMSRV__EXPORT("wasmsrv_abi_v1") void wasmsrv__marker_abi_v1(void) {}            \
    WASMSRV__EXPORT("wasmsrv_mode_sync") void wasmsrv__marker_mode_sync(void) {}      \
    static wasmsrv__buf wasmsrv__head_buf, wasmsrv__hdr_buf;                          \
    WASMSRV__EXPORT("wasmsrv_handle") int32_t wasmsrv__export_handle(uint32_t ctx) {  \
        return wasmsrv_serve(ctx, fn, &wasmsrv__head_buf, &wasmsrv__hdr_buf);         \
    }

/* Defines the wasmsrv_on_start export: int fn(void), non-zero = failed. */
#define WASMSRV_ON_START(fn) \
    WASMSRV__EXPORT("wasmsrv_on_start") int32_t wasmsrv__export_on_start(void) { return fn(); }

/* Defines the wasmsrv_on_stop export: int fn(void), non-zero is logged. */
#define WASMSRV_ON_STOP(fn) \
    WASMSRV__EXPORT("wasmsrv_on_stop") int32_t wasmsrv__export_on_stop(void) { return fn(); }

#ifdef __cplusplus
}
#endif

#endif /* WASMSRV_H */
