/*
 * c-async-notify: an async C guest that waits for plugin completions per connection
 * (plugin ABI 1.1 notify, core event PLUGIN, SPEC §8.6), for plugins/events_test.go.
 *
 *   /fetch  GET the config variable "fast" through the http plugin: "<status> <body>"
 *   /leave  GET "slow"; when the client leaves first the connection ends at once and
 *           the handle is kept (closed by /stats), so its completion comes late
 *   /sub    subscribe to the raw query string as the topic, answer "subscribed\n" and the next
 *           message
 *   /pub    publish "hello" to the raw query string as the topic
 *   /stats  "late=N": PLUGIN events that named a connection this guest had already
 *           ended (the host must drop them: always 0)
 *   /floods "N": PLUGIN events with ctx 0 the guest got (only /flood arms those)
 *   /bad-ctx  arms a notification for a connection that does not exist: the host
 *           traps the guest, as for any unknown handle
 *   /flood  re-arms a ready subscription's notification 200,000 times in one event
 *           (each fires at once): the host must bound what that queues
 */
#define WASMSRV_ASYNC
#include "../../sdk/c/wasmsrv.h"
#include "../../sdk/c/wasmsrv_plugins.h"

#include <stdio.h>

enum { FETCH = 1, LEAVE, SUB };

static uint8_t buf[4096];
static uint32_t late, instance_events;
static int32_t orphans[64];
static uint32_t norphans;

static int reply(wasmsrv_conn *c, const char *s, uint32_t n) {
    /* Small bodies on a fresh connection: the host's queue always takes them. */
    wasmsrv_resp_end(&c->resp, s, n);
    return wasmsrv_done(c, 0);
}

/* Takes the outbound response of connection c, or arms its notification. */
static int fetch_step(wasmsrv_conn *c) {
    int32_t h = (int32_t)(intptr_t)c->user;
    int64_t n = wasmsrv_http_response(h, buf, sizeof buf);
    if (n == WASMSRV_ERR_WOULD_BLOCK) {
        if (wasmsrv_http_notify(h, c->ctx, FETCH) != 0) return -1;
        return WASMSRV_IDLE; /* on_plugin(c, FETCH) */
    }
    wasmsrv_http_close(h);
    c->user = NULL;
    char out[256];
    wasmsrv_http_resp r;
    if (n < 0 || n > (int64_t)sizeof buf || wasmsrv_http_parse(buf, (size_t)n, &r) != 0) {
        int k = snprintf(out, sizeof out, "error %lld", (long long)n);
        return reply(c, out, (uint32_t)k);
    }
    int k = snprintf(out, sizeof out, "%u %.*s", r.status, (int)r.body_len, (const char *)r.body);
    return reply(c, out, (uint32_t)k);
}

static int sub_step(wasmsrv_conn *c) {
    int32_t s = (int32_t)(intptr_t)c->user;
    int64_t n = wasmsrv_pubsub_receive(s, buf, sizeof buf - 1, 0);
    if (n == WASMSRV_ERR_WOULD_BLOCK) {
        if (wasmsrv_pubsub_notify(s, c->ctx, SUB) != 0) return -1;
        return WASMSRV_IDLE;
    }
    wasmsrv_pubsub_unsubscribe(s);
    c->user = NULL;
    if (n < 0 || n >= (int64_t)sizeof buf) return reply(c, "error\n", 6);
    buf[n++] = '\n';
    return reply(c, (const char *)buf, (uint32_t)n);
}

static int start_fetch(wasmsrv_conn *c, const char *var, int state) {
    char url[512];
    int64_t n = wasmsrv_config_get(var, strlen(var), url, sizeof url);
    if (n < 0 || n > (int64_t)sizeof url) return wasmsrv_done(c, 500);
    uint8_t req[600];
    size_t off = 0;
    wasmsrv_item(req, sizeof req, &off, "GET", 3);
    wasmsrv_item(req, sizeof req, &off, url, (size_t)n);
    int64_t h = wasmsrv_http_send(req, off, NULL, 0);
    if (h < 0) return wasmsrv_done(c, 502);
    c->user = (void *)(intptr_t)h;
    c->state = state;
    return fetch_step(c);
}

