/*
 * c-cgi: a plain WASI command in C, with no wasmsrv SDK, served in CGI mode (WAGI
 * semantics). Same behaviour as samples/cgi (Go): request metadata from CGI
 * environment variables, the body from stdin, the response printed to stdout.
 *
 *   clang --target=wasm32-wasi -O2 -o main.wasm main.c
 *   wasmsrv run samples/c-cgi/main.wasm
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *env(const char *k) {
    const char *v = getenv(k);
    return v ? v : "";
}

int main(void) {
    size_t len = 0, cap = 4096;
    char *body = malloc(cap);
    if (!body) return 1;
    for (;;) {
        if (len == cap) {
            char *p = realloc(body, cap *= 2);
            if (!p) {
                fputs("cgi: body too large for memory\n", stderr);
                return 1;
            }
            body = p;
        }
        size_t n = fread(body + len, 1, cap - len, stdin);
        if (n == 0) break;
        len += n;
    }
    if (ferror(stdin)) {
        fputs("cgi: reading body failed\n", stderr);
        return 1;
    }
    const char *query = env("QUERY_STRING");
    if (strncmp(query, "redirect=", 9) == 0) {
        /* A Location with no Status is a redirect (RFC 3875 6.2.3); the server sends 302. */
        printf("Location: %s\n\n", query + 9);
        return 0;
    }
    char status[32] = "200 OK";
    if (strncmp(query, "status=", 7) == 0) {
        char *end;
        long n = strtol(query + 7, &end, 10);
        if (end != query + 7 && *end == 0 && n >= 200 && n <= 599) snprintf(status, sizeof status, "%ld Custom", n);
    }
    fprintf(stderr, "cgi: serving %s %s\n", env("REQUEST_METHOD"), env("PATH_INFO"));
    printf("Status: %s\n", status);
    fputs("Content-Type: text/plain; charset=utf-8\n", stdout);
    fputs("X-Cgi: 1\n\n", stdout);
    static const char *keys[] = {"REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
                                 "CONTENT_LENGTH", "SERVER_PROTOCOL", "GATEWAY_INTERFACE", "HTTP_X_TEST"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) printf("%s=%s\n", keys[i], env(keys[i]));
    printf("body=%zu\n", len);
    fwrite(body, 1, len, stdout);
    return 0;
}
