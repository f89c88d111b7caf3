/*
 * The hello app as a plain WASI command, for the CGI-mode benchmark: wasmsrv runs a
 * fresh instance of it per request. Same bytes as samples/hello.
 *
 * Rebuild: bash sdk/c/build.sh
 */
#include <stdio.h>

int main(void) {
    fputs("Content-Type: text/plain; charset=utf-8\n\nHello from wasmsrv!\n", stdout);
    return 0;
}
