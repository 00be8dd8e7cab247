/* hello.c: the smallest WASI command; prints one line and exits 0. */
#include <stdio.h>

int main(void) {
    fputs("hello from wasi\n", stdout);
    return 0;
}
