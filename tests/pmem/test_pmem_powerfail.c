/* test_pmem_powerfail.c -- power-failure images from a shadow of the pool.
 *
 * Hooks on the persist wrapper (persist.h) keep a shadow image that only
 * receives cache lines that were flushed (copied at flush time) and then
 * drained.  At random drains -- i.e. inside operations, between their
 * numbered steps -- a crash image is built: the shadow as it stands before
 * this drain, plus a random subset of the 8-byte words where the live pool
 * differs from it (stores not yet durable, each either lost or kept whole:
 * 8-byte failure atomicity).  Each image is opened like a pool after power
 * loss and checked against the model (crash_model.h).
 *
 * The RDMA view is checked too, at every drain and after every reported
 * step: a bit shown in the store's mirror must be set in the shadow, i.e.
 * durable (published strictly after durable; the workload's two-phase
 * commits set bits between the swap and the end, also in words the commit
 * holds, so publishing anything but the value recorded at the swap shows).
 *
 *   test_pmem_powerfail [--ops N] [--seed S] [--prob P]
 *
 * Self-check: --no-drain-in-commit simulates a store that forgot its drain
 * (the shadow is not told of commit drains); the test must then fail.
 */
#include <time.h>

#include "crash_model.h"
#include "format.h"
#include "persist.h"

struct line {
	size_t off;
	uint8_t data[64];
};

static struct {
	uint8_t *shadow;
	size_t size;
	struct line *pend;
	size_t npend, cap;
	uint64_t rng;
	unsigned prob;  /* crash image at 1 in prob drains */
	int busy;       /* verifying: ignore hooks */
	struct cm *model;
	char img_path[600];
	unsigned long images, drains;
	int failed;
	int skip_commit_drain;
	int in_commit;
	int in_owner;   /* inside an owner record update */
	unsigned long owner_images;
	/* the view check: the mirror of mapping i at mirror + rel[i], its
	 * pool bitmap at shadow + off[i] (slots never change in the workload) */
	const uint8_t *mirror;
	uint64_t off[CM_MAPS], rel[CM_MAPS];
	unsigned long view_checks;
} sh;

/* Every bit shown in the view is durable (in the shadow).  Reads the
 * mirror directly: this runs inside drains, under the store's lock. */
static void check_view(const char *where)
{
	if (!sh.mirror || sh.busy || sh.failed)
		return;
	sh.view_checks++;
	for (uint32_t i = 0; i < CM_MAPS; i++) {
		for (uint64_t w = 0; w < (CM_GRAINS + 63) / 64; w++) {
			uint64_t shown, durable;

			shown = __atomic_load_n((const uint64_t *)(sh.mirror + sh.rel[i]) + w,
						__ATOMIC_RELAXED);
			memcpy(&durable, sh.shadow + sh.off[i] + w * 8, 8);
			if (shown & ~durable) {
				fprintf(stderr, "view check %lu (%s, drain %lu): map %u word %"
					PRIu64 ": shown, not durable: %#" PRIx64 "\n",
					sh.view_checks, where, sh.drains, i, w,
					le64toh(shown & ~durable));
				sh.failed = 1;
				return;
			}
		}
	}
}

static void on_flush(void *arg, const struct fm_persist *p, size_t off, size_t len)
{
	(void)arg;
	if (sh.busy)
		return;
	for (size_t a = off & ~(size_t)63; a < off + len; a += 64) {
		if (sh.npend == sh.cap) {
			sh.cap = sh.cap ? sh.cap * 2 : 1024;
			sh.pend = realloc(sh.pend, sh.cap * sizeof(*sh.pend));
		}
		sh.pend[sh.npend].off = a;
		memcpy(sh.pend[sh.npend].data, p->base + a, 64);
		sh.npend++;
	}
}

static void crash_image(const struct fm_persist *p)
{
	uint8_t *img = malloc(sh.size);
	char why[256];

	memcpy(img, sh.shadow, sh.size);
	/* a random subset of the not-yet-durable 8-byte words */
	unsigned mode = (unsigned)(fmt_rand(&sh.rng) % 3); /* none, some, all */
	for (size_t w = 0; w < sh.size; w += 8) {
		if (!memcmp(img + w, p->base + w, 8))
			continue;
		if (mode == 2 || (mode == 1 && (fmt_rand(&sh.rng) & 1)))
			memcpy(img + w, p->base + w, 8);
	}
	if (fmt_write_file(sh.img_path, img, sh.size)) {
		perror("write image");
		exit(1);
	}
	free(img);
	sh.owner_images += sh.in_owner;
	sh.busy = 1;
	if (cm_verify(sh.model, sh.img_path, why, sizeof(why))) {
		fprintf(stderr, "crash image %lu (drain %lu): %s\n", sh.images,
			sh.drains, why);
		sh.failed = 1;
	}
	sh.busy = 0;
	sh.images++;
}

