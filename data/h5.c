/* data/h5.c: HDF5 helpers: error capture, a global lock, typed whole reads
 * and writes, attributes. */
#include "data/h5.h"
#include "common/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static pthread_mutex_t h5_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t h5_once = PTHREAD_ONCE_INIT;

static void h5_init_once(void) {
    /* HDF5's exit-time cleanup retries closing files whose close already
     * failed (a full disk) and crashes doing so (seen with 1.10.8); every file
     * we write is closed explicitly, so skip that cleanup. */
    H5dont_atexit();
    H5open();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void data_h5_init(void) { pthread_once(&h5_once, h5_init_once); }
void data_h5_lock(void) { pthread_mutex_lock(&h5_mutex); }
void data_h5_unlock(void) { pthread_mutex_unlock(&h5_mutex); }

typedef struct {
    char *buf;
    size_t cap;
} walk_ctx;

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *user) {
    walk_ctx *c = user;
    /* the stack is walked innermost first; the innermost minor message names
     * the root cause (e.g. "file write failed", "address of object past end") */
    if (n == 0 && e->desc && e->desc[0]) snprintf(c->buf, c->cap, "%s", e->desc);
    if (n == 0 && c->buf[0] == 0) {
        char *min = H5Eget_minor(e->min_num);
        if (min) {
            snprintf(c->buf, c->cap, "%s", min);
            H5free_memory(min);
        }
    }
    return 0;
}

const char *data_h5_last_error(char *buf, size_t cap) {
    buf[0] = 0;
    walk_ctx c = {buf, cap};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &c);
    H5Eclear2(H5E_DEFAULT);
    return buf;
}

int data_h5_dataset_info(hid_t loc, const char *name, data_h5_info *info) {
    memset(info, 0, sizeof *info);
    /* check each path component exists, so "a/b" with no "a" is "missing" */
    char part[256];
    const char *p = name;
    while ((p = strchr(p, '/')) != NULL) {
        size_t n = (size_t)(p - name);
        if (n >= sizeof part) return 1;
        memcpy(part, name, n);
        part[n] = 0;
        if (n > 0 && H5Lexists(loc, part, H5P_DEFAULT) <= 0) return 1;
        p++;
    }
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0) return 1;
    H5O_info_t oi;
    if (H5Oget_info_by_name(loc, name, &oi, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_DATASET)
        return 1;
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0) return 1;
    hid_t sp = H5Dget_space(ds), ty = H5Dget_type(ds);
    int rank = H5Sget_simple_extent_ndims(sp);
    if (rank >= 0 && rank <= 4) {
        info->rank = rank;
        H5Sget_simple_extent_dims(sp, info->dims, NULL);
    } else {
        info->rank = -1;
    }
    info->cls = H5Tget_class(ty);
    info->size = H5Tget_size(ty);
    info->is_vlen_str = info->cls == H5T_STRING && H5Tis_variable_str(ty) > 0;
    H5Tclose(ty);
    H5Sclose(sp);
    H5Dclose(ds);
    return SAE_OK;
}

static int read_all(hid_t loc, const char *name, hid_t memtype, void *out, size_t count,
                    const char *path, sae_error *err) {
    char h5msg[256];
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0) return sae_error_set(err, SAE_ERR_FORMAT, path, "missing dataset /%s", name);
    hid_t sp = H5Dget_space(ds);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    if (n < 0 || (size_t)n != count) {
        H5Dclose(ds);
        return sae_error_set(err, SAE_ERR_FORMAT, path, "/%s has %lld elements, expected %zu",
                             name, (long long)n, count);
    }
    int st = data_h5_check_stored(ds, name, path, err);
    herr_t rc = st == SAE_OK ? H5Dread(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) : 0;
    H5Dclose(ds);
    if (st < 0) return st;
    if (rc < 0)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "cannot read /%s (%s); file damaged?",
                             name, data_h5_last_error(h5msg, sizeof h5msg));
    return SAE_OK;
}

int data_h5_read_f32(hid_t loc, const char *name, float *out, size_t count, const char *path,
                     sae_error *err) {
    return read_all(loc, name, H5T_NATIVE_FLOAT, out, count, path, err);
}
int data_h5_read_i64(hid_t loc, const char *name, int64_t *out, size_t count, const char *path,
                     sae_error *err) {
    return read_all(loc, name, H5T_NATIVE_INT64, out, count, path, err);
}
int data_h5_read_i32(hid_t loc, const char *name, int32_t *out, size_t count, const char *path,
                     sae_error *err) {
    return read_all(loc, name, H5T_NATIVE_INT32, out, count, path, err);
}

