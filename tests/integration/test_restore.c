/* test_restore.c -- map-restore end to end: the real owner, this process
 * as a client with the library's engine and its copier on reference file
 * volumes S (attached as the source) and T (the target), checked block by
 * block against a model.
 *
 * Usage: test_restore --owner PATH [--provider shm|verbs --addr A]
 *
 *   A  S and T hold random data (T's is what a never-copied target reads
 *      as if the mapping forgot it); map-prepare, map-start: S's content
 *      is the image
 *   B  copying S->T at a slow rate, random I/O: source writes, target
 *      writes (the model of T's image: the image plus them), target reads
 *      checked against that model; until some grains are copied and some
 *      not
 *   R  map-restore: T's image at this point (the model) is what S must
 *      become; map-show says reversed 1, source T target S.  T itself,
 *      the source now, reads as its file holds: the grains the copy had
 *      not split were read from S until here, and T's file holds whatever
 *      it held there (this test's random fill) -- T is no image of
 *      anything after a restore, like the target of a stopped mapping;
 *      its image lives on in S
 *   C  random I/O again on both volumes -- named as attached: a write of S
 *      is now a write of the mapping's target -- with reads of S checked
 *      against (T's image at R + S's writes since R), reads of T against
 *      T's own data; then a fast rate, and the copy runs to the end:
 *      idle_or_copied by itself
 *   check  the S file equals T's image at R plus S's writes after R, the T
 *      file equals T's file at R plus T's writes after R, block by block
 * The copier runs in this process all along (a thread of the engine);
 * control commands block this thread while the agent's protocol thread
 * releases the mapping.  Exit 0 = pass.
 *
 * Checked to fail (mutants, not committed): the engine ignoring
 * FM_MAPDESC_REVERSED ("298 wrong reads, 463 blocks differ") and the store
 * keeping the old bitmap instead of its complement ("448 wrong reads, 845
 * blocks differ"), seed 777.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flashmeta/agent.h"
#include "flashmeta/engine.h"
#include "flashmeta/error.h"
#include "svc_vols.h"

#define MAP 1
#define GRAIN 4096u
#define GRAINS 256u
#define VOL ((uint64_t)GRAIN * GRAINS)
#define RATE_SLOW 15u  /* 256 KiB/s: 64 grains a second */
#define RATE_FAST 120u

static struct svc s;

/* map-show of MAP: `key`'s value as text, or its number (svc_util.h) */
static int show(const char *key, char *val, size_t cap)
{
	return svc_map_show(&s, MAP, key, val, cap);
}

static long show_num(const char *key)
{
	return svc_map_show_num(&s, MAP, key);
}

/*
 * n random I/Os: writes of `wvol` (FM_IO_WRITE_SOURCE/TARGET as attached)
 * kept in `wmodel`, reads of S checked against smodel and of T against
 * tmodel.  Partial grains, sector-aligned.  Returns the wrong reads.
 */
static int io_round(struct fm_engine *e, int n, uint64_t *x, uint8_t *smodel, uint8_t *tmodel)
{
	uint8_t buf[GRAIN];
	int bad = 0;

	for (int i = 0; i < n; i++) {
		uint64_t r = rnd(x) % 100, g = rnd(x) % GRAINS, sec = rnd(x) % (GRAIN / 512);
		uint64_t off = g * GRAIN + sec * 512, len = (1 + rnd(x) % (GRAIN / 512 - sec)) * 512;
		bool src = rnd(x) % 2;
		uint8_t *model = src ? smodel : tmodel;
		int rc;

		if (r < 40) {
			svc_fill(buf, len, x);
			rc = fm_engine_rw(e, MAP, src ? FM_IO_WRITE_SOURCE : FM_IO_WRITE_TARGET, off,
					  len, buf, NULL);
			if (rc)
				DIE("%s write: %s", src ? "S" : "T", fm_errormsg());
			memcpy(model + off, buf, len);
		} else {
			rc = fm_engine_rw(e, MAP, src ? FM_IO_READ_SOURCE : FM_IO_READ_TARGET, off, len,
					  buf, NULL);
			if (rc)
				DIE("%s read: %s", src ? "S" : "T", fm_errormsg());
			if (memcmp(buf, model + off, len)) {
				fprintf(stderr, "read of %s grain %" PRIu64 " is wrong\n",
					src ? "S" : "T", g);
				bad++;
			}
		}
	}
	return bad;
}