static int on_drain(void *arg, const struct fm_persist *p)
{
	(void)arg;
	if (sh.busy)
		return 0;
	sh.drains++;
	check_view("drain");
	if (fmt_rand(&sh.rng) % sh.prob == 0)
		crash_image(p);
	if (sh.skip_commit_drain && sh.in_commit)
		return 0; /* simulated bug: this drain does nothing */
	for (size_t k = 0; k < sh.npend; k++)
		memcpy(sh.shadow + sh.pend[k].off, sh.pend[k].data, 64);
	sh.npend = 0;
	return 0;
}

static void emit_model(void *arg, const struct cm_rec *r)
{
	cm_feed(arg, r);
	sh.in_commit = r->type == CM_INTENT_SPLIT || r->type == CM_COMMIT_BEGIN;
	sh.in_owner = r->type == CM_INTENT_OWNER;
	check_view("step");
}

int main(int argc, char **argv)
{
	unsigned long ops = 3000;
	uint64_t seed = (uint64_t)time(NULL);
	char path[600];
	struct fm_persist_hooks hooks = { on_flush, on_drain, NULL };
	struct fm_store *s;
	struct cm c;
	size_t len = 0;

	sh.prob = 4;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--ops") && i + 1 < argc)
			ops = strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--prob") && i + 1 < argc)
			sh.prob = (unsigned)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(argv[i], "--no-drain-in-commit"))
			sh.skip_commit_drain = 1;
		else {
			fprintf(stderr, "usage: %s [--ops N] [--seed S] [--prob P]"
				" [--no-drain-in-commit]\n", argv[0]);
			return 2;
		}
	}
	if (sh.prob == 0)
		sh.prob = 1;
	sh.rng = seed;
	printf("seed %" PRIu64 " ops %lu dir %s\n", seed, ops, fmt_dir());
	if (cm_create(fmt_path(path, sizeof(path), "pf"))) {
		fprintf(stderr, "setup: %s\n", fm_errormsg());
		return 1;
	}
	fmt_path(sh.img_path, sizeof(sh.img_path), "pf-img");
	memset(&c, 0, sizeof(c));
	cm_adopt(&c, path);
	sh.model = &c;

	/* the file as closed is durable: it is the initial shadow */
	sh.shadow = fmt_read_file(path, &len);
	sh.size = len;
	fm_persist_set_hooks(&hooks);
	if (fm_store_open(&s, path, NULL)) {
		fprintf(stderr, "open: %s\n", fm_errormsg());
		return 1;
	}
	{
		struct fm_sb sb;
		struct fm_store_map_info info;
		const void *area;
		size_t alen;

		fm_sb_decode(&sb, (const struct fm_sb_media *)sh.shadow);
		fm_store_bitmap_region(s, &area, &alen);
		for (uint32_t i = 0; i < CM_MAPS; i++) {
			if (fm_store_map_get(s, cm_id(i), &info)) {
				fprintf(stderr, "map_get: %s\n", fm_errormsg());
				return 1;
			}
			sh.rel[i] = (uint64_t)info.slot * sb.bitmap_stride;
			sh.off[i] = sb.bitmap_off + sh.rel[i];
		}
		sh.mirror = area;
	}
	uint64_t wrng = seed ^ 0xabcdef;
	for (unsigned long k = 0; k < ops && !sh.failed; k++)
		cm_step(s, &wrng, emit_model, &c);
	fm_store_close(&s);
	fm_persist_set_hooks(NULL);
	unlink(sh.img_path);
	unlink(path);
	printf("%s: %lu drains, %lu crash images (%lu inside an owner record update),"
	       " %lu view checks\n", sh.failed ? "FAILED" : "ok", sh.drains, sh.images,
	       sh.owner_images, sh.view_checks);
	return sh.failed;
}
