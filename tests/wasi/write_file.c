/* write_file.c: writes argv[2] into the file argv[1] (created or truncated).
 * Exits 0; on failure prints `error: <strerror(errno)>` to stderr and exits 3. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int fail(void) {
    fprintf(stderr, "error: %s\n", strerror(errno));
    return 3;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        errno = EINVAL;
        return fail();
    }
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        return fail();
    }
    const char *data = argv[2];
    size_t len = strlen(data);
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0) {
            return fail();
        }
        data += w;
        len -= (size_t)w;
    }
    if (close(fd) != 0) {
        return fail();
    }
    return 0;
}
