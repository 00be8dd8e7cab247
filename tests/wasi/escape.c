/* escape.c: probes the sandbox. For each argv[1..] tries open(O_RDONLY) and
 * prints `PATH: ok` or `PATH: denied (<strerror>)`; then lists "/" and prints
 * `ls /: <names...>` or `ls /: denied (<strerror>)`. Always exits 0. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        int fd = open(argv[i], O_RDONLY);
        if (fd >= 0) {
            printf("%s: ok\n", argv[i]);
            close(fd);
        } else {
            printf("%s: denied (%s)\n", argv[i], strerror(errno));
        }
    }
    DIR *dir = opendir("/");
    if (dir == NULL) {
        printf("ls /: denied (%s)\n", strerror(errno));
        return 0;
    }
    printf("ls /:");
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        printf(" %s", entry->d_name);
    }
    printf("\n");
    closedir(dir);
    return 0;
}
