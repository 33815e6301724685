/* common/fileutil.h: outputs appear complete or not at all, never over an
 * input, and leave no temporary file behind.
 *
 * Every output is written under a temporary name in the same directory and
 * renamed over the final path only once it is complete and closed, so a crash
 * or a full disk never leaves a half-written file that looks finished.
 *
 *     char tmp[4096];
 *     sae_tmp_path(tmp, sizeof tmp, out, &err);   (registers tmp)
 *     ...write tmp...
 *     if (ok) sae_commit_file(tmp, out, &err); else sae_tmp_discard(tmp);
 *
 * Temporary names are "<path>.tmp.<pid>". They are kept in one process-wide
 * table from sae_tmp_path until commit or discard; sae_tmp_remove_all()
 * unlinks whatever is still listed, and is async-signal-safe, so the command
 * line calls it at exit and from its signal handlers. A temporary left by a
 * process that no longer runs (kill -9) is found by its pid and removed by
 * sae_remove_stale_tmp, which sae_paths_check's callers run on every output.
 *
 * Before a command reads or writes anything it declares every path it will
 * touch to one sae_paths list and calls sae_paths_check: inputs must be
 * readable files, outputs must be creatable, and no output may be one of the
 * inputs or another output (same inode, or for an output that does not exist
 * yet the same real directory and name), however the paths are spelled.
 */
#ifndef SAE_COMMON_FILEUTIL_H
#define SAE_COMMON_FILEUTIL_H

#include <stddef.h>

#include "common/err.h"

/* "<path>.tmp.<pid>", registered for removal at exit or on a signal; returns
 * SAE_ERR_ARG if it does not fit. Calling it again for the same path reuses
 * the entry. */
int sae_tmp_path(char *buf, size_t cap, const char *path, sae_error *err);
/* fsync tmp, rename it over path, fsync the directory; tmp is unregistered
 * (and removed if the rename failed). */
int sae_commit_file(const char *tmp, const char *path, sae_error *err);
/* Removes a temporary file and unregisters it (a failed write). */
void sae_tmp_discard(const char *tmp);
/* Unlinks every registered temporary file. Only unlink(2) and reads of a
 * static table: safe in a signal handler and at exit. */
void sae_tmp_remove_all(void);
int sae_file_exists(const char *path);
/* Checks that path names something a reader can open as a file before any
 * library is handed it, so the message names the real cause: an empty path,
 * a missing file, a directory, or a file that cannot be read. Returns 0 or
 * SAE_ERR_IO / SAE_ERR_ARG with err filled (subject = path, or `what` when
 * the path is empty, e.g. "--model"). */
int sae_check_input_file(const char *path, const char *what, sae_error *err);
/* Checks that an output can be created at path: not empty, not a directory
 * or other non-file, and its folder exists and is writable. */
int sae_check_output_file(const char *path, const char *what, sae_error *err);
/* Removes "<path>.tmp.<pid>" files left by processes that no longer run (a
 * kill -9 mid-write); calls on_removed (may be NULL) with each removed name;
 * returns how many were removed. */
int sae_remove_stale_tmp(const char *path, void (*on_removed)(const char *tmp, void *user),
                         void *user);

/* --- path identity ------------------------------------------------------- */
typedef enum sae_path_kind {
    SAE_PATH_IN,    /* read */
    SAE_PATH_OUT,   /* written (through a temporary name) */
    SAE_PATH_INOUT, /* read, then rewritten: a checkpoint that --resume continues */
    SAE_PATH_IN_DIR, /* read: a file, or a readable folder (a published SAE's folder) */
} sae_path_kind;

#define SAE_PATHS_MAX 16

typedef struct sae_paths {
    struct {
        const char *flag; /* how the user named it: "--out", "FILE" */
        const char *path;
        sae_path_kind kind;
    } p[SAE_PATHS_MAX];
    size_t n;
} sae_paths;

/* Declares a path; a NULL path (an optional flag not given) is ignored. */
void sae_paths_add(sae_paths *ps, const char *flag, const char *path, sae_path_kind kind);
/* Checks every declared path (inputs readable, outputs creatable), then that
 * no output is the same file as an input or as another output. Returns 0, or
 * SAE_ERR_ARG (empty path, collision) / SAE_ERR_IO with err naming the file
 * and both flags. */
int sae_paths_check(const sae_paths *ps, sae_error *err);

#endif
