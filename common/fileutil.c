/* common/fileutil.c: temporary-name-then-rename for outputs. */
#include "common/fileutil.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdlib.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sae_tmp_path(char *buf, size_t cap, const char *path, sae_error *err) {
    int n = snprintf(buf, cap, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= cap) return sae_error_set(err, SAE_ERR_ARG, path, "path too long");
    return SAE_OK;
}

static int fsync_path(const char *path, int flags) {
    int fd = open(path, flags);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int sae_commit_file(const char *tmp, const char *path, sae_error *err) {
    if (fsync_path(tmp, O_RDONLY) != 0)
        return sae_error_set(err, SAE_ERR_IO, path, "cannot flush output: %s", strerror(errno));
    if (rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return sae_error_set(err, SAE_ERR_IO, path, "cannot write output: %s", strerror(e));
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    fsync_path(dirname(dir), O_RDONLY | O_DIRECTORY); /* best effort: durability of the rename */
    return SAE_OK;
}

int sae_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int sae_check_input_file(const char *path, const char *what, sae_error *err) {
    if (!path || !path[0])
        return sae_error_set(err, SAE_ERR_ARG, what, "the path is empty");
    struct stat st;
    if (stat(path, &st) != 0) return sae_error_set(err, SAE_ERR_IO, path, "%s", strerror(errno));
    if (S_ISDIR(st.st_mode))
        return sae_error_set(err, SAE_ERR_IO, path, "is a directory, not a file");
    if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode))
        return sae_error_set(err, SAE_ERR_IO, path, "is not a regular file");
    if (access(path, R_OK) != 0) return sae_error_set(err, SAE_ERR_IO, path, "%s", strerror(errno));
    return SAE_OK;
}

int sae_remove_stale_tmp(const char *path) {
    char pattern[4200];
    snprintf(pattern, sizeof pattern, "%s.tmp.*", path);
    glob_t g;
    int removed = 0;
    if (glob(pattern, GLOB_NOSORT, NULL, &g) != 0) return 0;
    size_t prefix = strlen(path) + 5; /* ".tmp." */
    for (size_t i = 0; i < g.gl_pathc; i++) {
        char *end;
        long pid = strtol(g.gl_pathv[i] + prefix, &end, 10);
        if (*end || pid <= 0) continue;
        if (pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH &&
            remove(g.gl_pathv[i]) == 0)
            removed++;
    }
    globfree(&g);
    return removed;
}
