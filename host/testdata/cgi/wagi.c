/*
 * wagi: a module written for WAGI (deislabs/wagi's env_wagi example, or Spin's
 * Wagi executor): it prints its argv, one "arg: " line each, then its whole
 * environment. Build: bash sdk/c/build.sh
 */
#include <stdio.h>

extern char **environ;

int main(int argc, char **argv) {
    printf("Content-Type: text/plain\n\n");
    for (int i = 0; i < argc; i++)
        printf("arg: %s\n", argv[i]);
    for (char **e = environ; *e; e++)
        printf("%s\n", *e);
    return 0;
}