static hid_t vlen_utf8_type(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

/* --- variable-length strings, read in a child process ---------------------
 *
 * Why a child process: HDF5 1.10 (1.10.8 on Debian 12) trusts the object
 * sizes stored in a global heap collection ("GCOL"): H5HG_read copies the
 * size the heap claims into a buffer sized by the length the dataset's
 * element claims, so one damaged size overflows the heap inside the library
 * and the process dies with SIGSEGV. Every way the API offers to look at the
 * strings goes through that reader first (H5Dvlen_get_buf_size crashes the
 * same way, H5Dread and H5Aread do), and the raw element descriptors cannot be
 * read for attributes or chunked datasets, so the sizes cannot be validated
 * from outside either. The defect is contained instead: a fork()ed child does
 * the read and sends the strings back through a pipe, and the parent checks
 * the stream and the child's exit status, so a crash becomes one error
 * naming the file. The child runs only the calling thread and calls only
 * HDF5, malloc and write(2); it leaves with _exit (no atexit handlers, no
 * leak check). One fork per dataset or attribute: a 32k-entry /vocab costs
 * one fork and about a millisecond more. Files this process opened for
 * writing are its own and are read in place (a child could also evict dirty
 * metadata into them). */

/* Stream records, child -> parent: 'S' u32 len, bytes (one string); 'E' u64
 * count (success, last record); 'X' u32 len, bytes (an HDF5 error message). */
#define STR_TIMEOUT_MS (120 * 1000) /* no byte for this long: the child hangs */

typedef int (*h5_string_reader)(hid_t obj, char ***s, size_t *n, char *msg, size_t cap);

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        c += w, n -= (size_t)w;
    }
    return 0;
}

/* The child's records go out in 64 KiB pieces: three write(2)s per string
 * made a 32k-entry /vocab cost ~100k system calls and context switches
 * (340 ms instead of 45 ms on a loaded machine). */
typedef struct child_out {
    int fd;
    size_t len;
    char buf[1 << 16];
} child_out;

static int child_put(child_out *o, const void *p, size_t n) {
    if (o->len + n > sizeof o->buf) {
        if (write_all(o->fd, o->buf, o->len) < 0) return -1;
        o->len = 0;
        if (n > sizeof o->buf) return write_all(o->fd, p, n);
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    return 0;
}

static int child_record(child_out *o, char tag, const char *s, size_t len) {
    uint32_t n = (uint32_t)len;
    return child_put(o, &tag, 1) || child_put(o, &n, 4) || child_put(o, s, len) ? -1 : 0;
}

/* What a child does first: no core file, default signal handling, no
 * stderr. */
static void child_prepare(void) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core); /* a crash here is expected, not a core file */
    /* every signal back to its default action and unblocked: not the parent's
     * cleanup handlers (its temporaries are its own), and not a handler that
     * catches SIGSEGV and carries on (a test framework, a sanitizer), which
     * would run the parent's code in the child after the crash */
    for (int sig = 1; sig <= SIGRTMAX; sig++)
        if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, 2); /* a sanitizer's report of the crash is noise */
}

static void child_run(int fd, hid_t obj, h5_string_reader rd) {
    static child_out o; /* static: 64 KiB is a lot for a thread's stack */
    char msg[256] = "";
    char **s = NULL;
    size_t n = 0;
    o.fd = fd, o.len = 0;
    child_prepare();
    if (rd(obj, &s, &n, msg, sizeof msg) < 0) {
        if (child_record(&o, 'X', msg, strlen(msg)) == 0) write_all(fd, o.buf, o.len);
        _exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = s[i] ? strlen(s[i]) : 0;
        if (len > UINT32_MAX || child_record(&o, 'S', s[i] ? s[i] : "", len) < 0) _exit(1);
    }
    uint64_t cnt = n;
    char e = 'E';
    _exit(child_put(&o, &e, 1) || child_put(&o, &cnt, 8) || write_all(fd, o.buf, o.len) ? 1 : 0);
}

/* Reads what the child sends, at most `limit` bytes, into *buf. 0 at end of
 * stream, -1 over the limit, -2 when nothing came for STR_TIMEOUT_MS. */
