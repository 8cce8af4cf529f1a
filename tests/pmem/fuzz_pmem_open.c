/* fuzz_pmem_open.c -- fuzz pool validation and open/recovery.
 *
 * libFuzzer target (clang -fsanitize=fuzzer): LLVMFuzzerTestOneInput.
 * Without libFuzzer (FM_FUZZ_REPLAY), a small main mutates built-in seeds
 * deterministically, so every build exercises the validation path:
 *   fuzz_pmem_open_replay [ITERATIONS] [SEED]
 *
 * Each input is validated read-only (fm_pool_check); an input whose last
 * byte is odd first gets its superblock, log record, owner record and slot
 * checksums and its applied word's check value recomputed, so mutations
 * reach the checks behind the checksums.  Inputs that validate
 * are written to a file and opened for real (log replay included), then
 * validated again: open must leave a clean pool.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "flashmeta/error.h"
#include "flashmeta/pmem_store.h"
#include "format.h"
#include "pmem_test_util.h"
#include "pool_edit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static uint64_t ids[FM_SLOTS_MAX];
static char pool_path[600];

static void fix_checksums(uint8_t *b, size_t n)
{
	struct fm_sb_media sm;
	struct fm_sb sb;

	if (n < FM_BLOCK)
		return;
	memcpy(&sm, b, sizeof(sm));
	fm_le32_put(&sm.checksum, fm_sb_checksum(&sm));
	memcpy(b, &sm, sizeof(sm));
	fm_sb_decode(&sb, &sm);
	if (n >= 2 * FM_BLOCK) {
		struct fm_log_media lm;
		static const uint8_t zero[192];
		uint64_t seq;

		memcpy(&lm, b + FM_LOG_OFF, sizeof(lm));
		seq = fm_le64_get(&lm.applied_seq) & FM_SEQ_MAX;
		fm_le64_put(&lm.applied_seq, fm_applied_encode(sb.incompat, seq));
		for (int k = 0; k < 2; k++) {
			if (memcmp(&lm.rec[k], zero, sizeof(lm.rec[k])))
				fm_le32_put(&lm.rec[k].checksum, fm_log_checksum(&lm.rec[k]));
			if (memcmp(&lm.owner[k], zero, sizeof(lm.owner[k])))
				fm_le32_put(&lm.owner[k].checksum,
					    fm_owner_checksum(&lm.owner[k]));
		}
		memcpy(b + FM_LOG_OFF, &lm, sizeof(lm));
	}
	for (uint64_t i = 0; i < sb.slot_count && i < FM_SLOTS_MAX; i++) {
		uint64_t off = FM_TABLE_OFF + i * FM_SLOT_SIZE;
		struct fm_slot_media slot;
		static const struct fm_slot_media zero;
		if (off + FM_SLOT_SIZE > n)
			break;
		memcpy(&slot, b + off, sizeof(slot));
		if (!memcmp(&slot, &zero, sizeof(slot)))
			continue;
		fm_le32_put(&slot.checksum, fm_slot_checksum(&slot));
		memcpy(b + off, &slot, sizeof(slot));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fm_check c;
	struct fm_store *s;
	uint8_t *b = malloc(size ? size : 1);
	int ret;

	memcpy(b, data, size);
	if (size && (data[size - 1] & 1))
		fix_checksums(b, size);
	ret = fm_pool_check(b, size, &c, ids);
	if (ret > 0 || (ret < 0 && fm_errormsg()[0] == '\0'))
		abort(); /* every failure explains itself */
	if (ret == 0 && size <= (1u << 20)) {
		if (!pool_path[0])
			fmt_path(pool_path, sizeof(pool_path), "fuzz");
		if (fmt_write_file(pool_path, b, size) == 0) {
			ret = fm_store_open(&s, pool_path, NULL);
			if (ret)
				abort(); /* validated, yet open failed */
			fm_store_close(&s);
			size_t n;
			uint8_t *after = fmt_read_file(pool_path, &n);
			if (!after || fm_pool_check(after, n, &c, ids) || c.log_pending)
				abort(); /* open must leave a clean pool */
			free(after);
		}
	}
	free(b);
	return 0;
}

/* ---- seeds ----------------------------------------------------------- */

/* with_pending: 0 a clean pool, 1 with a committed restart pending, 2 the
 * clean pool in format 1.0 */
