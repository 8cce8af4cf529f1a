/* error.h -- flashmeta's error convention.
 *
 * Every public function returns 0 (or a non-negative count) on success and a
 * negative errno on failure.  The detail behind the errno ("grain size 3000
 * is not a power of two") lives in a thread-local message that the failing
 * call sets and fm_errormsg() returns.  Nothing is printed to stderr by the
 * library.
 */
#ifndef FLASHMETA_ERROR_H
#define FLASHMETA_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * fm_errormsg -- the message set by the last failing flashmeta call on this
 * thread, or "" if none failed yet.  Valid until the next flashmeta call on
 * the same thread.
 */
const char *fm_errormsg(void);

/*
 * fm_err -- set this thread's message (printf format) and return `err`
 * (a negative errno) so callers can write `return fm_err(-EINVAL, ...)`.
 * For library modules; applications need not call it.
 */
int fm_err(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* fm_err_clear -- reset this thread's message to "". */
void fm_err_clear(void);

#ifdef __cplusplus
}
#endif
#endif /* FLASHMETA_ERROR_H */
