/*
 * casync: a test guest for the C SDK's async callbacks (sdk/c/wasmsrv.h with
 * WASMSRV_ASYNC) that the host tests drive over real sockets (host/casync_test.go).
 *
 *   POST /body   reads the body in on_body as the host delivers it and answers
 *                "bytes=N chunks=K fnv=H": K is how many callbacks found bytes, H the
 *                FNV-1a hash of what it read
 *   POST /hold   turns backpressure on (the host sends this instance no new
 *                requests), writes "holding id=I" at once, reads the body like
 *                /body and, at its end, turns backpressure off and ends with
 *                "released bytes=N"
 *   GET /whoami  "id=I": I tells this instance from others (its clock at its first
 *                request)
 *   GET /yield?ms=N&served=S  keeps returning WASMSRV_YIELD (on_poll) for N ms of
 *                wall time and until the instance answered S more "hello" requests,
 *                then answers "polls=P"
 *   GET /big?kb=N  answers N KiB (byte i is (i*7)>>3 mod 256) in 16 KiB writes; a
 *                write the host refuses (its queue for a slow client is full) is
 *                retried in on_writable
 *   GET /hang    never answers by itself: it ends on CANCEL (deadline or drain),
 *                where it tries to write "late", or on DISCONNECT
 *   GET /stats   "cancels=C disconnects=D cancel_write=W hanging=H blocked=B
 *                yielding=Y": W is what the write in the last on_cancel returned
 *                (refused after a deadline, taken on a drain), H how many /hang
 *                requests are open, B how many /big writes got
 *                WASMSRV_ERR_WOULD_BLOCK, Y how many /yield requests are open
 *   anything else  "hello"
 *
 *   bash sdk/c/build.sh    # rebuilds main.wasm
 */
#define WASMSRV_ASYNC
#include "../../../sdk/c/wasmsrv.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

enum { READING = 1, YIELDING, HANGING, WRITING, STREAMING };

/* c->user of a /body, /hold, /yield or /big connection. */
typedef struct {
    uint64_t bytes;               /* /body, /hold: read so far */
    uint32_t chunks, hash, polls;
    int hold;                     /* /hold: backpressure is on */
    int64_t until_ns;             /* /yield: answer once the monotonic clock passes it */
    uint64_t until_hellos;        /* /yield: ... and hellos reached this */
    uint64_t total, sent;         /* /big */
    char out[96];                 /* the answer, kept for a write retried in on_writable */
    uint32_t out_len;
} conn_state;

static int cancels, disconnects, cancel_write, hanging, blocked;
static long long instance_id;
static uint64_t hellos; /* "hello" answers so far */

/* Connections in /yield, served by on_poll. */
#define MAX_YIELDERS 64
static uint32_t yielders[MAX_YIELDERS];
static int nyielders;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Writes c's answer (kept in its state) and ends it, or waits for on_writable. */
static int finish(wasmsrv_conn *c) {
    conn_state *st = (conn_state *)c->user;
    c->state = WRITING;
    int rc = wasmsrv_resp_end(&c->resp, st->out, st->out_len);
    if (rc == WASMSRV_ERR_WOULD_BLOCK) return WASMSRV_IDLE;
    return wasmsrv_done(c, 0);
}

__attribute__((format(printf, 2, 3))) static int answer(wasmsrv_conn *c, const char *fmt, ...) {
    conn_state *st = (conn_state *)c->user;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(st->out, sizeof st->out, fmt, ap);
    va_end(ap);
    st->out_len = n < 0 ? 0 : (uint32_t)n;
    wasmsrv_resp_header(&c->resp, "Content-Type", "text/plain");
    return finish(c);
}