static int parent_collect(int fd, char **buf, size_t *len, size_t limit) {
    size_t cap = 0;
    *buf = NULL, *len = 0;
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, STR_TIMEOUT_MS);
        if (pr < 0 && errno == EINTR) continue;
        if (pr == 0) return -2;
        if (*len == cap) {
            size_t ncap = cap ? 2 * cap : 65536;
            char *nb = ncap > cap ? sae_realloc(*buf, ncap) : NULL;
            if (!nb) return -3;
            *buf = nb, cap = ncap;
        }
        ssize_t r = read(fd, *buf + *len, cap - *len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return 0;
        *len += (size_t)r;
        if (*len > limit) return -1;
    }
}

/* Parses the child's stream into n_want strings. */
static int parse_stream(const char *b, size_t len, size_t n_want, char **s, char *msg,
                        size_t cap) {
    size_t pos = 0, i = 0;
    while (pos < len) {
        char tag = b[pos++];
        if (tag == 'E') {
            uint64_t cnt;
            if (len - pos != 8) break;
            memcpy(&cnt, b + pos, 8);
            return cnt == n_want && i == n_want ? 0 : -1;
        }
        uint32_t n;
        if (len - pos < 4) break;
        memcpy(&n, b + pos, 4);
        pos += 4;
        if (len - pos < n) break;
        if (tag == 'X') {
            snprintf(msg, cap, "%.*s", (int)(n < 200 ? n : 200), b + pos);
            return -1;
        }
        if (tag != 'S' || i == n_want) break;
        if (!(s[i] = sae_malloc((size_t)n + 1))) return -3;
        memcpy(s[i], b + pos, n);
        s[i++][n] = 0;
        pos += n;
    }
    return -1;
}

static size_t file_size_of(hid_t obj) {
    hid_t f = H5Iget_file_id(obj);
    hsize_t sz = 0;
    if (f >= 0) {
        if (H5Fget_filesize(f, &sz) < 0) sz = 0;
        H5Fclose(f);
    }
    return (size_t)sz;
}

static int file_is_writable(hid_t obj) {
    hid_t f = H5Iget_file_id(obj);
    unsigned intent = 0;
    if (f >= 0) {
        if (H5Fget_intent(f, &intent) < 0) intent = 0;
        H5Fclose(f);
    }
    return (intent & H5F_ACC_RDWR) != 0;
}

static int string_isolation = 1;
void data_h5_set_string_isolation(int on) { string_isolation = on; }

/* Runs rd on obj in a child; n_want strings come back into s (n_want + 1
 * slots, zeroed). The strings are stored in the file, so together they
 * cannot hold more bytes than the file has: that bounds what is accepted. */
static int read_strings_contained(hid_t obj, h5_string_reader rd, size_t n_want, char **s,
                                  const char *what, const char *path, sae_error *err) {
    char msg[256] = "";
    if (!string_isolation || file_is_writable(obj)) {
        char **t = NULL;
        size_t n = 0;
        int rc = rd(obj, &t, &n, msg, sizeof msg);
        for (size_t i = 0; i < n; i++) {
            if (rc == 0 && n == n_want && !(s[i] = sae_strdup(t[i] ? t[i] : ""))) rc = -3;
            H5free_memory(t[i]);
        }
        sae_free(t);
        if (rc == 0 && n != n_want) rc = -1;
        if (rc == -3) return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory reading %s", what);
        return rc < 0 ? sae_error_set(err, SAE_ERR_FORMAT, path, "cannot read %s (%s)", what, msg)
                      : SAE_OK;
    }
    size_t fsize = file_size_of(obj), limit = fsize + 5 * n_want + 64;
    int fds[2];
    if (pipe(fds) != 0)
        return sae_error_set(err, SAE_ERR_IO, path, "cannot read %s: pipe: %s", what, strerror(errno));
    fflush(NULL); /* the child must not flush our buffered output a second time */
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]), close(fds[1]);
        return sae_error_set(err, SAE_ERR_IO, path, "cannot read %s: fork: %s", what, strerror(e));
    }
    if (pid == 0) {
        close(fds[0]);
        child_run(fds[1], obj, rd);
    }
    close(fds[1]);
    char *buf = NULL;
    size_t len = 0;
    int got = parent_collect(fds[0], &buf, &len, limit);
    close(fds[0]);
    if (got < 0) kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    int rc = got < 0 ? got : parse_stream(buf, len, n_want, s, msg, sizeof msg);
    sae_free(buf);
    if (rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) return SAE_OK;
    if (rc == -3) return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory reading %s", what);
    if (got == -1)
        return sae_error_set(err, SAE_ERR_FORMAT, path,
                             "the strings of %s hold more bytes than the whole file (%zu); its "
                             "global heap is damaged", what, fsize);
    if (got == -2)
        return sae_error_set(err, SAE_ERR_FORMAT, path,
                             "reading %s did not finish in %d s; the file is damaged", what,
                             STR_TIMEOUT_MS / 1000);
    if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL)
        return sae_error_set(err, SAE_ERR_FORMAT, path,
                             "cannot read %s: the HDF5 library crashed (signal %d) on the file's "
                             "variable-length strings; its global heap is damaged", what,
                             WTERMSIG(status));
    return sae_error_set(err, SAE_ERR_FORMAT, path, "cannot read %s (%s); file damaged?", what,
                         msg[0] ? msg : "variable-length strings unreadable");
}

