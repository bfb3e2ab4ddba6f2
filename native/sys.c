/*
 * System calls Node's fs module does not offer, as PacioFS needs them on the
 * backing directory: utimensat with nanoseconds and UTIME_NOW/UTIME_OMIT,
 * mknod, and the l*xattr family (never following symlinks, with
 * XATTR_CREATE/XATTR_REPLACE); and readFiles, verify's batch of small reads
 * (on its worker threads); and limitMallocArenas (glibc's mallopt
 * M_ARENA_MAX, for a mount's memory; tuneMalloc, for a streaming
 * server's). All are short local-disk syscalls and run
 * synchronously. Errors are thrown as Error objects with `code` (e.g. 'ENOENT')
 * and a negative `errno`, like Node's own fs errors.
 *
 * Also sha256Job, the history store's hashing on the libuv thread pool,
 * hashFileJob, a sequential writer's running hash there,
 * storeChunkJob, its chunk writes there, trimMallocJob, glibc's malloc_trim
 * there too, and sha256Each and merkleRoot32, the embedded ledger's batch
 * hashing (see the comments above them).
 */
#define _GNU_SOURCE
#include <node_api.h>
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

/*
 * open(2) for the volume's own reads of a user's file (verify's scan, a
 * history hash, a running digest's read-back): O_NOATIME, so they leave its
 * access time alone; without it where the kernel refuses it (EPERM: not the
 * file's owner and no CAP_FOWNER).
 */
static int open_quiet(const char *path, int flags) {
  int fd = open(path, flags | O_NOATIME);
  if (fd < 0 && errno == EPERM) fd = open(path, flags);
  return fd;
}

#define PATH_BUF 4097
#define NAME_BUF 256

static const char *errno_code(int e) {
  switch (e) {
    case ENOENT: return "ENOENT"; case EACCES: return "EACCES"; case EPERM: return "EPERM";
    case EEXIST: return "EEXIST"; case ENOTDIR: return "ENOTDIR"; case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL"; case ENOSPC: return "ENOSPC"; case EROFS: return "EROFS";
    case ENAMETOOLONG: return "ENAMETOOLONG"; case ELOOP: return "ELOOP"; case ERANGE: return "ERANGE";
    case ENODATA: return "ENODATA"; case ENOTSUP: return "ENOTSUP"; case E2BIG: return "E2BIG";
    case EDQUOT: return "EDQUOT"; case EIO: return "EIO"; case EBADF: return "EBADF";
    default: return "EIO";
  }
}

/* An Error with message `text`, code "E..." and errno -e, as Node's fs errors have. */
static napi_value errno_error(napi_env env, int e, const char *text) {
  napi_value msg, code, err, num;
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
  napi_create_string_utf8(env, errno_code(e), NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, msg, &err);
  napi_create_int32(env, -e, &num);
  napi_set_named_property(env, err, "errno", num);
  napi_set_named_property(env, err, "code", code);
  return err;
}

static napi_value throw_errno(napi_env env, int e, const char *syscall) {
  char text[128];
  snprintf(text, sizeof text, "%s: %s", syscall, strerror(e));
  napi_throw(env, errno_error(env, e, text));
  return NULL;
}

static int get_string(napi_env env, napi_value v, char *buf, size_t cap) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, buf, cap, &len) != napi_ok) return -1;
  if (len >= cap - 1) return -1;
  return 0;
}

static napi_value type_error(napi_env env, const char *what) {
  napi_throw_type_error(env, NULL, what);
  return NULL;
}

/* Time argument: a BigInt of nanoseconds, or the strings 'now' / 'omit'. */
static int get_time(napi_env env, napi_value v, struct timespec *ts) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_string) {
    char s[8];
    if (get_string(env, v, s, sizeof s) != 0) return -1;
    if (strcmp(s, "now") == 0) { ts->tv_sec = 0; ts->tv_nsec = UTIME_NOW; return 0; }
    if (strcmp(s, "omit") == 0) { ts->tv_sec = 0; ts->tv_nsec = UTIME_OMIT; return 0; }
    return -1;
  }
  if (t != napi_bigint) return -1;
  int64_t ns; bool lossless;
  if (napi_get_value_bigint_int64(env, v, &ns, &lossless) != napi_ok || !lossless) return -1;
  ts->tv_sec = ns / 1000000000LL;
  ts->tv_nsec = ns % 1000000000LL;
  if (ts->tv_nsec < 0) { ts->tv_nsec += 1000000000LL; ts->tv_sec -= 1; }
  return 0;
}

/* lutimensNs(path, atime, mtime): utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) */
static napi_value lutimens_ns(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[PATH_BUF]; struct timespec ts[2];
  if (argc < 3 || get_string(env, argv[0], path, sizeof path) != 0) return type_error(env, "path must be a string");
  if (get_time(env, argv[1], &ts[0]) != 0 || get_time(env, argv[2], &ts[1]) != 0) return type_error(env, "times must be BigInt ns, 'now' or 'omit'");
  if (utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) != 0) return throw_errno(env, errno, "utimensat");
  return NULL;
}

/* mknod(path, mode, rdev) */
static napi_value do_mknod(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[PATH_BUF]; uint32_t mode = 0; int64_t rdev = 0;
  if (argc < 3 || get_string(env, argv[0], path, sizeof path) != 0) return type_error(env, "path must be a string");
  napi_get_value_uint32(env, argv[1], &mode);
  napi_get_value_int64(env, argv[2], &rdev);
  if (mknod(path, (mode_t) mode, (dev_t) rdev) != 0) return throw_errno(env, errno, "mknod");
  return NULL;
}

/* lsetxattr(path, name, value: Buffer, flags) */
static napi_value do_lsetxattr(napi_env env, napi_callback_info info) {
  size_t argc = 4; napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[PATH_BUF], name[NAME_BUF]; void *data = NULL; size_t len = 0; int32_t flags = 0;
  if (argc < 4 || get_string(env, argv[0], path, sizeof path) != 0) return type_error(env, "path must be a string");
  if (get_string(env, argv[1], name, sizeof name) != 0) return throw_errno(env, ERANGE, "lsetxattr");
  if (napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok) return type_error(env, "value must be a Buffer");
  napi_get_value_int32(env, argv[3], &flags);
  if (lsetxattr(path, name, data, len, flags) != 0) return throw_errno(env, errno, "lsetxattr");
  return NULL;
}

