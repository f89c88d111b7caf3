/*
 * c-echo: the C twin of samples/echo, answering byte for byte alike:
 *
 *   - a request with a body gets that body streamed back as it arrives, each chunk
 *     flushed, with the request's method, path and query in X-Echo-* headers;
 *   - a request without a body gets a JSON report of its method, path, query, root
 *     path, host, protocol and headers (in order, duplicates kept), encoded exactly
 *     as Go's encoding/json would.
 *
 *   bash sdk/c/build.sh    # rebuilds main.wasm
 *   wasmsrv run samples/c-echo/main.wasm
 */
#include "../../sdk/c/wasmsrv.h"

/* ---- a growable output buffer, kept between requests ---- */

static struct {
    char *p;
    uint32_t len, cap;
    int oom;
} out;

static void put(const char *s, uint32_t n) {
    if (out.oom) return;
    if (out.len + n > out.cap) {
        uint32_t c = out.cap ? out.cap : 1024;
        while (c < out.len + n) c *= 2;
        char *q = realloc(out.p, c);
        if (!q) {
            out.oom = 1;
            return;
        }
        out.p = q;
        out.cap = c;
    }
    memcpy(out.p + out.len, s, n);
    out.len += n;
}

static void puts_(const char *s) { put(s, (uint32_t)strlen(s)); }

/* Length of the valid UTF-8 sequence at s (as Go's utf8.DecodeRune accepts it), or 0. */
static uint32_t utf8_len(const unsigned char *s, uint32_t n) {
    unsigned char b = s[0];
    unsigned char lo = 0x80, hi = 0xBF;
    uint32_t need;
    if (b >= 0xC2 && b <= 0xDF) need = 2;
    else if (b >= 0xE0 && b <= 0xEF) {
        need = 3;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F; /* no surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 4;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F; /* nothing past U+10FFFF */
    } else return 0;
    if (n < need || s[1] < lo || s[1] > hi) return 0;
    for (uint32_t i = 2; i < need; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return need;
}

/* Appends s as a JSON string, escaped as encoding/json does (HTML-safe). */
static void json_str(wasmsrv_str s) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s.ptr;
    put("\"", 1);
    for (uint32_t i = 0; i < s.len;) {
        unsigned char b = p[i];
        if (b < 0x80) {
            char e[6] = {'\\', 'u', '0', '0', hex[b >> 4], hex[b & 15]};
            switch (b) {
            case '"': put("\\\"", 2); break;
            case '\\': put("\\\\", 2); break;
            case '\b': put("\\b", 2); break;
            case '\f': put("\\f", 2); break;
            case '\n': put("\\n", 2); break;
            case '\r': put("\\r", 2); break;
            case '\t': put("\\t", 2); break;
            default:
                if (b < 0x20 || b == '<' || b == '>' || b == '&') put(e, 6);
                else put((const char *)&p[i], 1);
            }
            i++;
            continue;
        }
        uint32_t n = utf8_len(p + i, s.len - i);
        if (n == 0) {
            put("\\ufffd", 6);
            i++;
        } else if (n == 3 && b == 0xE2 && p[i + 1] == 0x80 && (p[i + 2] == 0xA8 || p[i + 2] == 0xA9)) {
            put(p[i + 2] == 0xA8 ? "\\u2028" : "\\u2029", 6); /* breaks JSONP otherwise */
            i += 3;
        } else {
            put((const char *)&p[i], n);
            i += n;
        }
    }
    put("\"", 1);
}

static void json_field(const char *name, wasmsrv_str v) {
    puts_(name);
    json_str(v);
}

static int report(wasmsrv_request *req, wasmsrv_response *resp) {
    char proto[16] = "HTTP/2.0";
    if (req->proto_major != 2) {
        memcpy(proto, "HTTP/1.", 7);
        proto[7] = (char)('0' + req->proto_minor);
        proto[8] = 0;
    }
    out.len = 0;
    out.oom = 0;
    json_field("{\"method\":", req->method);
    json_field(",\"path\":", req->path);
    json_field(",\"query\":", req->query);
    json_field(",\"root_path\":", req->root_path);
    json_field(",\"host\":", req->authority);
    json_field(",\"proto\":", wasmsrv_cstr(proto));
    puts_(",\"headers\":[");
    uint32_t it = 0;
    wasmsrv_header h;
    for (int first = 1; wasmsrv_header_next(req, &it, &h); first = 0) {
        puts_(first ? "[" : ",[");
        json_str(h.name);
        put(",", 1);
        json_str(h.value);
        put("]", 1);
    }
    puts_("]}\n");
    if (out.oom) return 500;
    wasmsrv_resp_header(resp, "Content-Type", "application/json");
    return wasmsrv_resp_end(resp, out.p, out.len) == 0 ? 0 : -1;
}

static int stream_back(wasmsrv_request *req, wasmsrv_response *resp) {
    static uint8_t buf[32 << 10];
    wasmsrv_str ct;
    if (!wasmsrv_header_get(req, "content-type", &ct) || ct.len == 0) ct = wasmsrv_cstr("application/octet-stream");
    wasmsrv_resp_header_n(resp, "Content-Type", 12, ct.ptr, ct.len);
    wasmsrv_resp_header_n(resp, "X-Echo-Method", 13, req->method.ptr, req->method.len);
    wasmsrv_resp_header_n(resp, "X-Echo-Path", 11, req->path.ptr, req->path.len);
    wasmsrv_resp_header_n(resp, "X-Echo-Query", 12, req->query.ptr, req->query.len);
    for (;;) {
        int64_t n = wasmsrv_body_read(req, buf, sizeof buf);
        if (n == 0) return 0;
        if (n < 0) {
            if (n == WASMSRV_ERR_TOO_LARGE) wasmsrv_resp_status(resp, 413); /* no effect once sent */
            return 0;
        }
        if (wasmsrv_resp_write(resp, buf, (uint32_t)n) != 0) return 0;
    }
}

static int echo(wasmsrv_request *req, wasmsrv_response *resp) {
    if (req->content_length != 0) return stream_back(req, resp);
    return report(req, resp);
}

WASMSRV_HANDLER(echo)
