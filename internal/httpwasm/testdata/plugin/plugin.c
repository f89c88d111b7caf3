// A Traefik-style http-wasm plugin in C, written against the http-wasm handler
// ABI (http-wasm.io) alone, as Traefik's plugin demos are written against it in
// Go: its configuration is JSON read with get_config when the module starts.
//
//   {
//     "headers":         {"X-Foo": "Bar"},   set on the request before next
//     "responseHeaders": {"X-Plugin": "on"}, set on the response
//     "deny":            "/admin",           answer 403 to paths under it
//     "reply":           "hello"             answer 200 with this body (no next)
//   }
//
// Build: bash sdk/c/build.sh (a WASI reactor, like TinyGo's -buildmode=c-shared).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT(name) __attribute__((import_module("http_handler"), import_name(name)))
IMPORT("get_config") uint32_t get_config(char *buf, uint32_t limit);
IMPORT("get_uri") uint32_t get_uri(char *buf, uint32_t limit);
IMPORT("set_header_value") void set_header_value(uint32_t kind, const char *name, uint32_t name_len, const char *value, uint32_t value_len);
IMPORT("write_body") void write_body(uint32_t kind, const char *body, uint32_t len);
IMPORT("set_status_code") void set_status_code(uint32_t code);
IMPORT("log") void http_log(int32_t level, const char *msg, uint32_t len);

enum { KIND_REQUEST = 0, KIND_RESPONSE = 1 };

typedef struct {
	char *name, *value;
} header;

typedef struct {
	header *items;
	int n;
} headers;

static headers req_headers, resp_headers;
static char *deny, *reply;

// A small JSON reader: objects, strings (with the common escapes), and
// skipping of numbers, booleans and null. Enough for a plugin's config.
typedef struct {
	const char *p, *end;
	int bad;
} reader;

static void ws(reader *r) {
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
		r->p++;
}

static int eat(reader *r, char c) {
	ws(r);
	if (r->p < r->end && *r->p == c) {
		r->p++;
		return 1;
	}
	return 0;
}

static char *string(reader *r) {
	ws(r);
	if (r->p >= r->end || *r->p != '"') {
		r->bad = 1;
		return NULL;
	}
	r->p++;
	char *out = malloc((size_t)(r->end - r->p) + 1), *o = out;
	while (r->p < r->end && *r->p != '"') {
		char c = *r->p++;
		if (c == '\\' && r->p < r->end) {
			c = *r->p++;
			switch (c) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			default: break; // \" \\ \/ as themselves; \u is not supported
			}
		}
		*o++ = c;
	}
	if (r->p >= r->end) {
		r->bad = 1;
		free(out);
		return NULL;
	}
	r->p++;
	*o = 0;
	return out;
}

static void skip(reader *r);

static void skip_object(reader *r) {
	if (eat(r, '}'))
		return;
	do {
		free(string(r));
		if (!eat(r, ':')) {
			r->bad = 1;
			return;
		}
		skip(r);
	} while (!r->bad && eat(r, ','));
	if (!eat(r, '}'))
		r->bad = 1;
}

static void skip(reader *r) {
	ws(r);
	if (r->p >= r->end) {
		r->bad = 1;
	} else if (*r->p == '"') {
		free(string(r));
	} else if (eat(r, '{')) {
		skip_object(r);
	} else if (eat(r, '[')) {
		if (eat(r, ']'))
			return;
		do
			skip(r);
		while (!r->bad && eat(r, ','));
		if (!eat(r, ']'))
			r->bad = 1;
	} else {
		while (r->p < r->end && *r->p != ',' && *r->p != '}' && *r->p != ']')
			r->p++;
	}
}

static void header_object(reader *r, headers *h) {
	if (!eat(r, '{')) {
		r->bad = 1;
		return;
	}
	if (eat(r, '}'))
		return;
	do {
		char *name = string(r);
		if (!eat(r, ':')) {
			r->bad = 1;
			return;
		}
		char *value = string(r);
		if (r->bad)
			return;
		h->items = realloc(h->items, sizeof(header) * (size_t)(h->n + 1));
		h->items[h->n++] = (header){name, value};
	} while (eat(r, ','));
	if (!eat(r, '}'))
		r->bad = 1;
}

static void fail(const char *msg) {
	http_log(2, msg, strlen(msg));
	__builtin_trap(); // a plugin that cannot read its config must not serve
}

// The reactor's constructor: read the config once, as Traefik plugins do in main.
__attribute__((constructor)) static void init(void) {
	uint32_t n = get_config(NULL, 0);
	char *cfg = malloc(n + 1);
	get_config(cfg, n);
	reader r = {cfg, cfg + n, 0};
	if (n == 0)
		return; // no config: a plugin that passes everything on
	if (!eat(&r, '{'))
		fail("config: want a JSON object");
	if (!eat(&r, '}')) {
		do {
			char *key = string(&r);
			if (r.bad || !eat(&r, ':'))
				fail("config: bad JSON");
			if (strcmp(key, "headers") == 0)
				header_object(&r, &req_headers);
			else if (strcmp(key, "responseHeaders") == 0)
				header_object(&r, &resp_headers);
			else if (strcmp(key, "deny") == 0)
				deny = string(&r);
			else if (strcmp(key, "reply") == 0)
				reply = string(&r);
			else
				skip(&r);
			free(key);
			if (r.bad)
				fail("config: bad JSON");
		} while (eat(&r, ','));
		if (!eat(&r, '}'))
			fail("config: bad JSON");
	}
	free(cfg);
}

static char uri[4096];

__attribute__((export_name("handle_request"))) int64_t handle_request(void) {
	for (int i = 0; i < resp_headers.n; i++)
		set_header_value(KIND_RESPONSE, resp_headers.items[i].name, strlen(resp_headers.items[i].name),
		                 resp_headers.items[i].value, strlen(resp_headers.items[i].value));
	if (deny) {
		uint32_t n = get_uri(uri, sizeof uri);
		size_t d = strlen(deny);
		if (n <= sizeof uri && n >= d && memcmp(uri, deny, d) == 0) {
			set_status_code(403);
			write_body(KIND_RESPONSE, "denied\n", 7);
			return 0;
		}
	}
	if (reply) {
		write_body(KIND_RESPONSE, reply, strlen(reply));
		return 0;
	}
	for (int i = 0; i < req_headers.n; i++)
		set_header_value(KIND_REQUEST, req_headers.items[i].name, strlen(req_headers.items[i].name),
		                 req_headers.items[i].value, strlen(req_headers.items[i].value));
	return 1; // next
}

__attribute__((export_name("handle_response"))) void handle_response(int32_t ctx, int32_t is_error) {
	(void)ctx;
	(void)is_error;
}
