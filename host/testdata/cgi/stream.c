/*
 * A CGI command in C that prints an event stream progressively, like
 * host/testdata/cgistream (Go): QUERY_STRING "n=N&gap=MS" (default 3 events 500 ms
 * apart), each event flushed on its own (stdout is not a terminal, so stdio would
 * otherwise hold it until exit); "gate=1" makes each event after the first also
 * wait, gap by gap, until the file /gate/<its number> exists (a test creates it once
 * it received the event before); "fail=1" aborts after the header section.
 *
 * Rebuild: bash sdk/c/build.sh
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long param(const char *q, const char *key, long def) {
    size_t k = strlen(key);
    for (const char *p = q; p && *p; p = strchr(p, '&'), p = p ? p + 1 : NULL) {
        if (strncmp(p, key, k) == 0 && p[k] == '=') return strtol(p + k + 1, NULL, 10);
    }
    return def;
}

int main(void) {
    const char *q = getenv("QUERY_STRING");
    fputs("Content-Type: text/event-stream\nCache-Control: no-store\n\n", stdout);
    fflush(stdout);
    if (param(q, "fail", 0)) abort();
    long n = param(q, "n", 3), gap = param(q, "gap", 500), gate = param(q, "gate", 0);
    for (long i = 1; i <= n; i++) {
        while (i > 1) {
            usleep((useconds_t)gap * 1000);
            if (!gate) break;
            char path[32];
            snprintf(path, sizeof path, "/gate/%ld", i);
            if (access(path, F_OK) == 0) break;
        }
        printf("data: %ld\n\n", i);
        if (fflush(stdout) != 0) {
            fputs("stream: client gone\n", stderr);
            return 1;
        }
    }
    return 0;
}