/* Child side of a dataset read: every element of dataset obj. */
static int read_ds_strings(hid_t ds, char ***out, size_t *n_out, char *msg, size_t cap) {
    hid_t sp = H5Dget_space(ds);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    char **s = n >= 0 ? sae_calloc_n((size_t)n + 1, sizeof *s) : NULL;
    hid_t t = vlen_utf8_type();
    herr_t rc = s && n > 0 ? H5Dread(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, s) : (s ? 0 : -1);
    H5Tclose(t);
    if (rc < 0) {
        data_h5_last_error(msg, cap);
        if (!s) snprintf(msg, cap, "out of memory");
        sae_free(s);
        return -1;
    }
    *out = s, *n_out = (size_t)n;
    return 0;
}

/* One scalar variable-length string attribute into buf (cap bytes, cut to
 * fit), through a child like the datasets but with no allocation on our
 * side (an attribute that fails to read reads as absent, so an allocation
 * failure here could not be told from a missing attribute): the child sends
 * at most cap - 1 bytes, the parent reads them into buf. SAE_OK, or
 * SAE_ERR_FORMAT when unreadable (the child failed or crashed: a damaged
 * heap). */
static void attr_child(int fd, hid_t a, size_t cap) {
    child_prepare();
    char *s = NULL;
    hid_t mt = vlen_utf8_type();
    if (H5Aread(a, mt, &s) < 0 || !s) _exit(1);
    size_t len = strlen(s);
    if (len > cap - 1) len = cap - 1;
    _exit(write_all(fd, s, len) ? 1 : 0);
}

static int attr_in_process(hid_t a, char *buf, size_t cap) {
    char *s = NULL;
    hid_t mt = vlen_utf8_type();
    herr_t rc = H5Aread(a, mt, &s);
    H5Tclose(mt);
    if (rc < 0 || !s) return SAE_ERR_FORMAT;
    snprintf(buf, cap, "%s", s);
    H5free_memory(s);
    return SAE_OK;
}

/* Reads what the attribute's child sends into buf; 1 when it hung. */
static int attr_collect(int fd, char *buf, size_t cap) {
    size_t len = 0;
    int hung = 0;
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, STR_TIMEOUT_MS);
        if (pr < 0 && errno == EINTR) continue;
        if (pr == 0) {
            hung = 1;
            break;
        }
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
        if (len == cap - 1) break; /* all it may send */
    }
    buf[len] = 0;
    return hung;
}

static int read_attr_contained(hid_t a, char *buf, size_t cap) {
    if (cap < 1) return SAE_ERR_FORMAT;
    if (!string_isolation || file_is_writable(a)) return attr_in_process(a, buf, cap);
    int fds[2];
    if (pipe(fds) != 0) return SAE_ERR_FORMAT;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]), close(fds[1]);
        return SAE_ERR_FORMAT;
    }
    if (pid == 0) {
        close(fds[0]);
        attr_child(fds[1], a, cap);
    }
    close(fds[1]);
    int hung = attr_collect(fds[0], buf, cap);
    close(fds[0]);
    if (hung) kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (!hung && WIFEXITED(status) && WEXITSTATUS(status) == 0) return SAE_OK;
    buf[0] = 0;
    return SAE_ERR_FORMAT;
}