/* lgetxattr(path, name) -> Buffer */
static napi_value do_lgetxattr(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[PATH_BUF], name[NAME_BUF];
  if (argc < 2 || get_string(env, argv[0], path, sizeof path) != 0) return type_error(env, "path must be a string");
  if (get_string(env, argv[1], name, sizeof name) != 0) return throw_errno(env, ERANGE, "lgetxattr");
  for (int attempt = 0; attempt < 4; attempt++) {
    ssize_t size = lgetxattr(path, name, NULL, 0);
    if (size < 0) return throw_errno(env, errno, "lgetxattr");
    void *out; napi_value buf;
    napi_create_buffer(env, (size_t) size, &out, &buf);
    if (size == 0) return buf;
    ssize_t got = lgetxattr(path, name, out, (size_t) size);
    if (got >= 0) {
      if (got == size) return buf;
      napi_value slice; void *copy;
      napi_create_buffer_copy(env, (size_t) got, out, &copy, &slice);
      return slice;
    }
    if (errno != ERANGE) return throw_errno(env, errno, "lgetxattr");
  }
  return throw_errno(env, ERANGE, "lgetxattr");
}

/* llistxattr(path) -> string[] */
static napi_value do_llistxattr(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[PATH_BUF];
  if (argc < 1 || get_string(env, argv[0], path, sizeof path) != 0) return type_error(env, "path must be a string");
  for (int attempt = 0; attempt < 4; attempt++) {
    ssize_t size = llistxattr(path, NULL, 0);
    if (size < 0) return throw_errno(env, errno, "llistxattr");
    char *list = malloc(size > 0 ? (size_t) size : 1);
    if (list == NULL) return throw_errno(env, ENOMEM, "llistxattr");
    ssize_t got = size > 0 ? llistxattr(path, list, (size_t) size) : 0;
    if (got < 0) {
      int e = errno; free(list);
      if (e == ERANGE) continue;
      return throw_errno(env, e, "llistxattr");
    }
    napi_value arr; napi_create_array(env, &arr);
    uint32_t i = 0;
    for (ssize_t off = 0; off < got; ) {
      size_t n = strnlen(list + off, (size_t) (got - off));
      if (n > 0) {
        napi_value s; napi_create_string_utf8(env, list + off, n, &s);
        napi_set_element(env, arr, i++, s);
      }
      off += (ssize_t) n + 1;
    }
    free(list);
    return arr;
  }
  return throw_errno(env, ERANGE, "llistxattr");
}

/* lremovexattr(path, name) */
static napi_value do_lremovexattr(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[PATH_BUF], name[NAME_BUF];
  if (argc < 2 || get_string(env, argv[0], path, sizeof path) != 0) return type_error(env, "path must be a string");
  if (get_string(env, argv[1], name, sizeof name) != 0) return throw_errno(env, ERANGE, "lremovexattr");
  if (lremovexattr(path, name) != 0) return throw_errno(env, errno, "lremovexattr");
  return NULL;
}

/*
 * readFiles(paths, start, end, flags, expect, data, out) -> index reached
 *
 * verify's batch of small reads: for paths[start..end) it makes the system
 * calls that Node would make one JS call each (lstat, llistxattr, open, read,
 * close), copies each file's bytes into `data` one after another, and writes
 * 9 numbers per path into `out` (at (i - start) * 9):
 *   [0] 0, or the errno of lstat (flags & 1) / open (otherwise): nothing else is set
 *   [1..4] st_mode, st_uid, st_gid, st_size (flags & 1)
 *   [5] the length llistxattr reports for its name list, 0 for none (flags & 1)
 *   [6] offset of the bytes in `data`; [7] their length, or -1 when not read
 *       (not a regular file, too large for what is left of `data`, or longer
 *       than expected: the caller reads it itself)
 *   [8] the errno of open/read (flags & 1), 0 otherwise
 * How much is read: with flags & 1, st_size + 1 (a short read is the end);
 * otherwise expect[i] + 1 when expect is given and expect[i] >= 0, else up to
 * 64 KiB. It stops before a path whose bytes no longer fit, unless that is
 * the first (then [7] is -1), and returns the index it stopped at.
 */
#define SMALL_CAP 65536
static napi_value read_files(napi_env env, napi_callback_info info) {
  size_t argc = 7; napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 7) return type_error(env, "readFiles(paths, start, end, flags, expect, data, out)");
  uint32_t count = 0, start = 0, end = 0, flags = 0;
  if (napi_get_array_length(env, argv[0], &count) != napi_ok) return type_error(env, "paths must be an array");
  napi_get_value_uint32(env, argv[1], &start);
  napi_get_value_uint32(env, argv[2], &end);
  napi_get_value_uint32(env, argv[3], &flags);
  if (end > count) end = count;
  double *expect = NULL; size_t expect_len = 0;
  napi_valuetype et; napi_typeof(env, argv[4], &et);
  if (et != napi_null && et != napi_undefined) {
    napi_typedarray_type t; void *d; size_t len;
    if (napi_get_typedarray_info(env, argv[4], &t, &len, &d, NULL, NULL) != napi_ok || t != napi_float64_array) return type_error(env, "expect must be a Float64Array or null");
    expect = d; expect_len = len;
  }
  char *data; size_t cap;
  if (napi_get_buffer_info(env, argv[5], (void **) &data, &cap) != napi_ok) return type_error(env, "data must be a Buffer");
  napi_typedarray_type ot; double *out; size_t out_len;
  if (napi_get_typedarray_info(env, argv[6], &ot, &out_len, (void **) &out, NULL, NULL) != napi_ok || ot != napi_float64_array) return type_error(env, "out must be a Float64Array");
  if (start < end && (size_t) (end - start) * 9 > out_len) end = start + (uint32_t) (out_len / 9);
  size_t used = 0;
  char path[PATH_BUF];
  uint32_t i = start;
  for (; i < end; i++) {
    double *o = out + (size_t) (i - start) * 9;
    memset(o, 0, 9 * sizeof *o);
    o[7] = -1;
    napi_value v;
    if (napi_get_element(env, argv[0], i, &v) != napi_ok || get_string(env, v, path, sizeof path) != 0) { o[0] = ENAMETOOLONG; continue; }
    size_t want;
    if (flags & 1) {
      struct stat st;
      if (lstat(path, &st) != 0) { o[0] = errno; continue; }
      o[1] = st.st_mode; o[2] = st.st_uid; o[3] = st.st_gid; o[4] = (double) st.st_size;
      ssize_t x = llistxattr(path, NULL, 0);
      o[5] = x > 0 ? (double) x : 0;
      if (!S_ISREG(st.st_mode)) continue;
      want = (size_t) st.st_size + 1;
    } else if (expect != NULL && i < expect_len && expect[i] >= 0) {
      want = (size_t) expect[i] + 1;
    } else {
      want = SMALL_CAP;
    }
    if (want > cap - used) {
      if (i > start) break; /* the caller hashes what it has and comes back for this one */
      continue; /* [7] = -1: too large, the caller streams it */
    }
    int fd = open_quiet(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | ((flags & 1) ? O_NOFOLLOW : 0)); /* the scan never follows a link */
    if (fd < 0) { if (flags & 1) o[8] = errno; else o[0] = errno; continue; }
    size_t got = 0;
    int err = 0;
    while (got < want) {
      ssize_t n = read(fd, data + used + got, want - got);
      if (n < 0) { if (errno == EINTR) continue; err = errno; break; }
      got += (size_t) n;
      if (n == 0 || got < want) break; /* a short read of a regular file is its end (as readSmall and the scan read) */
    }
    close(fd);
    if (err != 0) { if (flags & 1) o[8] = err; else o[0] = err; continue; }
    if (got >= want) continue; /* longer than expected: [7] = -1 */
    o[6] = (double) used; o[7] = (double) got;
    used += got;
  }
  napi_value r; napi_create_uint32(env, i, &r);
  return r;
}

