/* ctl.h -- talking to a running owner from outside: the client side of its
 * control socket, and the shared key file that the owner and its clients
 * both read.
 *
 * This is what the CLI (`flashmeta admin`, `flashmeta -k`) and the
 * integration tests link: no transport, no pmem store.  The commands and the
 * answer format of the control socket are described in ownerd.h.
 *
 * Errors: negative errno, detail in fm_errormsg().
 */
#ifndef FLASHMETA_CTL_H
#define FLASHMETA_CTL_H

#include <stddef.h>
#include <stdint.h>

/* the shared key is 1..FM_KEY_MAX bytes */
#define FM_KEY_MAX 64

/* the longest control command line the owner reads, its "\n" included;
 * a longer one is answered "error EINVAL: line too long" and closed */
#define FM_CTL_LINE_MAX 511

/* the longest answer fm_ownerd_ctl collects (status of 1024 mappings is
 * about 200 KiB) */
#define FM_CTL_ANSWER_MAX (1024 * 1024)

/*
 * fm_ownerd_ctl -- send one control command (`cmd`: one line ending in
 * "\n", e.g. "map-start 1\n") to the owner's control socket at `path` and
 * collect the answer (lines ending with one that starts "ok" or "error")
 * into out (if cap > 0, NUL-terminated, truncated to cap).  Blocks up to
 * timeout_ms per read.  Returns 0 for "ok", -EREMOTEIO for "error" (the
 * owner's reason is in out), -EINVAL (cmd: not one line, or over
 * FM_CTL_LINE_MAX bytes), -ENAMETOOLONG, -ETIMEDOUT, -ECONNRESET,
 * -EMSGSIZE (answer over FM_CTL_ANSWER_MAX), -ENOMEM, or a socket errno.
 */
int fm_ownerd_ctl(const char *path, const char *cmd, char *out, size_t cap, int timeout_ms);

/*
 * fm_key_file_read -- the shared key: the file's bytes without a trailing
 * newline, 1..FM_KEY_MAX bytes.  Only a regular file is read (a FIFO or a
 * device is refused without blocking, see fm_regular_file_read).  Returns
 * the length, -EINVAL (length), -EISDIR, -ENODEV (not a regular file),
 * -EFBIG (over 256 bytes), or the errno of stat/open/read.
 */
int fm_key_file_read(const char *path, uint8_t *key, size_t cap);

#endif /* FLASHMETA_CTL_H */
