/* stdin_echo.c: copies stdin to stdout uppercased (ASCII a-z only), then
 * prints `read N bytes` to stderr. Exits 0 (1 on a read/write error). */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    char buf[4096];
    unsigned long total = 0;
    for (;;) {
        ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
        if (n < 0) {
            perror("read");
            return 1;
        }
        if (n == 0) {
            break;
        }
        total += (unsigned long)n;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] >= 'a' && buf[i] <= 'z') {
                buf[i] = (char)(buf[i] - 'a' + 'A');
            }
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(STDOUT_FILENO, buf + off, (size_t)(n - off));
            if (w < 0) {
                perror("write");
                return 1;
            }
            off += w;
        }
    }
    fprintf(stderr, "read %lu bytes\n", total);
    return 0;
}