static int run(void)
{
	uint64_t x = svc_seed("restore", 777);
	struct fm_engine_copy_cfg cc = { .batch_grains = 16, .piece_grains = 4 };
	struct svc_vols vols;
	struct fm_engine *e;
	struct fm_agent *a;
	uint8_t *smodel, *tmodel, *timg, *got;
	char out[4096], v[64];
	long split_at_restore;
	int bad = 0, diff = 0;
	uint64_t t0;

	svc_owner_start(&s);
	/* A: random S and T, then the trigger */
	CHECK(svc_vols_trigger(&s, MAP, VOL, GRAIN, &x, &smodel, &tmodel) == 0);

	a = svc_agent(&s, 1, NULL);
	CHECK(fm_agent_wait_active(a, 8000) == 0);
	CHECK(svc_vols_open(&s, a, 1, MAP, VOL, &vols) == 0);
	e = vols.e;
	CHECK(svc_wait_gen(a, MAP, 1) == 0);
	CHECK(fm_engine_copy_start(e, &cc) == 0);

	/* B: copying S->T slowly, I/O on both */
	CHECK(svc_ctl(&s, out, sizeof(out), "map-rate %d %u", MAP, RATE_SLOW) == 0);
	t0 = mono_ms();
	while (show_num("split-pct") < 25 && mono_ms() - t0 < 20000)
		bad += io_round(e, 20, &x, smodel, tmodel);
	bad += io_round(e, 200, &x, smodel, tmodel);
	CHECK(svc_ctl(&s, out, sizeof(out), "map-rate %d 0", MAP) == 0);
	split_at_restore = show_num("split-pct");
	fprintf(stderr, "B: %ld%% split (copies and writes) before the restore\n",
		split_at_restore);
	CHECK(split_at_restore > 0 && split_at_restore < 100); /* partly copied */

	/* R: the restore.  T's image now is what S must become */
	timg = malloc(VOL);
	memcpy(timg, tmodel, VOL);
	CHECK(svc_ctl(&s, out, sizeof(out), "map-restore %d", MAP) == 0);
	fprintf(stderr, "R: %s", out);
	CHECK(strstr(out, " source 2 target 1 ") && strstr(out, " reversed 1 ") &&
	      strstr(out, " state copying ") && strstr(out, " generation 2 "));
	/* every grain split before is unsplit now and the other way round */
	CHECK(show_num("split-pct") <= 100 - split_at_restore + 1);
	memcpy(smodel, timg, VOL); /* S reads as T's image from here on */
	/* T: its own file (no I/O since the revoke) */
	got = svc_file_load(&s, "tgt.img", VOL);
	{
		unsigned unsplit = 0;

		for (uint64_t g = 0; g < GRAINS; g++)
			unsplit += memcmp(got + g * GRAIN, timg + g * GRAIN, GRAIN) != 0;
		fprintf(stderr, "R: %u grains of T's image were only in S (not copied)\n",
			unsplit);
		CHECK(unsplit > 0); /* the restore has grains to leave in S */
	}
	memcpy(tmodel, got, VOL);
	free(got);
	CHECK(svc_wait_gen(a, MAP, 2) == 0);
	{
		struct fm_agent_map m;

		CHECK(fm_agent_map_get(a, MAP, &m) == 0 && m.reversed);
	}

	/* C: I/O on both, a slow copy back; then fast to the end */
	CHECK(svc_ctl(&s, out, sizeof(out), "map-rate %d %u", MAP, RATE_SLOW) == 0);
	bad += io_round(e, 400, &x, smodel, tmodel);
	fprintf(stderr, "C: %ld%% split after the I/O\n", show_num("split-pct"));
	CHECK(svc_ctl(&s, out, sizeof(out), "map-rate %d %u", MAP, RATE_FAST) == 0);
	t0 = mono_ms();
	v[0] = '\0';
	while (mono_ms() - t0 < 30000) {
		if (!show("state", v, sizeof(v)) && !strcmp(v, "idle_or_copied"))
			break;
		bad += io_round(e, 5, &x, smodel, tmodel);
	}
	CHECK(!strcmp(v, "idle_or_copied"));
	CHECK(show_num("split-pct") == 100);
	bad += io_round(e, 100, &x, smodel, tmodel); /* no copy-on-write any more */
	CHECK(fm_engine_copy_stop(e) == 0);
	svc_vols_close(&vols);
	fm_agent_delete(&a);

	/* check, block by block */
	got = svc_file_load(&s, "src.img", VOL);
	for (uint64_t g = 0; g < GRAINS; g++)
		for (uint64_t b = 0; b < GRAIN / 512; b++)
			if (memcmp(got + g * GRAIN + b * 512, smodel + g * GRAIN + b * 512, 512)) {
				fprintf(stderr, "S grain %" PRIu64 " block %" PRIu64 " differs from "
					"T's image at the restore plus S's writes\n", g, b);
				diff++;
			}
	free(got);
	got = svc_file_load(&s, "tgt.img", VOL);
	for (uint64_t g = 0; g < GRAINS; g++)
		for (uint64_t b = 0; b < GRAIN / 512; b++)
			if (memcmp(got + g * GRAIN + b * 512, tmodel + g * GRAIN + b * 512, 512)) {
				fprintf(stderr, "T grain %" PRIu64 " block %" PRIu64 " differs from "
					"its image at the restore plus its writes\n", g, b);
				diff++;
			}
	free(got);
	fprintf(stderr, "check: %d wrong reads, %d blocks differ\n", bad, diff);
	free(smodel);
	free(tmodel);
	free(timg);
	return bad || diff;
}

int main(int argc, char **argv)
{
	uint64_t t0 = mono_ms();
	int rc;

	svc_init(&s, argc, argv, "restore");
	rc = run();
	rc |= svc_fini(&s);
	fprintf(stderr, "restore: %s in %" PRIu64 " ms\n", rc ? "FAIL" : "PASS", mono_ms() - t0);
	return rc ? 1 : 0;
}
