/* digest.h -- checksums and the keyed MAC, shared by the wire format
 * (core/src/wire.c) and the pmem pool format (pmem/src/format.c).
 *
 * CRC-32C detects corruption (media, a wrong buffer or length); it is no
 * protection against an adversary.  HMAC-SHA-256 authenticates a client at
 * join (challenge/response, the key never on the wire).  Pure functions,
 * no allocation, safe from any thread.
 */
#ifndef FLASHMETA_DIGEST_H
#define FLASHMETA_DIGEST_H

#include <stddef.h>
#include <stdint.h>

/*
 * fm_crc32c_update -- CRC-32C (Castagnoli, reflected, init/xorout
 * 0xffffffff) extended over buf.  Start from 0; chaining pieces gives the
 * CRC of their concatenation:
 *   fm_crc32c_update(fm_crc32c_update(0, a, n), b, m) == CRC(a || b).
 */
uint32_t fm_crc32c_update(uint32_t crc, const void *buf, size_t len);

/* fm_crc32c -- CRC-32C of one buffer ("123456789" -> 0xe3069283). */
static inline uint32_t fm_crc32c(const void *buf, size_t len)
{
	return fm_crc32c_update(0, buf, len);
}

#define FM_SHA256_SIZE 32u
#define FM_SHA256_BLOCK 64u

struct fm_sha256 {
	uint32_t h[8];
	uint64_t bytes;            /* message length so far */
	uint8_t block[FM_SHA256_BLOCK];
	uint32_t used;             /* bytes in block */
};

/* SHA-256 (FIPS 180-4), incremental. */
void fm_sha256_init(struct fm_sha256 *s);
void fm_sha256_update(struct fm_sha256 *s, const void *data, size_t len);
void fm_sha256_final(struct fm_sha256 *s, uint8_t out[FM_SHA256_SIZE]);

/* HMAC-SHA-256 (RFC 2104) of `data` under `key` (any length). */
void fm_hmac_sha256(const void *key, size_t key_len, const void *data,
		    size_t data_len, uint8_t out[FM_SHA256_SIZE]);

#endif /* FLASHMETA_DIGEST_H */
