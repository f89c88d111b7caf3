/*
 * wasmsrv_plugins.h - C bindings of the standard wasmsrv plugins (plugins/README.md):
 * log, config, kv, pubsub, http (outbound) and sockets (outbound TCP/TLS). Include it
 * after wasmsrv.h. Each plugin's ABI is specified in plugins/<name>/ABI.md and
 * versioned on its own; this header implements log 1.0, config 1.0, kv 1.0, pubsub
 * 1.1, http 1.1 and sockets 1.0.
 *
 * An app may import only the plugins the operator granted it (log is always
 * granted): `wasmsrv run --grant kv app.wasm`. A function of a plugin that is not
 * granted makes the module fail to load, naming the module, so use only what you
 * need: functions you never call are not imported.
 *
 * Conventions as in wasmsrv.h: lengths are size_t, data out of the guest is copied by
 * the host during the call, data into the guest goes to caller buffers. Results are
 * the sizes or the negative status codes below.
 *
 *   #include "wasmsrv.h"
 *   #include "wasmsrv_plugins.h"
 *
 *   char buf[32];
 *   int64_t n = wasmsrv_kv_get("hits", 4, buf, sizeof buf);   // or WASMSRV_ERR_NOT_FOUND
 *   wasmsrv_log(WASMSRV_LOG_INFO, "hit", 3, NULL, 0);
 */
#ifndef WASMSRV_PLUGINS_H
#define WASMSRV_PLUGINS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Plugin status codes (plugins/README.md); the core ones are in wasmsrv.h. */
#define WASMSRV_ERR_NOT_FOUND (-16)
#define WASMSRV_ERR_CONFLICT (-17)
#define WASMSRV_ERR_DENIED (-18)
#define WASMSRV_ERR_UNAVAILABLE (-19)
#define WASMSRV_ERR_QUOTA (-20)

#define WASMSRV__PLUGIN(mod, name) __attribute__((import_module(mod), import_name(name)))

/* ---- log (wasmsrv_log 1.0) ---- */

#define WASMSRV_LOG_DEBUG (-4)
#define WASMSRV_LOG_INFO 0
#define WASMSRV_LOG_WARN 4
#define WASMSRV_LOG_ERROR 8

WASMSRV__PLUGIN("wasmsrv_log", "write")
int32_t wasmsrv_log_write(int32_t level, const void *msg, size_t msg_len, const void *attrs, size_t attrs_len);
WASMSRV__PLUGIN("wasmsrv_log", "enabled")
int32_t wasmsrv_log_enabled(int32_t level);

/* Appends one length-prefixed item (u32 little-endian length, bytes) to dst at *off if
 * it fits in cap; returns 0, or -1 when it does not fit. Builds log attribute lists
 * (key, value, key, value...) and http request blocks. */
static inline int wasmsrv_item(uint8_t *dst, size_t cap, size_t *off, const void *p, size_t n) {
    if (cap - *off < 4 || cap - *off - 4 < n) return -1;
    dst[*off] = (uint8_t)n; dst[*off + 1] = (uint8_t)(n >> 8);
    dst[*off + 2] = (uint8_t)(n >> 16); dst[*off + 3] = (uint8_t)(n >> 24);
    if (n) memcpy(dst + *off + 4, p, n);
    *off += 4 + n;
    return 0;
}

/* Logs msg with an attribute list built by wasmsrv_item (NULL, 0 for none). */
static inline int32_t wasmsrv_log(int32_t level, const char *msg, size_t msg_len, const void *attrs, size_t attrs_len) {
    return wasmsrv_log_write(level, msg, msg_len, attrs, attrs_len);
}

/* ---- config (wasmsrv_config 1.0) ---- */

WASMSRV__PLUGIN("wasmsrv_config", "get")
int64_t wasmsrv_config_get(const void *key, size_t key_len, void *buf, size_t limit);
WASMSRV__PLUGIN("wasmsrv_config", "keys")
int64_t wasmsrv_config_keys(void *buf, size_t limit);

/* ---- kv (wasmsrv_kv 1.0) ---- */

#define WASMSRV_KV_OLD_ABSENT 1
#define WASMSRV_KV_DELETE 2

/* Value length (written when <= limit), or WASMSRV_ERR_NOT_FOUND and friends. */
WASMSRV__PLUGIN("wasmsrv_kv", "get")
int64_t wasmsrv_kv_get(const void *key, size_t key_len, void *buf, size_t limit);
WASMSRV__PLUGIN("wasmsrv_kv", "set")
int32_t wasmsrv_kv_set(const void *key, size_t key_len, const void *val, size_t val_len, int64_t ttl_ms);
WASMSRV__PLUGIN("wasmsrv_kv", "delete")
int32_t wasmsrv_kv_delete(const void *key, size_t key_len);
/* WASMSRV_OK when swapped, WASMSRV_ERR_CONFLICT when the value was not old. */
WASMSRV__PLUGIN("wasmsrv_kv", "cas")
int32_t wasmsrv_kv_cas(const void *key, size_t key_len, const void *old, size_t old_len,
                       const void *new_val, size_t new_len, int32_t flags, int64_t ttl_ms);