/*
 * Queues job `data`: `execute` on a thread of libuv's pool, then `complete`
 * on the event loop, which settles *deferred and deletes *work. Returns the
 * promise the caller hands to JavaScript.
 */
static napi_value queue_job(napi_env env, const char *name, napi_async_execute_callback execute,
                            napi_async_complete_callback complete, void *data, napi_async_work *work, napi_deferred *deferred) {
  napi_value promise, label;
  napi_create_promise(env, deferred, &promise);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &label);
  napi_create_async_work(env, NULL, label, execute, complete, data, work);
  napi_queue_async_work(env, *work);
  return promise;
}

/*
 * sha256Job(data, flags, state, before, out) -> Promise<void>
 *
 * SHA-256 on a libuv pool thread (OpenSSL's, linked into node; it uses the
 * CPU's SHA instructions), so several chunks hash at once and the event loop
 * stays free. data must not change until the promise settles.
 *   flags & 1: out[0..32) = SHA-256(data)                       (a chunk's hash)
 *   flags & 2: out[32..64) = the SHA-256 state after hashing data, starting
 *              from `state` (32 bytes, big-endian words; null: the initial
 *              state) with `before` bytes hashed already     (a chain step)
 *   flags & 4: with 2: finish instead: out[32..64) = the digest of the
 *              `before` + data.length bytes                  (the last step)
 *   flags & 8: on the calling thread, now; returns undefined (for a caller
 *              that hashes bytes as they stream by, where a trip through
 *              the pool per piece would cost more than the hash)
 * A chain step that does not finish needs before and data.length to be
 * multiples of 64 (the state between blocks is then just the 8 words).
 *
 * sha256Job(data, flags, state, before, out, path, want) -> Promise<number>
 * reads the file `path` into data first (at most data.length bytes, and
 * data.length > want: a longer file is seen without a stat), in the same job,
 * and resolves with the bytes it read; only if they are exactly `want` are
 * data[0..want) hashed as above (the chain rules then apply to want). A file
 * that cannot be opened or read rejects with its errno code (ENOENT...). One
 * job per history chunk instead of an open, a read, a close and a hash.
 */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref data_ref, out_ref;
  const unsigned char *data;
  size_t len;
  unsigned char state[32];
  int has_state;
  uint64_t before;
  uint32_t flags;
  unsigned char *out;
  char *path;   /* with a path: read the file into data first (see sha256Job) */
  size_t want;
  size_t got;
  int err;
} hash_job;

/* One step of a SHA-256 chain: from `state` (the 32-byte big-endian state after `before` bytes, a
 * multiple of 64; NULL: the initial state) through data; writes the state after it to out[0..32), or
 * with `last` the finished digest. */
static void sha256_step(const unsigned char *state, uint64_t before, const void *data, size_t len, int last, unsigned char *out) {
  SHA256_CTX c;
  SHA256_Init(&c);
  if (state != NULL) {
    for (int k = 0; k < 8; k++) {
      const unsigned char *w = state + 4 * k;
      c.h[k] = ((SHA_LONG) w[0] << 24) | ((SHA_LONG) w[1] << 16) | ((SHA_LONG) w[2] << 8) | (SHA_LONG) w[3];
    }
    uint64_t bits = before * 8;
    c.Nl = (SHA_LONG) (bits & 0xffffffffu);
    c.Nh = (SHA_LONG) (bits >> 32);
  }
  SHA256_Update(&c, data, len);
  if (last) {
    SHA256_Final(out, &c);
    return;
  }
  for (int k = 0; k < 8; k++) {
    unsigned char *w = out + 4 * k;
    w[0] = (unsigned char) (c.h[k] >> 24); w[1] = (unsigned char) (c.h[k] >> 16);
    w[2] = (unsigned char) (c.h[k] >> 8); w[3] = (unsigned char) c.h[k];
  }
}

