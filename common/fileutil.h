/* common/fileutil.h: outputs appear complete or not at all.
 *
 * Every output is written under a temporary name in the same directory and
 * renamed over the final path only once it is complete and closed, so a crash
 * or a full disk never leaves a half-written file that looks finished.
 *
 *     char tmp[4096];
 *     sae_tmp_path(tmp, sizeof tmp, out);
 *     ...write tmp...
 *     if (ok) sae_commit_file(tmp, out, &err); else remove(tmp);
 */
#ifndef SAE_COMMON_FILEUTIL_H
#define SAE_COMMON_FILEUTIL_H

#include <stddef.h>

#include "common/err.h"

/* "<path>.tmp.<pid>"; returns SAE_ERR_ARG if it does not fit. */
int sae_tmp_path(char *buf, size_t cap, const char *path, sae_error *err);
/* fsync tmp, rename it over path, fsync the directory. */
int sae_commit_file(const char *tmp, const char *path, sae_error *err);
int sae_file_exists(const char *path);
/* Checks that path names something a reader can open as a file before any
 * library is handed it, so the message names the real cause: an empty path,
 * a missing file, a directory, or a file that cannot be read. Returns 0 or
 * SAE_ERR_IO / SAE_ERR_ARG with err filled (subject = path, or `what` when
 * the path is empty, e.g. "--model"). */
int sae_check_input_file(const char *path, const char *what, sae_error *err);
/* Removes "<path>.tmp.<pid>" files left by processes that no longer run (a
 * kill -9 mid-write); returns how many were removed. */
int sae_remove_stale_tmp(const char *path);

#endif
