/* input.h -- what an operator types and names: strict numbers and the
 * small files (config, key) a program reads whole.
 *
 * One vocabulary for the owner's config keys, its control commands and the
 * CLI's arguments, so that "-5", "0x10", "4294967297" or a FIFO named as a
 * key file get the same clear refusal everywhere.
 *
 * Errors: negative errno, detail in fm_errormsg() naming `what`.
 */
#ifndef FLASHMETA_INPUT_H
#define FLASHMETA_INPUT_H

#include <stddef.h>
#include <stdint.h>

/*
 * fm_u64_parse -- the whole of `s` as a decimal number in [min, max]:
 * digits only (no sign, no blanks, no 0x, no suffix), checked for overflow
 * while reading and for range before the caller narrows it.  `what` names
 * the argument in the message ("--id", "config: lease_ms", "map id").
 * Returns 0, -EINVAL (empty or not digits) or -ERANGE (above 2^64-1 or
 * outside [min, max]).  Never blocks.
 */
int fm_u64_parse(const char *what, const char *s, uint64_t min, uint64_t max,
		 uint64_t *out);

/*
 * fm_regular_file_read -- the whole content of `path` into buf[0..cap),
 * its length in *len (no terminator added).  Only a regular file (or a
 * symbolic link to one) is read: a FIFO, a device, a socket or a directory
 * is refused before it is read (a FIFO is opened non-blocking, so a
 * missing writer cannot hang the caller; /dev/zero cannot loop it).
 * Returns 0, -EISDIR, -ENODEV (not a regular file), -EFBIG (more than cap
 * bytes), or the errno of stat/open/read.  `what` names the file's role
 * ("key file", "config").  Blocks only on the file system.
 */
int fm_regular_file_read(const char *what, const char *path, void *buf, size_t cap,
			 size_t *len);

#endif /* FLASHMETA_INPUT_H */
