/* cat.c: copies the file named by argv[1] to stdout.
 * On failure prints `error: <strerror(errno)>` to stderr and exits 2. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int fail(void) {
    fprintf(stderr, "error: %s\n", strerror(errno));
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        errno = EINVAL;
        return fail();
    }
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) {
        return fail();
    }
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            return fail();
        }
        if (n == 0) {
            break;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(STDOUT_FILENO, buf + off, (size_t)(n - off));
            if (w < 0) {
                return fail();
            }
            off += w;
        }
    }
    close(fd);
    return 0;
}