/* Reads what the host has buffered; on WOULD_BLOCK waits for the next on_body. */
static int pump_body(wasmsrv_conn *c) {
    static uint8_t buf[4096];
    conn_state *st = (conn_state *)c->user;
    int got = 0;
    for (;;) {
        int64_t n = wasmsrv_body_read(&c->req, buf, sizeof buf);
        if (n == WASMSRV_ERR_WOULD_BLOCK) {
            st->chunks += got;
            return WASMSRV_IDLE;
        }
        if (n < 0) return wasmsrv_done(c, 500); /* too large: the host answers 413 */
        if (n == 0) break;
        got = 1;
        st->bytes += (uint64_t)n;
        for (int64_t i = 0; i < n; i++) st->hash = (st->hash ^ buf[i]) * 16777619u;
    }
    st->chunks += got;
    if (st->hold) {
        wasmsrv_set_backpressure(0);
        return answer(c, "released bytes=%llu\n", (unsigned long long)st->bytes);
    }
    return answer(c, "bytes=%llu chunks=%u fnv=0x%08x\n", (unsigned long long)st->bytes, (unsigned)st->chunks,
                  (unsigned)st->hash);
}

/* Writes the rest of a /big answer until done or until the host's queue is full. */
static int pump_out(wasmsrv_conn *c) {
    static uint8_t buf[16384];
    conn_state *st = (conn_state *)c->user;
    while (st->sent < st->total) {
        uint32_t n = st->total - st->sent < sizeof buf ? (uint32_t)(st->total - st->sent) : (uint32_t)sizeof buf;
        for (uint32_t i = 0; i < n; i++) buf[i] = (uint8_t)(((st->sent + i) * 7) >> 3);
        int last = st->sent + n == st->total;
        int rc = wasmsrv_resp_write_flags(&c->resp, buf, n, last ? WASMSRV_END : 0);
        if (rc == WASMSRV_ERR_WOULD_BLOCK) {
            blocked++;
            return WASMSRV_IDLE; /* on_writable: the same bytes again */
        }
        if (rc != WASMSRV_OK) break; /* the client is gone */
        st->sent += n;
    }
    return wasmsrv_done(c, 0);
}

/* The decimal value of query parameter key (key=digits), or 0. */
static long query_param(const wasmsrv_conn *c, const char *key) {
    const char *q = c->req.query.ptr, *end = q + c->req.query.len;
    size_t k = strlen(key);
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - q) > k && memcmp(q, key, k) == 0 && q[k] == '=') {
            long v = 0;
            for (const char *d = q + k + 1; d < stop && *d >= '0' && *d <= '9'; d++) v = v * 10 + (*d - '0');
            return v;
        }
        q = stop + 1;
    }
    return 0;
}

static int on_request(wasmsrv_conn *c) {
    wasmsrv_str p = c->req.path;
    if (!instance_id) instance_id = now_ns();
    if (wasmsrv_str_eq(p, "/whoami")) {
        char out[32];
        int n = snprintf(out, sizeof out, "id=%lld\n", instance_id);
        if (wasmsrv_resp_end(&c->resp, out, (uint32_t)n) == WASMSRV_ERR_WOULD_BLOCK) return wasmsrv_done(c, 503);
        return wasmsrv_done(c, 0);
    }
    if (wasmsrv_str_eq(p, "/stats")) {
        char out[160];
        int n = snprintf(out, sizeof out, "cancels=%d disconnects=%d cancel_write=%d hanging=%d blocked=%d yielding=%d\n",
                         cancels, disconnects, cancel_write, hanging, blocked, nyielders);
        if (wasmsrv_resp_end(&c->resp, out, (uint32_t)n) == WASMSRV_ERR_WOULD_BLOCK) return wasmsrv_done(c, 503);
        return wasmsrv_done(c, 0);
    }
    if (wasmsrv_str_eq(p, "/hang")) {
        c->state = HANGING;
        hanging++;
        return WASMSRV_IDLE;
    }
    if (!wasmsrv_str_eq(p, "/body") && !wasmsrv_str_eq(p, "/hold") && !wasmsrv_str_eq(p, "/yield") &&
        !wasmsrv_str_eq(p, "/big")) {
        if (wasmsrv_resp_end(&c->resp, "hello\n", 6) == WASMSRV_ERR_WOULD_BLOCK) return wasmsrv_done(c, 503);
        hellos++;
        return wasmsrv_done(c, 0);
    }
    conn_state *st = (conn_state *)calloc(1, sizeof *st);
    if (!st) return wasmsrv_done(c, 500);
    st->hash = 2166136261u;
    c->user = st;
    if (wasmsrv_str_eq(p, "/big")) {
        st->total = (uint64_t)query_param(c, "kb") * 1024;
        c->state = STREAMING;
        wasmsrv_resp_header(&c->resp, "Content-Type", "application/octet-stream");
        return pump_out(c);
    }
    if (wasmsrv_str_eq(p, "/yield")) {
        if (nyielders == MAX_YIELDERS) return wasmsrv_done(c, 503);
        st->until_ns = now_ns() + (int64_t)query_param(c, "ms") * 1000000;
        st->until_hellos = hellos + (uint64_t)query_param(c, "served");
        yielders[nyielders++] = c->ctx;
        c->state = YIELDING;
        return WASMSRV_YIELD; /* on_poll carries on, after the host served what is queued */
    }
    if (wasmsrv_str_eq(p, "/hold")) {
        st->hold = 1;
        wasmsrv_set_backpressure(1);
        /* Tells the client backpressure is on. A first write cannot block. */
        char line[48];
        int n = snprintf(line, sizeof line, "holding id=%lld\n", instance_id);
        wasmsrv_resp_header(&c->resp, "Content-Type", "text/plain");
        if (wasmsrv_resp_write(&c->resp, line, (uint32_t)n) != WASMSRV_OK) return wasmsrv_done(c, 500);
    }
    c->state = READING;
    return pump_body(c);
}

