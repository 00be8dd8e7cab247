/* exit_code.c: exit(atoi(argv[1])); with no argument calls abort(), which in
 * WASI is a wasm trap (unreachable), not a proc_exit. */
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        abort();
    }
    exit(atoi(argv[1]));
}