static void hash_execute(napi_env env, void *arg) {
  (void) env;
  hash_job *j = arg;
  if (j->path != NULL) {
    int fd = open_quiet(j->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { j->err = errno; return; }
    size_t cap = j->len; /* want + 1: a longer file is caught without a stat */
    unsigned char *d = (unsigned char *) j->data;
    while (j->got < cap) {
      ssize_t n = pread(fd, d + j->got, cap - j->got, (off_t) j->got);
      if (n < 0) { if (errno == EINTR) continue; j->err = errno; break; }
      if (n == 0) break;
      j->got += (size_t) n;
    }
    close(fd);
    if (j->err != 0 || j->got != j->want) return; /* nothing hashed: the caller sees the length */
    j->len = j->want;
  }
  if (j->flags & 1) SHA256(j->data, j->len, j->out);
  if (j->flags & 2) sha256_step(j->has_state ? j->state : NULL, j->before, j->data, j->len, j->flags & 4, j->out + 32);
}

static void hash_complete(napi_env env, napi_status status, void *arg) {
  hash_job *j = arg;
  napi_value result;
  if (j->path != NULL) napi_create_double(env, (double) j->got, &result);
  else napi_get_undefined(env, &result);
  if (status == napi_ok && j->err != 0) {
    napi_value code, msg, err, no;
    napi_create_string_utf8(env, errno_code(j->err), NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, strerror(j->err), NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, code, msg, &err);
    napi_create_int32(env, -j->err, &no);
    napi_set_named_property(env, err, "errno", no);
    napi_reject_deferred(env, j->deferred, err);
  } else if (status == napi_ok) {
    napi_resolve_deferred(env, j->deferred, result);
  } else {
    napi_value msg, err;
    napi_create_string_utf8(env, "sha256Job was cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    napi_reject_deferred(env, j->deferred, err);
  }
  napi_delete_reference(env, j->data_ref);
  napi_delete_reference(env, j->out_ref);
  napi_delete_async_work(env, j->work);
  free(j->path);
  free(j);
}

/*
 * A chain step's start (sha256Job, storeStepJob, hashFileJob): `before`, the
 * bytes hashed before it (a whole number), and `state`, 32 bytes, or
 * null/undefined for the initial state (only at 0). Returns 0, or -1 with a
 * TypeError pending.
 */
static int chain_start(napi_env env, napi_value vstate, napi_value vbefore, unsigned char state[32], int *has_state, uint64_t *before) {
  double b = 0;
  if (napi_get_value_double(env, vbefore, &b) != napi_ok || b < 0 || b > 9007199254740991.0 || b != (double) (uint64_t) b) {
    type_error(env, "before must be a whole number >= 0");
    return -1;
  }
  *before = (uint64_t) b;
  *has_state = 0;
  napi_valuetype st; napi_typeof(env, vstate, &st);
  if (st != napi_null && st != napi_undefined) {
    void *sv; size_t slen;
    if (napi_get_buffer_info(env, vstate, &sv, &slen) != napi_ok || slen != 32) { type_error(env, "state must be a Buffer of 32 bytes or null"); return -1; }
    memcpy(state, sv, 32);
    *has_state = 1;
  } else if (*before != 0) {
    type_error(env, "a chain step from the initial state starts at 0");
    return -1;
  }
  return 0;
}

static napi_value sha256_job(napi_env env, napi_callback_info info) {
  size_t argc = 7; napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 5) return type_error(env, "sha256Job(data, flags, state, before, out[, path, want])");
  void *data; size_t len; void *out; size_t out_len;
  if (napi_get_buffer_info(env, argv[0], &data, &len) != napi_ok) return type_error(env, "data must be a Buffer");
  uint32_t flags = 0;
  if (napi_get_value_uint32(env, argv[1], &flags) != napi_ok || (flags & ~15u) != 0 || (flags & 3) == 0 || ((flags & 4) && !(flags & 2))) return type_error(env, "bad flags");
  if (napi_get_buffer_info(env, argv[4], &out, &out_len) != napi_ok || out_len < 64) return type_error(env, "out must be a Buffer of at least 64 bytes");
  unsigned char state[32] = {0}; int has_state; uint64_t before;
  if (chain_start(env, argv[2], argv[3], state, &has_state, &before) != 0) return NULL;
  hash_job *j = calloc(1, sizeof *j);
  if (j == NULL) return throw_errno(env, ENOMEM, "sha256Job");
  j->data = data; j->len = len; j->out = out; j->flags = flags; j->before = before;
  memcpy(j->state, state, 32); j->has_state = has_state;
  if (argc >= 7) {
    char path[4096];
    uint32_t want = 0;
    if (get_string(env, argv[5], path, sizeof path) != 0) { free(j); return type_error(env, "path must be a string"); }
    if (napi_get_value_uint32(env, argv[6], &want) != napi_ok || (size_t) want >= len) { free(j); return type_error(env, "want must be below data.length"); }
    j->path = strdup(path);
    if (j->path == NULL) { free(j); return throw_errno(env, ENOMEM, "sha256Job"); }
    j->want = want;
    len = want; /* the bytes hashed, for the checks below */
  }
  if ((flags & 2) && !(flags & 4) && (j->before % 64 != 0 || len % 64 != 0)) { free(j->path); free(j); return type_error(env, "a chain step needs whole 64-byte blocks"); }
  if ((flags & 2) && j->has_state && j->before % 64 != 0) { free(j->path); free(j); return type_error(env, "a chain state lies between 64-byte blocks"); }
  if ((flags & 8) && j->path != NULL) { free(j->path); free(j); return type_error(env, "a job that reads a file runs on the pool, not now"); }
  if (flags & 8) {
    hash_execute(env, j);
    free(j);
    napi_value undef;
    napi_get_undefined(env, &undef);
    return undef;
  }
  napi_create_reference(env, argv[0], 1, &j->data_ref);
  napi_create_reference(env, argv[4], 1, &j->out_ref);
  return queue_job(env, "paciofs:sha256", hash_execute, hash_complete, j, &j->work, &j->deferred);
}

/*
 * storeChunkJob(data, dir, tag, out, fd, pos) -> Promise<void>
 *
 * The history store's putChunk in one trip through the libuv pool, where it
 * took six (a hash, then access, open, write, close and rename, each a trip
 * of its own): hashes data (SHA-256), and unless dir/<h0h1>/<hash> exists,
 * writes it to dir/<h0h1>/<hash>.<tag>.tmp (mode 0600, created with its
 * directory if need be) and renames that into place, so a reader never sees
 * a partial chunk. out[0..32) = the hash, out[32] = 1 if this call wrote
 * the file (0: it was there). With fd >= 0, data is also written to fd at
 * offset pos first (pwrite: a replica's staging file of the whole version).
 * Rejects with the failing call's errno (the temporary file removed). Not
 * fsync'ed: see the store's flush().
 */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref data_ref, out_ref;
  const unsigned char *data;
  size_t len;
  char dir[PATH_BUF];
  char tag[NAME_BUF];
  unsigned char *out;
  int fd;
  int64_t pos;
  int err;
  const char *syscall;
} chunk_job;