static uint8_t *seed_pool(size_t *len, int with_pending)
{
	char path[600];
	struct fm_store_config cfg = { .max_mappings = 2, .max_grains = 100 };
	struct fm_store *s;
	struct fm_mapping m;
	uint8_t *b;

	fmt_path(path, sizeof(path), "fuzzseed");
	if (fm_store_create(&s, path, &cfg))
		abort();
	fm_mapping_init(&m, 5, 1, 2, 70 * 4096, 4096);
	fm_store_map_create(s, &m);
	fm_store_map_transition(s, 5, FM_MAP_EV_PREPARE, NULL);
	fm_store_map_transition(s, 5, FM_MAP_EV_PREPARE_DONE, NULL);
	fm_store_map_transition(s, 5, FM_MAP_EV_START, NULL);
	for (uint64_t g = 0; g < 70; g += 3)
		fm_store_split_set(s, 5, 1, g);
	fm_store_split_commit(s);
	fm_store_close(&s);
	b = fmt_read_file(path, len);
	unlink(path);
	if (with_pending == 2) {
		pe_downgrade_1_0(b); /* a format 1.0 pool */
	} else if (with_pending) {
		/* a committed restart record not yet applied */
		struct fm_slot sl;
		struct fm_log_rec r = { 0 };
		fm_slot_decode(&sl, (struct fm_slot_media *)(b + FM_TABLE_OFF));
		sl.m.generation++;
		r.seq = pe_applied(b) + 1;
		r.op = FM_LOG_RESTART;
		r.in_use = 1;
		fm_slot_encode(&r.image, &sl);
		pe_put_rec(b, &r);
	}
	return b;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *dir = getenv("FM_FUZZ_SEED_DIR");
	char p[700];

	if (!dir)
		return 0;
	mkdir(dir, 0755);
	for (int k = 0; k < 3; k++) {
		size_t n;
		uint8_t *b = seed_pool(&n, k);
		snprintf(p, sizeof(p), "%s/seed-%d", dir, k);
		fmt_write_file(p, b, n);
		free(b);
	}
	return 0;
}

#ifdef FM_FUZZ_REPLAY
static const uint64_t interesting[] = {
	0, 1, 2, 0x7f, 0x80, 0xff, 0x1000, 0xffffffff, UINT64_MAX, 1ull << 46,
};

int main(int argc, char **argv)
{
	unsigned long iters = argc > 1 ? strtoul(argv[1], NULL, 0) : 20000;
	uint64_t rng = argc > 2 ? strtoull(argv[2], NULL, 0) : 42;
	size_t len[3];
	uint8_t *seed[3];

	for (int k = 0; k < 3; k++) {
		seed[k] = seed_pool(&len[k], k);
		LLVMFuzzerTestOneInput(seed[k], len[k]);
	}
	for (unsigned long it = 0; it < iters; it++) {
		int k = (int)(fmt_rand(&rng) % 3);
		size_t n = len[k];
		uint8_t *b = malloc(n + 64);
		memcpy(b, seed[k], n);
		int muts = 1 + (int)(fmt_rand(&rng) % 4);
		for (int m = 0; m < muts && n; m++) {
			/* mostly the metadata blocks, sometimes anywhere */
			size_t region = fmt_rand(&rng) % 4 ? FM_TABLE_OFF + 512 : n;
			size_t at = fmt_rand(&rng) % (region < n ? region : n);
			switch (fmt_rand(&rng) % 5) {
			case 0: b[at] ^= (uint8_t)(1u << (fmt_rand(&rng) % 8)); break;
			case 1: b[at] = (uint8_t)fmt_rand(&rng); break;
			case 2: {
				uint64_t v = interesting[fmt_rand(&rng) % 10];
				at &= ~(size_t)7;
				if (at + 8 <= n)
					memcpy(b + at, &v, 8);
				break;
			}
			case 3: n = fmt_rand(&rng) % (n + 1); break; /* truncate */
			case 4: b[at] = 0; break;
			}
		}
		if (n)
			b[n - 1] = (uint8_t)((b[n - 1] & ~1u) | (fmt_rand(&rng) & 1));
		LLVMFuzzerTestOneInput(b, n);
		free(b);
	}
	printf("ok: %lu mutated inputs\n", iters);
	for (int k = 0; k < 3; k++)
		free(seed[k]);
	return 0;
}
#endif