static void drop_yielder(uint32_t ctx) {
    for (int i = 0; i < nyielders; i++) {
        if (yielders[i] == ctx) {
            yielders[i] = yielders[--nyielders];
            return;
        }
    }
}

static int on_poll(void) {
    int64_t now = now_ns();
    for (int i = 0; i < nyielders;) {
        wasmsrv_conn *c = wasmsrv_conn_get(yielders[i]);
        conn_state *st = c ? (conn_state *)c->user : NULL;
        if (!st) {
            yielders[i] = yielders[--nyielders];
            continue;
        }
        st->polls++;
        if (now < st->until_ns || hellos < st->until_hellos) {
            i++;
            continue;
        }
        yielders[i] = yielders[--nyielders];
        answer(c, "polls=%u\n", (unsigned)st->polls);
    }
    return nyielders ? WASMSRV_YIELD : WASMSRV_IDLE;
}

static int on_body(wasmsrv_conn *c, int64_t ahead) {
    (void)ahead; /* a hint: body_read says what is really there */
    return c->state == READING ? pump_body(c) : WASMSRV_IDLE;
}

static int on_writable(wasmsrv_conn *c) {
    if (c->state == WRITING) return finish(c);
    if (c->state == STREAMING) return pump_out(c);
    return WASMSRV_IDLE; /* a hint with nothing to retry */
}

static int on_cancel(wasmsrv_conn *c) {
    cancels++;
    /* After the deadline the host refuses further writes (SPEC §8.4); on a drain
     * the connection may still be answered. */
    cancel_write = wasmsrv_resp_write(&c->resp, "late", 4);
    return wasmsrv_done(c, 0);
}

static int on_disconnect(wasmsrv_conn *c) {
    disconnects++;
    return wasmsrv_done(c, 0);
}

static void on_end(wasmsrv_conn *c) {
    conn_state *st = (conn_state *)c->user;
    if (c->state == HANGING) hanging--;
    if (c->state == YIELDING) drop_yielder(c->ctx);
    if (st && st->hold) wasmsrv_set_backpressure(0); /* a /hold that ended early */
    free(st);
    c->user = NULL;
}

static const wasmsrv_callbacks app = {
    .on_request = on_request,
    .on_body = on_body,
    .on_writable = on_writable,
    .on_cancel = on_cancel,
    .on_disconnect = on_disconnect,
    .on_poll = on_poll,
    .on_end = on_end,
};

WASMSRV_ASYNC_APP(app)