static void chunk_execute(napi_env env, void *arg) {
  (void) env;
  chunk_job *j = arg;
  for (size_t done = 0; j->fd >= 0 && done < j->len;) {
    ssize_t n = pwrite(j->fd, j->data + done, j->len - done, (off_t) (j->pos + (int64_t) done));
    if (n < 0) {
      if (errno == EINTR) continue;
      j->err = errno; j->syscall = "pwrite";
      return;
    }
    done += (size_t) n;
  }
  SHA256(j->data, j->len, j->out);
  j->out[32] = 0;
  static const char hex[] = "0123456789abcdef";
  char name[65];
  for (int k = 0; k < 32; k++) { name[2 * k] = hex[j->out[k] >> 4]; name[2 * k + 1] = hex[j->out[k] & 15]; }
  name[64] = 0;
  char sub[PATH_BUF], file[PATH_BUF], tmp[PATH_BUF];
  if (snprintf(sub, sizeof sub, "%s/%.2s", j->dir, name) >= (int) sizeof sub ||
      snprintf(file, sizeof file, "%s/%s", sub, name) >= (int) sizeof file ||
      snprintf(tmp, sizeof tmp, "%s.%s.tmp", file, j->tag) >= (int) sizeof tmp) {
    j->err = ENAMETOOLONG; j->syscall = "open";
    return;
  }
  if (access(file, F_OK) == 0) return;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0 && errno == ENOENT) {
    if (mkdir(sub, 0700) != 0 && errno != EEXIST) { j->err = errno; j->syscall = "mkdir"; return; }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  }
  if (fd < 0) { j->err = errno; j->syscall = "open"; return; }
  for (size_t done = 0; done < j->len;) {
    ssize_t n = write(fd, j->data + done, j->len - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      j->err = errno; j->syscall = "write";
      close(fd); unlink(tmp);
      return;
    }
    done += (size_t) n;
  }
  if (close(fd) != 0) { j->err = errno; j->syscall = "close"; unlink(tmp); return; }
  if (rename(tmp, file) != 0) { j->err = errno; j->syscall = "rename"; unlink(tmp); return; }
  j->out[32] = 1;
}

static void chunk_complete(napi_env env, napi_status status, void *arg) {
  chunk_job *j = arg;
  if (status == napi_ok && j->err == 0) {
    napi_value undef;
    napi_get_undefined(env, &undef);
    napi_resolve_deferred(env, j->deferred, undef);
  } else {
    int e = status == napi_ok ? j->err : ECANCELED;
    char text[160];
    snprintf(text, sizeof text, "storeChunkJob %s: %s", status == napi_ok ? j->syscall : "cancelled", strerror(e));
    napi_reject_deferred(env, j->deferred, errno_error(env, e, text));
  }
  napi_delete_reference(env, j->data_ref);
  napi_delete_reference(env, j->out_ref);
  napi_delete_async_work(env, j->work);
  free(j);
}

/*
 * The arguments storeChunkJob and storeStepJob share, (data, dir, tag, out, fd,
 * pos), read into a zeroed job of `size` bytes whose first member is the
 * chunk_job (out must hold `out_min` bytes). Returns the job, or NULL with a
 * JS exception pending. The references to data and out are taken by
 * chunk_refs once the rest of the arguments passed.
 */
static chunk_job *chunk_args(napi_env env, napi_value *argv, size_t size, size_t out_min, const char *name) {
  void *data; size_t len; void *out; size_t out_len;
  if (napi_get_buffer_info(env, argv[0], &data, &len) != napi_ok) { type_error(env, "data must be a Buffer"); return NULL; }
  if (napi_get_buffer_info(env, argv[3], &out, &out_len) != napi_ok || out_len < out_min) {
    char msg[64];
    snprintf(msg, sizeof msg, "out must be a Buffer of at least %zu bytes", out_min);
    type_error(env, msg);
    return NULL;
  }
  chunk_job *j = calloc(1, size);
  if (j == NULL) { throw_errno(env, ENOMEM, name); return NULL; }
  if (get_string(env, argv[1], j->dir, sizeof j->dir) != 0 || j->dir[0] == 0) { free(j); type_error(env, "dir must be a string"); return NULL; }
  if (get_string(env, argv[2], j->tag, sizeof j->tag) != 0 || j->tag[0] == 0 || strchr(j->tag, '/') != NULL) { free(j); type_error(env, "tag must be a name"); return NULL; }
  int32_t fd = -1; int64_t pos = 0;
  if (napi_get_value_int32(env, argv[4], &fd) != napi_ok || napi_get_value_int64(env, argv[5], &pos) != napi_ok || pos < 0) {
    free(j); type_error(env, "fd must be a descriptor or -1, pos an offset >= 0"); return NULL;
  }
  j->data = data; j->len = len; j->out = out; j->fd = fd < 0 ? -1 : fd; j->pos = pos;
  return j;
}

static void chunk_refs(napi_env env, napi_value *argv, chunk_job *j) {
  napi_create_reference(env, argv[0], 1, &j->data_ref);
  napi_create_reference(env, argv[3], 1, &j->out_ref);
}

static napi_value store_chunk_job(napi_env env, napi_callback_info info) {
  size_t argc = 6; napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 6) return type_error(env, "storeChunkJob(data, dir, tag, out, fd, pos)");
  chunk_job *j = chunk_args(env, argv, sizeof *j, 33, "storeChunkJob");
  if (j == NULL) return NULL;
  chunk_refs(env, argv, j);
  return queue_job(env, "paciofs:chunk", chunk_execute, chunk_complete, j, &j->work, &j->deferred);
}

/*
 * limitMallocArenas(n): glibc gives each thread that meets a locked arena one
 * of its own (up to 8 per core), and a freed block stays in its arena. A
 * mount's libfuse threads each kept a few MB that way. M_ARENA_MAX caps the
 * count for arenas made from now on; call it before those threads start.
 * The same as MALLOC_ARENA_MAX=n in the environment, set by the program
 * itself. Returns false where mallopt refuses (another libc).
 */
static napi_value limit_malloc_arenas(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t n = 0;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &n) != napi_ok || n < 1) {
    napi_throw_type_error(env, "EINVAL", "limitMallocArenas(n): n must be a positive integer");
    return NULL;
  }
  napi_value r; napi_get_boolean(env, mallopt(M_ARENA_MAX, n) == 1, &r);
  return r;
}

/*
 * sha256Each(parts, out): out[32i..32i+32) = SHA-256(parts[i]) for every
 * Uint8Array in the array `parts`, synchronously. The embedded ledger hashes
 * each block's payloads (its txids) this way: one call instead of one
 * crypto.hash per payload, which cost several microseconds each.
 */
static napi_value sha256_each(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool is_array = false;
  if (argc < 2 || napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array) return type_error(env, "sha256Each(parts: Uint8Array[], out: Buffer)");
  uint32_t n = 0;
  napi_get_array_length(env, argv[0], &n);
  void *out; size_t out_len;
  if (napi_get_buffer_info(env, argv[1], &out, &out_len) != napi_ok || out_len < (size_t) n * 32) return type_error(env, "out must be a Buffer of 32 bytes per part");
  for (uint32_t i = 0; i < n; i++) {
    napi_value part;
    napi_get_element(env, argv[0], i, &part);
    napi_typedarray_type t; size_t len; void *data; napi_value ab; size_t off;
    if (napi_get_typedarray_info(env, part, &t, &len, &data, &ab, &off) != napi_ok || t != napi_uint8_array) return type_error(env, "every part must be a Uint8Array");
    SHA256(data, len, (unsigned char *) out + (size_t) i * 32);
  }
  return NULL;
}

