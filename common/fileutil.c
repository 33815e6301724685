/* common/fileutil.c: temporary-name-then-rename for outputs, a table of the
 * temporary files alive so every exit path can remove them, and the path
 * identity check that keeps an output off an input. */
/* realpath is X/Open, beyond the project-wide _POSIX_C_SOURCE */
#define _XOPEN_SOURCE 700
#include "common/fileutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- the table of live temporary files -----------------------------------
 * Fixed-size static storage, so a signal handler can walk it without taking
 * a lock or touching the allocator. A slot's name is written before it is
 * marked live and the mark is cleared before the slot is reused, so the
 * handler only ever reads complete names. Temporary names are per path and
 * per process, so the table holds one entry per output being written. */
#define TMP_SLOTS 128
#define TMP_NAME_MAX 4352

static char tmp_names[TMP_SLOTS][TMP_NAME_MAX];
static volatile sig_atomic_t tmp_live[TMP_SLOTS];
static atomic_flag tmp_lock = ATOMIC_FLAG_INIT; /* writers only; rare and short */

static void tmp_table_lock(void) {
    while (atomic_flag_test_and_set_explicit(&tmp_lock, memory_order_acquire)) {
    }
}
static void tmp_table_unlock(void) { atomic_flag_clear_explicit(&tmp_lock, memory_order_release); }

static int tmp_find(const char *name) {
    for (int i = 0; i < TMP_SLOTS; i++)
        if (tmp_live[i] && strcmp(tmp_names[i], name) == 0) return i;
    return -1;
}

/* A library that removed its temporary file itself (remove(), not
 * sae_tmp_discard) leaves a live slot naming nothing: reclaim those when the
 * table is full. */
static void tmp_reclaim(void) {
    for (int i = 0; i < TMP_SLOTS; i++)
        if (tmp_live[i] && access(tmp_names[i], F_OK) != 0 && errno == ENOENT) tmp_live[i] = 0;
}

static void tmp_register(const char *name) {
    if (strlen(name) >= TMP_NAME_MAX) return; /* cannot happen for names sae_tmp_path builds */
    tmp_table_lock();
    if (tmp_find(name) < 0) {
        int slot = -1;
        for (int pass = 0; pass < 2 && slot < 0; pass++) {
            if (pass) tmp_reclaim();
            for (int i = 0; i < TMP_SLOTS && slot < 0; i++)
                if (!tmp_live[i]) slot = i;
        }
        /* a full table only costs the cleanup of this one name on a signal */
        if (slot >= 0) {
            strcpy(tmp_names[slot], name);
            atomic_signal_fence(memory_order_seq_cst);
            tmp_live[slot] = 1;
        }
    }
    tmp_table_unlock();
}

static void tmp_unregister(const char *name) {
    tmp_table_lock();
    int i = tmp_find(name);
    if (i >= 0) tmp_live[i] = 0;
    tmp_table_unlock();
}

void sae_tmp_remove_all(void) {
    for (int i = 0; i < TMP_SLOTS; i++)
        if (tmp_live[i]) {
            unlink(tmp_names[i]);
            tmp_live[i] = 0;
        }
}

int sae_tmp_path(char *buf, size_t cap, const char *path, sae_error *err) {
    int n = snprintf(buf, cap, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= cap) return sae_error_set(err, SAE_ERR_ARG, path, "path too long");
    tmp_register(buf);
    return SAE_OK;
}

void sae_tmp_discard(const char *tmp) {
    remove(tmp);
    tmp_unregister(tmp);
}

static int fsync_path(const char *path, int flags) {
    int fd = open(path, flags);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int sae_commit_file(const char *tmp, const char *path, sae_error *err) {
    if (fsync_path(tmp, O_RDONLY) != 0) {
        int e = errno;
        sae_tmp_discard(tmp);
        return sae_error_set(err, SAE_ERR_IO, path, "cannot flush output: %s", strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        sae_tmp_discard(tmp);
        return sae_error_set(err, SAE_ERR_IO, path, "cannot write output: %s", strerror(e));
    }
    tmp_unregister(tmp); /* after the rename: a signal in between unlinks a name already gone */
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

/* The folder an output's temporary file is created in. */
static void parent_dir(const char *path, char *dir, size_t cap) {
    snprintf(dir, cap, "%s", path);
    char *d = dirname(dir); /* may return a static "." or point into dir */
    if (d != dir) snprintf(dir, cap, "%s", d);
}

int sae_check_output_file(const char *path, const char *what, sae_error *err) {
    if (!path || !path[0])
        return sae_error_set(err, SAE_ERR_ARG, what, "the path is empty");
    size_t len = strlen(path);
    if (path[len - 1] == '/')
        return sae_error_set(err, SAE_ERR_IO, path, "names a folder, not a file");
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return sae_error_set(err, SAE_ERR_IO, path, "is a directory, not a file");
        /* the output is renamed over the path: that would replace a device or a pipe */
        if (!S_ISREG(st.st_mode))
            return sae_error_set(err, SAE_ERR_IO, path, "is not a regular file; an output replaces the file at its path");
    }
    char dir[4200];
    parent_dir(path, dir, sizeof dir);
    if (stat(dir, &st) != 0)
        return sae_error_set(err, SAE_ERR_IO, path, "cannot create the output: %s (folder %s)", strerror(errno), dir);
    if (!S_ISDIR(st.st_mode))
        return sae_error_set(err, SAE_ERR_IO, path, "cannot create the output: %s is not a folder", dir);
    if (access(dir, W_OK | X_OK) != 0)
        return sae_error_set(err, SAE_ERR_IO, path, "cannot create the output: %s (folder %s)", strerror(errno), dir);
    return SAE_OK;
}

int sae_remove_stale_tmp(const char *path, void (*on_removed)(const char *tmp, void *user), void *user) {
    char dir[4200], base[4200];
    parent_dir(path, dir, sizeof dir);
    snprintf(base, sizeof base, "%s", path);
    const char *b = basename(base);
    char prefix[4300];
    int np = snprintf(prefix, sizeof prefix, "%s.tmp.", b);
    if (np < 0 || (size_t)np >= sizeof prefix) return 0;
    /* readdir, not glob: a path may hold glob's special characters */
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, (size_t)np) != 0) continue;
        const char *digits = e->d_name + np;
        char *end;
        errno = 0;
        long pid = strtol(digits, &end, 10);
        if (end == digits || *end || errno || pid <= 0 || pid > INT_MAX) continue;
        if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char full[8600]; /* spelled as the caller spelled the output */
        snprintf(full, sizeof full, "%s.tmp.%s", path, digits);
        if (remove(full) == 0) {
            removed++;
            if (on_removed) on_removed(full, user);
        }
    }
    closedir(d);
    return removed;
}