int data_h5_read_strings(hid_t loc, const char *name, char ***out, size_t *n_out,
                         const char *path, sae_error *err) {
    *out = NULL;
    *n_out = 0;
    data_h5_info info;
    if (data_h5_dataset_info(loc, name, &info) != SAE_OK)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "missing dataset /%s", name);
    if (info.rank != 1 || !info.is_vlen_str)
        return sae_error_set(err, SAE_ERR_FORMAT, path,
                             "/%s must be a 1-D variable-length string dataset", name);
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0) return sae_error_set(err, SAE_ERR_FORMAT, path, "missing dataset /%s", name);
    int rc = data_h5_check_stored(ds, name, path, err); /* before n pointers are allocated */
    size_t n = (size_t)info.dims[0];
    char **s = rc == SAE_OK ? sae_calloc_n(n + 1, sizeof *s) : NULL;
    if (rc == SAE_OK && !s) rc = sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory reading /%s", name);
    char what[300];
    snprintf(what, sizeof what, "/%s", name);
    if (rc == SAE_OK && n) rc = read_strings_contained(ds, read_ds_strings, n, s, what, path, err);
    H5Dclose(ds);
    if (rc < 0) {
        data_h5_free_strings(s, n);
        return rc;
    }
    *out = s;
    *n_out = n;
    return SAE_OK;
}

void data_h5_free_strings(char **s, size_t n) {
    if (!s) return;
    for (size_t i = 0; i < n; i++) sae_free(s[i]);
    sae_free(s);
}

/* The error of a failed dataset write, naming a full disk when errno says so
 * (errno is cleared before each write). */
static int write_failed(const char *name, const char *path, sae_error *err) {
    char h5msg[256];
    int full = errno == ENOSPC || errno == EFBIG;
    data_h5_last_error(h5msg, sizeof h5msg);
    return sae_error_set(err, SAE_ERR_IO, path, "cannot write /%s%s%s%s%s", name,
                         h5msg[0] ? " (" : "", h5msg, h5msg[0] ? ")" : "",
                         full ? ": disk full or file too large" : "");
}

static int write_ds(hid_t loc, const char *name, hid_t filetype, hid_t memtype, const void *data,
                    int rank, const hsize_t *dims, hsize_t chunk_rows, const char *path,
                    sae_error *err) {
    errno = 0; /* so ENOSPC/EFBIG below come from this write */
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(dcpl, 0); /* no creation times: the same data, the same bytes */
    if (chunk_rows > 0 && dims[0] > 0) {
        hsize_t chunk[2] = {chunk_rows < dims[0] ? chunk_rows : dims[0], rank > 1 ? dims[1] : 1};
        H5Pset_chunk(dcpl, rank, chunk);
    }
    hid_t ds = H5Dcreate2(loc, name, filetype, sp, lcpl, dcpl, H5P_DEFAULT);
    herr_t rc = -1;
    if (ds >= 0) {
        rc = H5Dwrite(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
        if (H5Dclose(ds) < 0) rc = -1;
    }
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Sclose(sp);
    return rc < 0 ? write_failed(name, path, err) : SAE_OK;
}

int data_h5_write_f32(hid_t loc, const char *name, const float *data, int rank,
                      const hsize_t *dims, hsize_t chunk_rows, const char *path, sae_error *err) {
    return write_ds(loc, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data, rank, dims, chunk_rows,
                    path, err);
}
/* Block by block through a small buffer, so a large matrix never needs a
 * second full copy in memory. */
#define TRANSPOSE_BLOCK 256
int data_h5_write_f32_transposed(hid_t loc, const char *name, const float *src, size_t rows,
                                 size_t cols, const char *path, sae_error *err) {
    errno = 0;
    float *tmp = sae_malloc(TRANSPOSE_BLOCK * cols * sizeof *tmp);
    if (!tmp) return sae_error_set(err, SAE_ERR_NOMEM, path, "out of memory writing /%s", name);
    hsize_t dims[2] = {cols, rows};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t ds = H5Dcreate2(loc, name, H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = ds < 0 ? -1 : 0;
    for (size_t r0 = 0; rc >= 0 && r0 < rows; r0 += TRANSPOSE_BLOCK) {
        size_t nb = rows - r0 < TRANSPOSE_BLOCK ? rows - r0 : TRANSPOSE_BLOCK;
        for (size_t c = 0; c < cols; c++)
            for (size_t r = 0; r < nb; r++) tmp[c * nb + r] = src[(r0 + r) * cols + c];
        hsize_t start[2] = {0, r0}, count[2] = {cols, nb};
        hid_t ms = H5Screate_simple(2, count, NULL);
        rc = H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, count, NULL);
        if (rc >= 0) rc = H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, sp, H5P_DEFAULT, tmp);
        H5Sclose(ms);
    }
    if (ds >= 0 && H5Dclose(ds) < 0) rc = -1;
    H5Pclose(lcpl);
    H5Sclose(sp);
    sae_free(tmp);
    return rc < 0 ? write_failed(name, path, err) : SAE_OK;
}