/* Result: more << 32 | bytes of items written; see plugins/kv/ABI.md. */
WASMSRV__PLUGIN("wasmsrv_kv", "list")
int64_t wasmsrv_kv_list(const void *prefix, size_t prefix_len, const void *after, size_t after_len, void *buf, size_t limit);

/* ---- pubsub (wasmsrv_pubsub 1.1) ---- */

WASMSRV__PLUGIN("wasmsrv_pubsub", "publish")
int32_t wasmsrv_pubsub_publish(const void *topic, size_t topic_len, const void *msg, size_t msg_len);
/* Subscription handle (> 0) or a status. */
WASMSRV__PLUGIN("wasmsrv_pubsub", "subscribe")
int32_t wasmsrv_pubsub_subscribe(const void *topic, size_t topic_len);
/* Message length (written when <= limit; otherwise kept for the next call), or
 * WASMSRV_ERR_TIMEOUT after timeout_ms, WASMSRV_ERR_CLOSED when the request ends. */
WASMSRV__PLUGIN("wasmsrv_pubsub", "receive")
int64_t wasmsrv_pubsub_receive(int32_t sub, void *buf, size_t limit, uint32_t timeout_ms);
WASMSRV__PLUGIN("wasmsrv_pubsub", "unsubscribe")
int32_t wasmsrv_pubsub_unsubscribe(int32_t sub);
/* Async apps (1.1): after receive returned WASMSRV_ERR_WOULD_BLOCK, asks for one
 * on_plugin(conn ctx, token) callback as soon as sub has a message (at once if it has
 * one now); ctx 0 calls on_plugin(NULL, token). Dropped if the connection ends first.
 * WASMSRV_ERR_UNSUPPORTED in sync apps (receive waits there) and lifespan hooks. */
WASMSRV__PLUGIN("wasmsrv_pubsub", "notify")
int32_t wasmsrv_pubsub_notify(int32_t sub, uint32_t ctx, uint32_t token);

/* ---- http, outbound (wasmsrv_http 1.1) ---- */

/* req: items method, URL, then header name/value pairs (build with wasmsrv_item).
 * Returns a response handle (> 0) or WASMSRV_ERR_DENIED / _TIMEOUT / _TOO_LARGE /
 * _UNAVAILABLE / _BAD_ARGUMENT / _QUOTA. */
WASMSRV__PLUGIN("wasmsrv_http", "send")
int64_t wasmsrv_http_send(const void *req, size_t req_len, const void *body, size_t body_len);
/* The response block: u32 status, u32 H, H bytes of header block, body. Its length
 * is returned; it is written only when it fits in limit. */
WASMSRV__PLUGIN("wasmsrv_http", "response")
int64_t wasmsrv_http_response(int32_t h, void *buf, size_t limit);
WASMSRV__PLUGIN("wasmsrv_http", "close")
int32_t wasmsrv_http_close(int32_t h);
/* Async apps (1.1): sends return at once and response answers WASMSRV_ERR_WOULD_BLOCK
 * until done; this asks for one on_plugin(conn ctx, token) callback when the response
 * is complete or failed (at once if it is). ctx 0 calls on_plugin(NULL, token). */
WASMSRV__PLUGIN("wasmsrv_http", "notify")
int32_t wasmsrv_http_notify(int32_t h, uint32_t ctx, uint32_t token);

/* A decoded response block (views into the caller's buffer). */
typedef struct {
    uint32_t status;
    const uint8_t *headers; /* header block (u32 count, then pairs), wasmsrv.h format */
    size_t headers_len;
    const uint8_t *body;
    size_t body_len;
} wasmsrv_http_resp;

/* Splits a response block of n bytes; returns 0, or WASMSRV_ERR_BAD_ARGUMENT. */
static inline int wasmsrv_http_parse(const uint8_t *b, size_t n, wasmsrv_http_resp *r) {
    if (n < 8) return WASMSRV_ERR_BAD_ARGUMENT;
    uint32_t hl = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 24;
    if (hl > n - 8) return WASMSRV_ERR_BAD_ARGUMENT;
    r->status = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    r->headers = b + 8;
    r->headers_len = hl;
    r->body = b + 8 + hl;
    r->body_len = n - 8 - hl;
    return 0;
}

/* ---- sockets, outbound TCP and TLS (wasmsrv_sockets 1.0) ---- */

/* connect flags */
#define WASMSRV_SOCKETS_TLS 1  /* the host does the TLS handshake and verifies the server */
#define WASMSRV_SOCKETS_IPV4 2 /* IPv4 addresses only */
#define WASMSRV_SOCKETS_IPV6 4 /* IPv6 addresses only */
/* directions of set_deadline, notify and wait */
#define WASMSRV_SOCKETS_READ 1
#define WASMSRV_SOCKETS_WRITE 2