static int on_request(wasmsrv_conn *c) {
    wasmsrv_str p = c->req.path, q = c->req.query;
    if (wasmsrv_str_eq(p, "/fetch")) return start_fetch(c, "fast", FETCH);
    if (wasmsrv_str_eq(p, "/leave")) return start_fetch(c, "slow", LEAVE);
    if (wasmsrv_str_eq(p, "/pub")) {
        int32_t rc = wasmsrv_pubsub_publish(q.ptr, q.len, "hello", 5);
        return rc == 0 ? reply(c, "ok", 2) : wasmsrv_done(c, 500);
    }
    if (wasmsrv_str_eq(p, "/sub")) {
        int32_t s = wasmsrv_pubsub_subscribe(q.ptr, q.len);
        if (s < 0) return wasmsrv_done(c, 500);
        c->user = (void *)(intptr_t)s;
        c->state = SUB;
        wasmsrv_resp_write(&c->resp, "subscribed\n", 11);
        return sub_step(c);
    }
    if (wasmsrv_str_eq(p, "/bad-ctx")) {
        int32_t s = wasmsrv_pubsub_subscribe("t", 1);
        if (s < 0) return wasmsrv_done(c, 500);
        wasmsrv_pubsub_notify(s, c->ctx + 1000, SUB); /* traps */
        return wasmsrv_done(c, 200);
    }
    if (wasmsrv_str_eq(p, "/flood")) {
        int32_t s = wasmsrv_pubsub_subscribe("flood", 5);
        if (s < 0 || wasmsrv_pubsub_publish("flood", 5, "x", 1) != 0) return wasmsrv_done(c, 500);
        for (int i = 0; i < 200000; i++) wasmsrv_pubsub_notify(s, 0, 99);
        wasmsrv_pubsub_unsubscribe(s);
        return reply(c, "ok", 2);
    }
    if (wasmsrv_str_eq(p, "/floods")) {
        char out[32];
        int k = snprintf(out, sizeof out, "%u", instance_events);
        return reply(c, out, (uint32_t)k);
    }
    if (wasmsrv_str_eq(p, "/stats")) {
        for (uint32_t i = 0; i < norphans; i++) wasmsrv_http_close(orphans[i]);
        norphans = 0;
        char out[64];
        int k = snprintf(out, sizeof out, "late=%u", late);
        return reply(c, out, (uint32_t)k);
    }
    return wasmsrv_done(c, 404);
}

static int on_plugin(wasmsrv_conn *c, uint32_t token) {
    if (!c) { /* only /flood arms with ctx 0 */
        instance_events++;
        return WASMSRV_IDLE;
    }
    if (token == FETCH && (c->state == FETCH || c->state == LEAVE)) return fetch_step(c);
    if (token == SUB && c->state == SUB) return sub_step(c);
    return WASMSRV_IDLE; /* a hint with nothing to do */
}

static int on_disconnect(wasmsrv_conn *c) {
    if (c->state == LEAVE && c->user && norphans < 64) {
        /* Keep the request running past the connection: its completion must not
         * reach this ctx again. */
        orphans[norphans++] = (int32_t)(intptr_t)c->user;
        c->user = NULL;
    }
    if (c->state == SUB && c->user) wasmsrv_pubsub_unsubscribe((int32_t)(intptr_t)c->user);
    return wasmsrv_done(c, 0);
}

static const wasmsrv_callbacks app = {
    .on_request = on_request,
    .on_plugin = on_plugin,
    .on_disconnect = on_disconnect,
};

/* WASMSRV_ASYNC_APP(app), spelled out to count PLUGIN events for ended connections
 * before the SDK's dispatch (which would ignore them too) sees them. */
WASMSRV__EXPORT("wasmsrv_abi_v1") void marker_abi_v1(void) {}
WASMSRV__EXPORT("wasmsrv_mode_async") void marker_mode_async(void) {}
wasmsrv__async_state wasmsrv__async;
WASMSRV__EXPORT("wasmsrv_on_event")
int32_t on_event(uint32_t ctx, int32_t kind, int64_t a, int64_t b) {
    if (kind == WASMSRV_EV_PLUGIN && ctx != 0 && !wasmsrv_conn_get(ctx)) late++;
    return wasmsrv_dispatch(&app, ctx, kind, a, b);
}