/* --- path identity ------------------------------------------------------- */
void sae_paths_add(sae_paths *ps, const char *flag, const char *path, sae_path_kind kind) {
    if (!path) return;
    SAE_ASSERT(ps->n < SAE_PATHS_MAX);
    ps->p[ps->n].flag = flag;
    ps->p[ps->n].path = path;
    ps->p[ps->n].kind = kind;
    ps->n++;
}

/* What a path refers to: the inode of an existing file (symlinks followed,
 * hard links alike), or for an output not yet there the real path of its
 * folder plus its name. */
typedef struct {
    int exists;
    dev_t dev;
    ino_t ino;
    char canon[4200 + 256];
} path_ident;

static void identify(const char *path, path_ident *id) {
    struct stat st;
    memset(id, 0, sizeof *id);
    if (stat(path, &st) == 0) {
        id->exists = 1, id->dev = st.st_dev, id->ino = st.st_ino;
        return;
    }
    char dir[4200], base[4200], real[PATH_MAX];
    parent_dir(path, dir, sizeof dir);
    snprintf(base, sizeof base, "%s", path);
    const char *r = realpath(dir, real);
    snprintf(id->canon, sizeof id->canon, "%s/%s", r ? r : dir, basename(base));
}

static int same_file(const path_ident *a, const path_ident *b) {
    if (a->exists != b->exists) return 0;
    if (a->exists) return a->dev == b->dev && a->ino == b->ino;
    return strcmp(a->canon, b->canon) == 0;
}

/* read and never written */
static int input_only(sae_path_kind k) { return k == SAE_PATH_IN || k == SAE_PATH_IN_DIR; }

static int check_one(const sae_paths *ps, size_t i, sae_error *err) {
    const char *flag = ps->p[i].flag, *path = ps->p[i].path;
    sae_error e = {0};
    int rc = SAE_OK;
    struct stat st;
    if (ps->p[i].kind == SAE_PATH_IN_DIR && path && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (access(path, R_OK | X_OK) != 0)
            return sae_error_set(err, SAE_ERR_IO, path, "cannot read this folder (%s)", flag);
        return SAE_OK; /* its files are checked by the reader that knows which it needs */
    }
    if (ps->p[i].kind != SAE_PATH_OUT) rc = sae_check_input_file(path, flag, &e);
    if (rc == SAE_OK && !input_only(ps->p[i].kind)) rc = sae_check_output_file(path, flag, &e);
    if (rc == SAE_OK) return SAE_OK;
    /* the message names the file; say which flag it was given to as well */
    if (strcmp(e.subject, flag) == 0) return sae_error_set(err, rc, e.subject, "%s", e.msg);
    return sae_error_set(err, rc, e.subject, "%s (%s)", e.msg, flag);
}

static int collision(const sae_paths *ps, size_t out, size_t other, sae_error *err) {
    const char *of = ps->p[out].flag, *op = ps->p[out].path;
    const char *xf = ps->p[other].flag, *xp = ps->p[other].path;
    char also[4300] = "";
    if (strcmp(op, xp) != 0) snprintf(also, sizeof also, " (%s)", xp); /* a link or another spelling */
    if (input_only(ps->p[other].kind))
        return sae_error_set(err, SAE_ERR_ARG, op, "%s is the %s file%s; writing it would destroy that input",
                             of, xf, also);
    return sae_error_set(err, SAE_ERR_ARG, op, "%s and %s are the same file%s; one output would overwrite the other",
                         of, xf, also);
}

int sae_paths_check(const sae_paths *ps, sae_error *err) {
    for (size_t i = 0; i < ps->n; i++) {
        int rc = check_one(ps, i, err);
        if (rc < 0) return rc;
    }
    path_ident a, b;
    for (size_t i = 0; i < ps->n; i++) {
        if (input_only(ps->p[i].kind)) continue;
        identify(ps->p[i].path, &a);
        for (size_t j = 0; j < ps->n; j++) {
            /* every output against every input, and each pair of outputs once */
            if (j == i || (!input_only(ps->p[j].kind) && j < i)) continue;
            identify(ps->p[j].path, &b);
            if (same_file(&a, &b)) return collision(ps, i, j, err);
        }
    }
    return SAE_OK;
}