/* Connects to addr ("host:port", numeric port) if the app's allow list lets it;
 * name is the TLS server name (only with WASMSRV_SOCKETS_TLS; empty: the host of
 * addr); timeout_ns <= 0 is the app's connect_timeout. A handle (> 0) or
 * WASMSRV_ERR_DENIED / _QUOTA / _BAD_ARGUMENT, and in sync apps _UNAVAILABLE /
 * _TIMEOUT. Async apps get the handle at once: a zero-length write returns 0 once
 * connected, WASMSRV_ERR_WOULD_BLOCK before, or the connect's error. */
WASMSRV__PLUGIN("wasmsrv_sockets", "connect")
int64_t wasmsrv_sockets_connect(const void *addr, size_t addr_len, uint32_t flags, const void *name, size_t name_len,
                                int64_t timeout_ns);
/* Bytes read (> 0), 0 at the end of the stream, or WASMSRV_ERR_TIMEOUT (read
 * deadline), _UNAVAILABLE, _QUOTA, _WOULD_BLOCK (async). */
WASMSRV__PLUGIN("wasmsrv_sockets", "read")
int64_t wasmsrv_sockets_read(int32_t h, void *buf, size_t limit);
/* Bytes taken (>= 1, possibly fewer than n), or WASMSRV_ERR_TIMEOUT, _UNAVAILABLE,
 * _CLOSED (after shutdown), _QUOTA, _WOULD_BLOCK (async). */
WASMSRV__PLUGIN("wasmsrv_sockets", "write")
int64_t wasmsrv_sockets_write(int32_t h, const void *p, size_t n);
/* Half-close: no more writes; reading goes on. */
WASMSRV__PLUGIN("wasmsrv_sockets", "shutdown")
int32_t wasmsrv_sockets_shutdown(int32_t h);
/* Closes and frees the handle (using it afterwards traps). */
WASMSRV__PLUGIN("wasmsrv_sockets", "close")
int32_t wasmsrv_sockets_close(int32_t h);
/* Deadline of reads and/or writes (which: READ, WRITE or both) timeout_ns from now;
 * timeout_ns < 0 removes it. */
WASMSRV__PLUGIN("wasmsrv_sockets", "set_deadline")
int32_t wasmsrv_sockets_set_deadline(int32_t h, uint32_t which, int64_t timeout_ns);
/* Async apps: after a call returned WASMSRV_ERR_WOULD_BLOCK, asks for one
 * on_plugin(conn ctx, token) callback when h is ready for which (READ or WRITE);
 * ctx 0 calls on_plugin(NULL, token). WASMSRV_ERR_UNSUPPORTED in sync apps (calls
 * block there) and lifespan hooks (use wasmsrv_sockets_wait). */
WASMSRV__PLUGIN("wasmsrv_sockets", "notify")
int32_t wasmsrv_sockets_notify(int32_t h, uint32_t which, uint32_t ctx, uint32_t token);
/* Blocks until h is ready for which, holding the instance: for async code that
 * cannot take events (lifespan hooks). 0 at once in sync apps. */
WASMSRV__PLUGIN("wasmsrv_sockets", "wait")
int32_t wasmsrv_sockets_wait(int32_t h, uint32_t which);
/* Upgrades a plain connection to TLS, done and verified by the host (STARTTLS). */
WASMSRV__PLUGIN("wasmsrv_sockets", "starttls")
int32_t wasmsrv_sockets_starttls(int32_t h, const void *name, size_t name_len);
/* The local (which 0) or remote (1) address, "ip:port"; its length is returned. */
WASMSRV__PLUGIN("wasmsrv_sockets", "addr")
int64_t wasmsrv_sockets_addr(int32_t h, uint32_t which, void *buf, size_t limit);

/* Writes all n bytes, waiting in the host whenever the connection is not ready
 * (sync apps, and lifespan hooks of async apps). 0 or a status. */
static inline int32_t wasmsrv_sockets_write_all(int32_t h, const void *p, size_t n) {
    const uint8_t *b = (const uint8_t *)p;
    while (n > 0) {
        int64_t w = wasmsrv_sockets_write(h, b, n);
        if (w == WASMSRV_ERR_WOULD_BLOCK) {
            int32_t rc = wasmsrv_sockets_wait(h, WASMSRV_SOCKETS_WRITE);
            if (rc < 0) return rc;
            continue;
        }
        if (w <= 0) return w < 0 ? (int32_t)w : WASMSRV_ERR_CLOSED;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads up to limit bytes, waiting in the host when none are there yet (sync apps,
 * lifespan hooks). As wasmsrv_sockets_read otherwise. */
static inline int64_t wasmsrv_sockets_read_wait(int32_t h, void *buf, size_t limit) {
    for (;;) {
        int64_t n = wasmsrv_sockets_read(h, buf, limit);
        if (n != WASMSRV_ERR_WOULD_BLOCK) return n;
        int32_t rc = wasmsrv_sockets_wait(h, WASMSRV_SOCKETS_READ);
        if (rc < 0) return rc;
    }
}

#ifdef __cplusplus
}
#endif

#endif /* WASMSRV_PLUGINS_H */