/*
 * merkleRoot32(leaves): the RFC 6962 Merkle tree hash of n 32-byte leaves
 * given back to back (n * 32 bytes, n >= 1): leaves hashed as SHA-256(0x00 ||
 * leaf), inner nodes as SHA-256(0x01 || left || right), an odd last node
 * promoted unchanged. The same as merkleRoot in src/crypto/merkle.ts.
 */
static napi_value merkle_root32(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *in; size_t len;
  if (argc < 1 || napi_get_buffer_info(env, argv[0], &in, &len) != napi_ok || len == 0 || len % 32 != 0) return type_error(env, "merkleRoot32(leaves): a Buffer of n >= 1 leaves of 32 bytes");
  size_t n = len / 32;
  unsigned char *level = malloc(n * 32);
  if (level == NULL) return throw_errno(env, ENOMEM, "merkleRoot32");
  unsigned char buf[65];
  buf[0] = 0;
  for (size_t i = 0; i < n; i++) {
    memcpy(buf + 1, (unsigned char *) in + i * 32, 32);
    SHA256(buf, 33, level + i * 32);
  }
  buf[0] = 1;
  while (n > 1) {
    size_t m = 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
      memcpy(buf + 1, level + i * 32, 64);
      SHA256(buf, 65, level + m++ * 32);
    }
    if (n % 2 == 1) memmove(level + m++ * 32, level + (n - 1) * 32, 32);
    n = m;
  }
  napi_value r;
  napi_create_buffer_copy(env, 32, level, NULL, &r);
  free(level);
  return r;
}

/*
 * trimMallocJob(): glibc's malloc_trim(0) on a thread of libuv's pool, so the
 * event loop does not wait for it. Gives the free pages inside every arena back
 * to the kernel: a mount's arenas keep the pages of blocks its threads freed
 * (libfuse's, SQLite's), so its RSS only grows. Resolves to whether any memory
 * was released.
 */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int released;
} trim_job;

static void trim_execute(napi_env env, void *arg) {
  (void) env;
  trim_job *j = arg;
  j->released = malloc_trim(0);
}

static void trim_complete(napi_env env, napi_status status, void *arg) {
  trim_job *j = arg;
  napi_value r;
  napi_get_boolean(env, status == napi_ok && j->released == 1, &r);
  napi_resolve_deferred(env, j->deferred, r);
  napi_delete_async_work(env, j->work);
  free(j);
}

static napi_value trim_malloc_job(napi_env env, napi_callback_info info) {
  (void) info;
  trim_job *j = calloc(1, sizeof *j);
  if (j == NULL) return throw_errno(env, ENOMEM, "trimMallocJob");
  return queue_job(env, "paciofs:trim", trim_execute, trim_complete, j, &j->work, &j->deferred);
}

/*
 * tuneMalloc(mmapThreshold, trimThreshold, topPad): glibc serves a block of
 * at least M_MMAP_THRESHOLD (128 KiB until a larger mapped block is freed)
 * with a fresh mmap and unmaps it when freed, so every such buffer is new
 * memory that the kernel faults in and zeroes page by page; and it gives the
 * heap's free top back to the kernel beyond M_TRIM_THRESHOLD. A server that
 * streams 256 KiB-1 MiB messages allocates a few such buffers per message
 * (gRPC frames, TLS records): raising both keeps that memory in the heap for
 * reuse. Setting them turns off glibc's own adjustment of the two, as
 * MALLOC_MMAP_THRESHOLD_ etc. in the environment would. Returns false where
 * mallopt refuses one (another libc).
 */
static napi_value tune_malloc(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t v[3] = {0, 0, 0};
  for (size_t i = 0; i < 3; i++) {
    if (argc <= i || napi_get_value_int32(env, argv[i], &v[i]) != napi_ok || v[i] < 0) {
      napi_throw_type_error(env, "EINVAL", "tuneMalloc(mmapThreshold, trimThreshold, topPad): byte counts >= 0");
      return NULL;
    }
  }
  int ok = mallopt(M_MMAP_THRESHOLD, v[0]) == 1;
  ok = (mallopt(M_TRIM_THRESHOLD, v[1]) == 1) && ok;
  ok = (mallopt(M_TOP_PAD, v[2]) == 1) && ok;
  napi_value r; napi_get_boolean(env, ok, &r);
  return r;
}

/*
 * storeStepJob(data, dir, tag, out, fd, pos, state, before, last) -> Promise<void>
 *
 * storeChunkJob and, in the same job, the chunk's step of its version's
 * hash (as sha256Job's flag 2, and 4 with `last`): from `state` (32 bytes,
 * or null: the initial state, before = 0) with `before` bytes hashed, through
 * data; out[40..72) = the state after it, or the digest with last. out must
 * hold 72 bytes. A replica that has the sender's marks checks each fetched
 * chunk's step with it, on the pool, instead of one sequential pass.
 */
typedef struct {
  chunk_job c; /* first: chunk_complete frees the whole job */
  unsigned char state[32];
  int has_state;
  uint64_t before;
  int last;
} chunk_step_job;

static void chunk_step_execute(napi_env env, void *arg) {
  chunk_step_job *j = arg;
  chunk_execute(env, &j->c);
  if (j->c.err != 0) return;
  sha256_step(j->has_state ? j->state : NULL, j->before, j->c.data, j->c.len, j->last, j->c.out + 40);
}

static napi_value store_step_job(napi_env env, napi_callback_info info) {
  size_t argc = 9; napi_value argv[9];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 9) return type_error(env, "storeStepJob(data, dir, tag, out, fd, pos, state, before, last)");
  chunk_step_job *j = (chunk_step_job *) chunk_args(env, argv, sizeof *j, 72, "storeStepJob");
  if (j == NULL) return NULL;
  if (chain_start(env, argv[6], argv[7], j->state, &j->has_state, &j->before) != 0) { free(j); return NULL; }
  bool last = false;
  if (napi_get_value_bool(env, argv[8], &last) != napi_ok) { free(j); return type_error(env, "last must be a boolean"); }
  if (j->before % 64 != 0 || (!last && j->c.len % 64 != 0)) { free(j); return type_error(env, "a chain step needs whole 64-byte blocks"); }
  j->last = last;
  chunk_refs(env, argv, &j->c);
  return queue_job(env, "paciofs:chunk", chunk_step_execute, chunk_complete, j, &j->c.work, &j->c.deferred);
}

