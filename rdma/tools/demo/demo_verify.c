/* demo_verify.c -- flashmeta-demo: the verifier, one more client (id
 * clients + 1) started after the others exited: it reads the whole target
 * through the engine -- the redirect of unsplit grains to the source
 * included -- and compares it with expected.img (golden + every logged
 * target write), byte for byte.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "demo_client.h"
#include "flashmeta/error.h"

int demo_verifier_main(const struct demo_cfg *cfg, int out)
{
	struct demo_verify v = { .client_id = cfg->clients + 1 };
	uint8_t *buf = aligned_alloc(DEMO_ALIGN, DEMO_CHUNK), *want = MAP_FAILED,
		*golden = MAP_FAILED;
	uint64_t t0 = demo_now_ns(), end = t0 + UINT64_C(15000000000);
	struct fm_agent_map am = { 0 };
	struct dclient cl;
	const char *what;
	int fd, rc, status = 1;

	rc = demo_client_open(&cl, cfg, v.client_id, &what);
	if (rc) {
		demo_send_error(out, "verifier (client %u): %s: %s (%s)", v.client_id, what,
				strerror(-rc), fm_errormsg());
		goto out;
	}
	if ((fd = open(cfg->expected, O_RDONLY | O_CLOEXEC)) >= 0) {
		want = mmap(NULL, cfg->size, PROT_READ, MAP_SHARED, fd, 0);
		close(fd);
	}
	if ((fd = open(cfg->golden, O_RDONLY | O_CLOEXEC)) >= 0) {
		golden = mmap(NULL, cfg->size, PROT_READ, MAP_SHARED, fd, 0);
		close(fd);
	}
	if (!buf || want == MAP_FAILED || golden == MAP_FAILED) {
		demo_send_error(out, "verifier: expected.img/golden.img: %s", strerror(errno));
		goto out;
	}
	while (demo_now_ns() < end &&
	       (fm_agent_map_get(cl.a, DEMO_MAP_ID, &am) || !am.granted))
		usleep(2000);
	for (uint64_t off = 0; off < cfg->size; off += DEMO_CHUNK) {
		uint64_t len = cfg->size - off < DEMO_CHUNK ? cfg->size - off : DEMO_CHUNK;

		rc = fm_engine_rw(cl.e, DEMO_MAP_ID, FM_IO_READ_TARGET, off, len, buf, NULL);
		if (rc) {
			v.status = rc;
			snprintf(v.what, sizeof(v.what), "read_target %" PRIu64 " bytes at %" PRIu64
				 ": %s (%s)", len, off, strerror(-rc), fm_errormsg());
			break;
		}
		v.bytes += len;
		if (!memcmp(buf, want + off, len))
			continue;
		for (uint64_t i = 0; i < len; i++) {
			uint64_t b = off + i;
			unsigned slot;

			if (buf[i] == want[b])
				continue;
			if (!v.mismatched_bytes++) {
				char whose[48];

				slot = demo_slot_of(cfg, b);
				if (slot == demo_slots(cfg))
					snprintf(whose, sizeof(whose), "nobody's");
				else
					snprintf(whose, sizeof(whose), "client %u thread %u's",
						 slot / cfg->threads + 1, slot % cfg->threads);
				v.first_bad = b;
				snprintf(v.what, sizeof(v.what), "target byte %" PRIu64 " (grain %"
					 PRIu64 ", %s stripe %" PRIu64 ") reads 0x%02x, expected "
					 "0x%02x (the trigger image has 0x%02x there)", b,
					 b / cfg->grain, whose, b / DEMO_STRIPE, buf[i], want[b],
					 golden[b]);
			}
		}
	}
	v.seconds = (double)(demo_now_ns() - t0) / 1e9;
	fm_engine_stats(cl.e, &v.eng);
	if (demo_send(out, DEMO_MSG_VERIFY, &v, sizeof(v)) == 0 && !v.status &&
	    !v.mismatched_bytes)
		status = 0;
out:
	if (want != MAP_FAILED)
		munmap(want, cfg->size);
	if (golden != MAP_FAILED)
		munmap(golden, cfg->size);
	free(buf);
	demo_client_close(&cl);
	return status;
}