int data_h5_write_i64(hid_t loc, const char *name, const int64_t *data, hsize_t n,
                      const char *path, sae_error *err) {
    return write_ds(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, data, 1, &n, 0, path, err);
}
int data_h5_write_i32(hid_t loc, const char *name, const int32_t *data, hsize_t n,
                      const char *path, sae_error *err) {
    return write_ds(loc, name, H5T_STD_I32LE, H5T_NATIVE_INT32, data, 1, &n, 0, path, err);
}
int data_h5_write_strings(hid_t loc, const char *name, const char *const *s, hsize_t n,
                          const char *path, sae_error *err) {
    hid_t t = vlen_utf8_type();
    int rc = write_ds(loc, name, t, t, s, 1, &n, 0, path, err);
    H5Tclose(t);
    return rc;
}

static int set_attr(hid_t loc, const char *name, hid_t filetype, hid_t memtype, const void *v) {
    if (H5Aexists(loc, name) > 0) H5Adelete(loc, name);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, filetype, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a >= 0 ? H5Awrite(a, memtype, v) : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return rc < 0 ? SAE_ERR_IO : SAE_OK;
}

int data_h5_set_attr_str(hid_t loc, const char *name, const char *value) {
    hid_t t = vlen_utf8_type();
    int rc = set_attr(loc, name, t, t, &value);
    H5Tclose(t);
    return rc;
}
int data_h5_set_attr_i64(hid_t loc, const char *name, int64_t value) {
    return set_attr(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}
int data_h5_set_attr_f64(hid_t loc, const char *name, double value) {
    return set_attr(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

static int get_attr_num(hid_t loc, const char *name, hid_t memtype, void *v) {
    if (H5Aexists(loc, name) <= 0) return 1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return 1;
    hid_t ty = H5Aget_type(a), sp = H5Aget_space(a);
    int ok = H5Sget_simple_extent_npoints(sp) == 1 &&
             (H5Tget_class(ty) == H5T_INTEGER || H5Tget_class(ty) == H5T_FLOAT);
    herr_t rc = ok ? H5Aread(a, memtype, v) : -1;
    H5Sclose(sp);
    H5Tclose(ty);
    H5Aclose(a);
    return rc < 0 ? SAE_ERR_FORMAT : SAE_OK;
}

int data_h5_get_attr_i64(hid_t loc, const char *name, int64_t *value) {
    return get_attr_num(loc, name, H5T_NATIVE_INT64, value);
}
int data_h5_get_attr_f64(hid_t loc, const char *name, double *value) {
    return get_attr_num(loc, name, H5T_NATIVE_DOUBLE, value);
}

static int attr_is_scalar(hid_t a) {
    hid_t sp = H5Aget_space(a);
    int one = H5Sget_simple_extent_npoints(sp) == 1;
    H5Sclose(sp);
    return one;
}

int data_h5_get_attr_str(hid_t loc, const char *name, char *buf, size_t cap) {
    buf[0] = 0;
    if (H5Aexists(loc, name) <= 0) return 1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return 1;
    hid_t ty = H5Aget_type(a);
    int rc = SAE_ERR_FORMAT;
    if (!attr_is_scalar(a)) {
        /* an array would overflow the one-element buffers below */
    } else if (H5Tget_class(ty) == H5T_STRING) {
        if (H5Tis_variable_str(ty) > 0) {
            rc = read_attr_contained(a, buf, cap);
        } else {
            /* fixed-length strings, as numpy's bytes attributes are stored */
            size_t n = H5Tget_size(ty);
            char *tmp = sae_calloc_n(n + 1, 1);
            hid_t mt = H5Tcopy(ty);
            if (tmp && H5Aread(a, mt, tmp) >= 0) {
                snprintf(buf, cap, "%s", tmp);
                rc = SAE_OK;
            }
            H5Tclose(mt);
            sae_free(tmp);
        }
    } else if (H5Tget_class(ty) == H5T_INTEGER) {
        int64_t v;
        if (H5Aread(a, H5T_NATIVE_INT64, &v) >= 0) {
            snprintf(buf, cap, "%lld", (long long)v);
            rc = SAE_OK;
        }
    }
    H5Tclose(ty);
    H5Aclose(a);
    return rc;
}

hid_t data_h5_f16_type(void) {
    /* binary16: sign bit 15, exponent bits 10..14 (bias 15), mantissa 0..9 */
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    H5Tset_fields(t, 15, 10, 5, 0, 10);
    H5Tset_size(t, 2);
    H5Tset_ebias(t, 15);
    return t;
}

/* --- storage plausibility ---------------------------------------------------- */

/* a * b into *r; 1 on overflow */
static int mul_u64(uint64_t a, uint64_t b, uint64_t *r) { return __builtin_mul_overflow(a, b, r); }

static int stored_contiguous(hid_t ds, hid_t dcpl, const char *name, uint64_t elems,
                             uint64_t bytes, uint64_t fsize, const char *path, sae_error *err) {
    if (H5Pget_external_count(dcpl) > 0)
        return sae_error_set(err, SAE_ERR_UNSUPPORTED, path,
                             "/%s keeps its data in external files (not supported)", name);
    if (bytes == 0) return SAE_OK;
    haddr_t at = H5Dget_offset(ds);
    if (at == HADDR_UNDEF)
        return sae_error_set(err, SAE_ERR_FORMAT, path,
                             "/%s declares %llu elements but stores none (never written)", name,
                             (unsigned long long)elems);
    uint64_t end;
    if (__builtin_add_overflow((uint64_t)at, bytes, &end) || end > fsize)
        return sae_error_set(err, SAE_ERR_FORMAT, path,
                             "/%s declares %llu elements (%llu bytes at offset %llu) but the file "
                             "has only %llu bytes: truncated", name, (unsigned long long)elems,
                             (unsigned long long)bytes, (unsigned long long)at,
                             (unsigned long long)fsize);
    return SAE_OK;
}

/* Deflate cannot shrink data by more than about 1032:1, so a filtered dataset
 * declaring far more bytes than it stores is a compression bomb or damage. */
#define MAX_COMPRESSION 1100

static int stored_chunked(hid_t ds, hid_t dcpl, const char *name, int rank, const hsize_t *dims,
                          uint64_t bytes, size_t tsize, uint64_t fsize, const char *path,
                          sae_error *err) {
    hsize_t cd[H5S_MAX_RANK];
    if (H5Pget_chunk(dcpl, rank, cd) != rank)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "/%s: unreadable chunk layout", name);
    uint64_t want = 1, band = 1, chunk_bytes = tsize;
    int ovf = 0;
    for (int i = 0; i < rank; i++) {
        if (cd[i] == 0) return sae_error_set(err, SAE_ERR_FORMAT, path, "/%s: zero chunk size", name);
        uint64_t per = dims[i] / cd[i] + (dims[i] % cd[i] != 0);
        ovf |= mul_u64(want, per, &want) | mul_u64(chunk_bytes, cd[i], &chunk_bytes);
        if (i > 0) ovf |= mul_u64(band, per, &band);
    }
    if (ovf)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "/%s declares an impossible size", name);
    if (want == 0) return SAE_OK;
    hsize_t have = 0;
    hid_t sp = H5Dget_space(ds); /* 1.10.8 refuses H5S_ALL here */
    herr_t nrc = H5Dget_num_chunks(ds, sp, &have);
    H5Sclose(sp);
    if (nrc < 0)
        return sae_error_set(err, SAE_ERR_FORMAT, path, "/%s: cannot read its chunk index", name);
    if (have < want) {
        uint64_t rows = band ? have / band * cd[0] : 0;
        if (rows > dims[0]) rows = dims[0];
        return sae_error_set(err, SAE_ERR_FORMAT, path,
                             "/%s declares %llu rows but stores only %llu (%llu of its %llu chunks "
                             "written; the rest would read as fill values)", name,
                             (unsigned long long)dims[0], (unsigned long long)rows,
                             (unsigned long long)have, (unsigned long long)want);
    }
    uint64_t need;
    if (H5Pget_nfilters(dcpl) == 0) {
        if (mul_u64(want, chunk_bytes, &need) || need > fsize)
            return sae_error_set(err, SAE_ERR_FORMAT, path,
                                 "/%s needs %llu bytes of chunks but the file has only %llu: "
                                 "truncated or damaged", name, (unsigned long long)need,
                                 (unsigned long long)fsize);
    } else {
        uint64_t st = H5Dget_storage_size(ds);
        if (mul_u64(st, MAX_COMPRESSION, &need) || bytes > need + (1u << 20))
            return sae_error_set(err, SAE_ERR_FORMAT, path,
                                 "/%s declares %llu bytes but stores %llu compressed: more than "
                                 "any of its filters can expand to", name,
                                 (unsigned long long)bytes, (unsigned long long)st);
    }
    return SAE_OK;
}

int data_h5_check_stored(hid_t ds, const char *name, const char *path, sae_error *err) {
    hid_t sp = H5Dget_space(ds), ty = H5Dget_type(ds), dcpl = H5Dget_create_plist(ds);
    int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t dims[H5S_MAX_RANK];
    size_t tsize = ty >= 0 ? H5Tget_size(ty) : 0;
    int rc = SAE_OK;
    if (rank < 0 || dcpl < 0 || tsize == 0 || H5Sget_simple_extent_dims(sp, dims, NULL) < 0)
        rc = sae_error_set(err, SAE_ERR_FORMAT, path, "/%s: unreadable shape or type", name);
    uint64_t elems = 1, bytes = 0;
    for (int i = 0; rc == SAE_OK && i < rank; i++)
        if (mul_u64(elems, dims[i], &elems))
            rc = sae_error_set(err, SAE_ERR_FORMAT, path, "/%s declares an impossible size", name);
    if (rc == SAE_OK && mul_u64(elems, tsize, &bytes))
        rc = sae_error_set(err, SAE_ERR_FORMAT, path, "/%s declares an impossible size", name);
    uint64_t fsize = rc == SAE_OK ? file_size_of(ds) : 0;
    if (rc == SAE_OK) {
        switch (H5Pget_layout(dcpl)) {
        case H5D_COMPACT: break; /* the data is in the object header HDF5 already read */
        case H5D_CONTIGUOUS:
            rc = stored_contiguous(ds, dcpl, name, elems, bytes, fsize, path, err);
            break;
        case H5D_CHUNKED:
            rc = stored_chunked(ds, dcpl, name, rank, dims, bytes, tsize, fsize, path, err);
            break;
        default:
            rc = sae_error_set(err, SAE_ERR_UNSUPPORTED, path,
                               "/%s has a virtual or unknown layout (not supported)", name);
        }
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    if (ty >= 0) H5Tclose(ty);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

int data_h5_check_stored_name(hid_t loc, const char *name, const char *path, sae_error *err) {
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0) return sae_error_set(err, SAE_ERR_FORMAT, path, "missing dataset /%s", name);
    int rc = data_h5_check_stored(ds, name, path, err);
    H5Dclose(ds);
    return rc;
}

/* --- opening --------------------------------------------------------------- */

static herr_t lock_cb(unsigned n, const H5E_error2_t *e, void *user) {
    (void)n;
    if (e->min_num == H5E_CANTLOCKFILE) *(int *)user = 1;
    return 0;
}

int data_h5_open_error(const char *path, sae_error *err) {
    int locked = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, lock_cb, &locked);
    if (locked) {
        H5Eclear2(H5E_DEFAULT);
        return sae_error_set(err, SAE_ERR_IO, path,
                             "file is locked: another process has it open for writing (wait for "
                             "it to finish; HDF5_USE_FILE_LOCKING=FALSE overrides at your risk)");
    }
    char h5msg[256];
    return sae_error_set(err, SAE_ERR_FORMAT, path, "cannot open HDF5 file (%s); truncated or damaged?",
                         data_h5_last_error(h5msg, sizeof h5msg));
}

int data_h5_open_read(const char *path, hid_t *out, sae_error *err) {
    *out = -1;
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) {
        int locked = 0;
        H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, lock_cb, &locked);
        if (locked) return data_h5_open_error(path, err);
        H5Eclear2(H5E_DEFAULT);
        return sae_error_set(err, SAE_ERR_FORMAT, path, "not an HDF5 file");
    }
    hid_t h = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (h < 0) return data_h5_open_error(path, err);
    *out = h;
    return SAE_OK;
}