/*
 * hashFileJob(path, pos, len, state, before, out, buf) -> Promise<number>
 *
 * A sequential writer's running SHA-256, taken off the event loop after the
 * write: one job on the libuv pool reads bytes [pos, pos+len) of the file
 * `path` back (from the page cache: they were just written; a server passes
 * /proc/self/fd/N of the writer's descriptor) and takes their step of the
 * chain from `state` (32 bytes, null: the initial state) after `before`
 * bytes: out[0..32) = the state after it (sha256Job's chain step; before and
 * len must be multiples of 64). The bytes are read into `buf` (at least len
 * bytes, the caller's, untouched until the promise settles: no malloc of a
 * large block per job, whose lock the event loop's small allocations would
 * wait for). Resolves with the bytes read; only if that is len were they
 * hashed. Rejects with the errno of an open or read that failed.
 */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref out_ref, buf_ref;
  unsigned char *buf;
  char *path;
  int64_t pos;
  size_t len;
  unsigned char state[32];
  int has_state;
  uint64_t before;
  unsigned char *out;
  size_t got;
  int err;
} file_hash_job;

static void file_hash_execute(napi_env env, void *arg) {
  (void) env;
  file_hash_job *j = arg;
  unsigned char *buf = j->buf;
  int fd = open_quiet(j->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) { j->err = errno; return; }
  while (j->got < j->len) {
    ssize_t n = pread(fd, buf + j->got, j->len - j->got, (off_t) (j->pos + (int64_t) j->got));
    if (n < 0) { if (errno == EINTR) continue; j->err = errno; break; }
    if (n == 0) break;
    j->got += (size_t) n;
  }
  close(fd);
  if (j->err == 0 && j->got == j->len) sha256_step(j->has_state ? j->state : NULL, j->before, buf, j->len, 0, j->out);
}

static void file_hash_complete(napi_env env, napi_status status, void *arg) {
  file_hash_job *j = arg;
  if (status == napi_ok && j->err == 0) {
    napi_value n;
    napi_create_double(env, (double) j->got, &n);
    napi_resolve_deferred(env, j->deferred, n);
  } else {
    int e = status == napi_ok ? j->err : ECANCELED;
    char text[160];
    snprintf(text, sizeof text, "hashFileJob %s: %s", status == napi_ok ? "read" : "cancelled", strerror(e));
    napi_reject_deferred(env, j->deferred, errno_error(env, e, text));
  }
  napi_delete_reference(env, j->out_ref);
  napi_delete_reference(env, j->buf_ref);
  napi_delete_async_work(env, j->work);
  free(j->path);
  free(j);
}

static napi_value hash_file_job(napi_env env, napi_callback_info info) {
  size_t argc = 7; napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 7) return type_error(env, "hashFileJob(path, pos, len, state, before, out, buf)");
  char path[PATH_BUF];
  if (get_string(env, argv[0], path, sizeof path) != 0 || path[0] == 0) return type_error(env, "path must be a string");
  int64_t pos = -1, len = -1;
  if (napi_get_value_int64(env, argv[1], &pos) != napi_ok || pos < 0) return type_error(env, "pos must be an offset >= 0");
  if (napi_get_value_int64(env, argv[2], &len) != napi_ok || len < 0 || len > (1 << 30)) return type_error(env, "len must be 0 to 1 GiB");
  unsigned char state[32] = {0}; int has_state; uint64_t before;
  if (chain_start(env, argv[3], argv[4], state, &has_state, &before) != 0) return NULL;
  if (before % 64 != 0 || len % 64 != 0) return type_error(env, "a chain step needs whole 64-byte blocks");
  void *out; size_t out_len;
  if (napi_get_buffer_info(env, argv[5], &out, &out_len) != napi_ok || out_len < 32) return type_error(env, "out must be a Buffer of at least 32 bytes");
  void *buf; size_t buf_len;
  if (napi_get_buffer_info(env, argv[6], &buf, &buf_len) != napi_ok || buf_len < (size_t) len) return type_error(env, "buf must be a Buffer of at least len bytes");
  file_hash_job *j = calloc(1, sizeof *j);
  if (j == NULL) return throw_errno(env, ENOMEM, "hashFileJob");
  j->pos = pos; j->len = (size_t) len; j->before = before; j->out = out; j->buf = buf;
  memcpy(j->state, state, 32); j->has_state = has_state;
  j->path = strdup(path);
  if (j->path == NULL) { free(j); return throw_errno(env, ENOMEM, "hashFileJob"); }
  napi_create_reference(env, argv[5], 1, &j->out_ref);
  napi_create_reference(env, argv[6], 1, &j->buf_ref);
  return queue_job(env, "paciofs:hashfile", file_hash_execute, file_hash_complete, j, &j->work, &j->deferred);
}

/*
 * syncfsJob(path) -> Promise<void>: syncfs(2) of the file system holding
 * `path`, on a thread of libuv's pool: every dirty page and inode of that
 * file system written, then one cache flush of the device. The history store
 * makes many small files durable with it at once: an fdatasync each costs a
 * device cache flush each (ext4 issues one even for a file with nothing left
 * to write: 4,096 clean chunk files took 2.7 s here, one syncfs 15 ms).
 */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  char *path;
  int err;
} syncfs_job;

static void syncfs_execute(napi_env env, void *arg) {
  (void) env;
  syncfs_job *j = arg;
  int fd = open(j->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) { j->err = errno; return; }
  if (syncfs(fd) != 0) j->err = errno;
  close(fd);
}

/* Settle a job's promise that resolves to nothing: undefined, or an errno error named after the job. */
static void settle_void(napi_env env, napi_status status, int err, napi_deferred deferred, const char *job) {
  if (status == napi_ok && err == 0) {
    napi_value u;
    napi_get_undefined(env, &u);
    napi_resolve_deferred(env, deferred, u);
    return;
  }
  int e = status == napi_ok ? err : ECANCELED;
  char text[160];
  snprintf(text, sizeof text, "%s: %s", job, strerror(e));
  napi_reject_deferred(env, deferred, errno_error(env, e, text));
}

static void syncfs_complete(napi_env env, napi_status status, void *arg) {
  syncfs_job *j = arg;
  settle_void(env, status, j->err, j->deferred, "syncfsJob");
  napi_delete_async_work(env, j->work);
  free(j->path);
  free(j);
}

