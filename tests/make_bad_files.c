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
    /* valid companions: d=16 and d=8 files, and one with three NaN rows */
    size_t nan_rows[3] = {7, 2000, 4000};
    if (tu_write_acts(tu_path(argv[1], "good.h5"), 8192, 16, 100, 256, 0, 512, NULL, 0) ||
        tu_write_acts(tu_path(argv[1], "good8.h5"), 4096, 8, 100, 256, 0, 512, NULL, 0) ||
        tu_write_acts(tu_path(argv[1], "nan.h5"), 8192, 16, 100, 256, 0, 512, nan_rows, 3))
        return 1;
    if (tu_write_tiny_llama(argv[1])) return 1;
    return 0;
}
