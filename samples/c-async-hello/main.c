/*
 * c-async-hello: samples/c-hello in the async shape (SPEC §8), through the C SDK's
 * callbacks (sdk/c/wasmsrv.h with WASMSRV_ASYNC). One instance answers many requests
 * at once with the same greeting as c-hello; /later answers the same after a 50 ms
 * host timer, which the instance spends serving other connections instead of
 * sleeping. A WebSocket upgrade (any path) is accepted and echoes every message.
 *
 *   bash sdk/c/build.sh    # rebuilds main.wasm
 *   wasmsrv run samples/c-async-hello/main.wasm
 */
#define WASMSRV_ASYNC
#include "../../sdk/c/wasmsrv.h"

static const char greeting[] = "Hello from wasmsrv!\n";

/* c->state: where the connection is. A WebSocket is WS_OPEN, or WS_OPEN + kind while
 * the message in c->msg waits to be echoed. */
enum { WAITING_TIMER = 1, WRITING = 2, WS_OPEN = 3 };

/* Writes the greeting and ends the connection, or waits for on_writable when the
 * host's queue is full (it took nothing; the same write is retried). */
static int answer(wasmsrv_conn *c) {
    c->state = WRITING;
    if (!c->resp.head_sent) wasmsrv_resp_header(&c->resp, "Content-Type", "text/plain; charset=utf-8");
    int rc = wasmsrv_resp_end(&c->resp, greeting, sizeof greeting - 1);
    if (rc == WASMSRV_ERR_WOULD_BLOCK) return WASMSRV_IDLE;
    /* ERR_CLOSED (client gone) and friends: nothing more to send, end it anyway. */
    return wasmsrv_done(c, 0);
}

static int on_request(wasmsrv_conn *c) {
    if (wasmsrv_str_eq(c->req.path, "/later")) {
        /* The handle is unique among live connections, so it doubles as the timer id;
         * on_end disarms the timer, so a reused handle never sees a stale one. */
        if (wasmsrv_timer_set(c->ctx, 50) != WASMSRV_OK) return wasmsrv_done(c, 503);
        c->state = WAITING_TIMER;
        return WASMSRV_IDLE;
    }
    return answer(c);
}

static int on_timer(uint32_t id) {
    wasmsrv_conn *c = wasmsrv_conn_get(id);
    if (!c || c->state != WAITING_TIMER) return WASMSRV_IDLE; /* ended meanwhile */
    c->state = 0;
    return answer(c);
}

/* Echoes messages until the host has none (or cannot take more): a message that
 * would block stays in c->msg and receiving pauses until on_writable, so the
 * host's receive buffer fills and it stops reading from the client (backpressure). */
static int ws_pump(wasmsrv_conn *c) {
    for (;;) {
        if (c->state > WS_OPEN) {
            int rc = wasmsrv_ws_send(c, c->state - WS_OPEN, c->msg.ptr, c->msg.len);
            if (rc != WASMSRV_OK) return WASMSRV_IDLE; /* would block: on_writable; closing: WS_CLOSED */
            c->state = WS_OPEN;
        }
        int kind = wasmsrv_ws_recv(c);
        if (kind == WASMSRV_ERR_WOULD_BLOCK) return WASMSRV_IDLE; /* on_ws_message */
        if (kind < 0) return wasmsrv_done(c, 0);                  /* closed and drained */
        c->state = WS_OPEN + kind;
    }
}

static int on_ws_connect(wasmsrv_conn *c) {
    if (wasmsrv_ws_accept(c, NULL) != WASMSRV_OK) return wasmsrv_done(c, 0); /* 403 */
    c->state = WS_OPEN;
    return WASMSRV_IDLE;
}

static int on_ws_message(wasmsrv_conn *c, int kind, uint32_t len) {
    (void)kind, (void)len; /* hints: ws_recv says what is really there */
    return c->state == WS_OPEN ? ws_pump(c) : WASMSRV_IDLE;
}

static int on_writable(wasmsrv_conn *c) {
    if (c->state == WRITING) return answer(c);
    if (c->state > WS_OPEN) return ws_pump(c);
    return WASMSRV_IDLE; /* a hint with nothing to retry */
}

static void on_end(wasmsrv_conn *c) {
    if (c->state == WAITING_TIMER) wasmsrv_timer_cancel(c->ctx);
}

/* DISCONNECT, CANCEL and WS_CLOSED keep the SDK's default: end the connection
 * (on_end runs). */
static const wasmsrv_callbacks app = {
    .on_request = on_request,
    .on_timer = on_timer,
    .on_writable = on_writable,
    .on_ws_connect = on_ws_connect,
    .on_ws_message = on_ws_message,
    .on_end = on_end,
};

WASMSRV_ASYNC_APP(app)
