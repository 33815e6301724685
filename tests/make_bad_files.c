/* tests/make_bad_files.c: writes the catalogue of broken activation files into
 * a folder, one "<name>.h5<TAB>phrase" line each on stdout, for the CLI tests. */
#include <stdio.h>

#include "tests/testutil.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_bad_files DIR\n");
        return 2;
    }
    const char **names, **phrases;
    size_t n = tu_write_bad_files(argv[1], &names, &phrases);
    for (size_t i = 0; i < n; i++) printf("%s.h5\t%s\n", names[i], phrases[i]);
    return 0;
}
