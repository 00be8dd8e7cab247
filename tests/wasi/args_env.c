/* args_env.c: prints argv (one `argv[i]=...` line each), then GREETING;
 * exits with code = argc. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        printf("argv[%d]=%s\n", i, argv[i]);
    }
    const char *greeting = getenv("GREETING");
    if (greeting != NULL) {
        printf("GREETING=%s\n", greeting);
    } else {
        printf("GREETING unset\n");
    }
    return argc;
}