static napi_value syncfs_job_fn(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[PATH_BUF];
  if (argc < 1 || get_string(env, argv[0], path, sizeof path) != 0 || path[0] == 0) return type_error(env, "syncfsJob(path): path must be a string");
  syncfs_job *j = calloc(1, sizeof *j);
  if (j == NULL) return throw_errno(env, ENOMEM, "syncfsJob");
  j->path = strdup(path);
  if (j->path == NULL) { free(j); return throw_errno(env, ENOMEM, "syncfsJob"); }
  return queue_job(env, "paciofs:syncfs", syncfs_execute, syncfs_complete, j, &j->work, &j->deferred);
}

/*
 * syncRangeJob(fd, offset, length) -> Promise<void>: sync_file_range(2) with
 * SYNC_FILE_RANGE_WRITE only, on a thread of libuv's pool: the disk starts
 * writing the range's dirty pages and the call returns (it may wait for room
 * in the device's queue, hence the pool). Nothing is waited for, so no
 * writeback error is taken from the file here: the file's next fsync still
 * reports it. A file written sequentially this way has little left for its
 * fsync to write.
 */
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int fd;
  int64_t offset, length;
  int err;
} sync_range_job;

static void sync_range_execute(napi_env env, void *arg) {
  (void) env;
  sync_range_job *j = arg;
  if (sync_file_range(j->fd, j->offset, j->length, SYNC_FILE_RANGE_WRITE) != 0) j->err = errno;
}

static void sync_range_complete(napi_env env, napi_status status, void *arg) {
  sync_range_job *j = arg;
  settle_void(env, status, j->err, j->deferred, "syncRangeJob");
  napi_delete_async_work(env, j->work);
  free(j);
}

static napi_value sync_range_job_fn(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  int64_t offset, length;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return type_error(env, "syncRangeJob(fd, offset, length): fd must be a descriptor");
  if (napi_get_value_int64(env, argv[1], &offset) != napi_ok || offset < 0) return type_error(env, "offset must be >= 0");
  if (napi_get_value_int64(env, argv[2], &length) != napi_ok || length < 0) return type_error(env, "length must be >= 0");
  sync_range_job *j = calloc(1, sizeof *j);
  if (j == NULL) return throw_errno(env, ENOMEM, "syncRangeJob");
  j->fd = fd;
  j->offset = offset;
  j->length = length;
  return queue_job(env, "paciofs:syncrange", sync_range_execute, sync_range_complete, j, &j->work, &j->deferred);
}

/* execv(file, argv): replaces this process with a new program (same pid, same open descriptors,
 * standard input, output and error, signals that are ignored stay ignored). Returns only on failure, by throwing. bin/run.js uses it
 * to start node again with other V8 options for serve and join (src/app/relaunch.ts). */
static napi_value do_execv(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char file[4096];
  uint32_t n = 0;
  bool is_array = false;
  if (argc < 2 || get_string(env, argv[0], file, sizeof file) != 0 ||
      napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[1], &n) != napi_ok || n == 0 || n > 4096) {
    return type_error(env, "execv(file, argv): a path and 1-4096 strings");
  }
  char **args = calloc(n + 1, sizeof *args);
  if (args == NULL) return throw_errno(env, ENOMEM, "execv");
  int bad = 0;
  for (uint32_t i = 0; i < n && !bad; i++) {
    napi_value item;
    size_t len = 0;
    if (napi_get_element(env, argv[1], i, &item) != napi_ok ||
        napi_get_value_string_utf8(env, item, NULL, 0, &len) != napi_ok) { bad = 1; break; }
    args[i] = malloc(len + 1);
    if (args[i] == NULL || napi_get_value_string_utf8(env, item, args[i], len + 1, &len) != napi_ok) bad = 1;
  }
  int e = EINVAL;
  if (!bad) {
    /* node marks 0, 1 and 2 close-on-exec: the new program keeps them */
    int flags[3];
    for (int fd = 0; fd < 3; fd++) {
      flags[fd] = fcntl(fd, F_GETFD);
      if (flags[fd] >= 0) fcntl(fd, F_SETFD, flags[fd] & ~FD_CLOEXEC);
    }
    execv(file, args);
    e = errno;
    for (int fd = 0; fd < 3; fd++) if (flags[fd] >= 0) fcntl(fd, F_SETFD, flags[fd]);
  }
  for (uint32_t i = 0; i < n; i++) free(args[i]);
  free(args);
  if (bad) return type_error(env, "execv(file, argv): a path and 1-4096 strings");
  return throw_errno(env, e, "execv");
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"lutimensNs", NULL, lutimens_ns, NULL, NULL, NULL, napi_default, NULL},
    {"mknod", NULL, do_mknod, NULL, NULL, NULL, napi_default, NULL},
    {"lsetxattr", NULL, do_lsetxattr, NULL, NULL, NULL, napi_default, NULL},
    {"lgetxattr", NULL, do_lgetxattr, NULL, NULL, NULL, napi_default, NULL},
    {"llistxattr", NULL, do_llistxattr, NULL, NULL, NULL, napi_default, NULL},
    {"lremovexattr", NULL, do_lremovexattr, NULL, NULL, NULL, napi_default, NULL},
    {"readFiles", NULL, read_files, NULL, NULL, NULL, napi_default, NULL},
    {"sha256Job", NULL, sha256_job, NULL, NULL, NULL, napi_default, NULL},
    {"storeChunkJob", NULL, store_chunk_job, NULL, NULL, NULL, napi_default, NULL},
    {"limitMallocArenas", NULL, limit_malloc_arenas, NULL, NULL, NULL, napi_default, NULL},
    {"trimMallocJob", NULL, trim_malloc_job, NULL, NULL, NULL, napi_default, NULL},
    {"sha256Each", NULL, sha256_each, NULL, NULL, NULL, napi_default, NULL},
    {"merkleRoot32", NULL, merkle_root32, NULL, NULL, NULL, napi_default, NULL},
    {"tuneMalloc", NULL, tune_malloc, NULL, NULL, NULL, napi_default, NULL},
    {"storeStepJob", NULL, store_step_job, NULL, NULL, NULL, napi_default, NULL},
    {"execv", NULL, do_execv, NULL, NULL, NULL, napi_default, NULL},
    {"hashFileJob", NULL, hash_file_job, NULL, NULL, NULL, napi_default, NULL},
    {"syncfsJob", NULL, syncfs_job_fn, NULL, NULL, NULL, napi_default, NULL},
    {"syncRangeJob", NULL, sync_range_job_fn, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
