/* engine_min.c -- the smallest I/O engine, built against an INSTALLED
 * libflashmeta (tests/install/install-test.sh builds it twice: with
 * pkg-config and with find_package), so it includes only installed
 * headers, the way a user's engine does.
 *
 *   engine_min                        no owner: argument errors and their
 *                                     messages, a memory volume by hand
 *   engine_min ADDR KEYFILE MAP_ID    an agent and an engine over two
 *                                     memory volumes against the owner at
 *                                     ADDR (shm), mapping MAP_ID started,
 *                                     1 MiB, 4 KiB grains, nothing split
 *
 * Prints "engine_min: OK" and exits 0, or says what failed and exits 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <flashmeta/engine.h>
#include <flashmeta/error.h>
#include <flashmeta/refvol.h>

#define VOL_SIZE (1u << 20)
#define GRAIN 4096u

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "engine_min: %s:%d: %s failed (fm_errormsg: %s)\n", \
				__FILE__, __LINE__, #cond, fm_errormsg());                 \
			return 1;                                                          \
		}                                                                          \
	} while (0)

static int offline(void)
{
	struct fm_agent_cfg cfg;
	struct fm_agent *a = NULL;
	struct fm_engine_cfg ecfg;
	struct fm_engine *e = NULL;
	struct fm_refvol_cfg vcfg;
	struct fm_refvol *v = NULL;
	struct fm_mover_req r;
	char buf[16] = "installed";
	char back[16] = "";

	/* client id 0 is refused, with a message */
	memset(&cfg, 0, sizeof(cfg));
	cfg.addr = "shm:/nowhere";
	cfg.key = "k";
	cfg.key_len = 1;
	CHECK(fm_agent_new(&a, &cfg) == -EINVAL && a == NULL);
	CHECK(fm_errormsg()[0] != '\0');
	memset(&ecfg, 0, sizeof(ecfg));
	CHECK(fm_engine_new(&ecfg, &e) == -EINVAL && e == NULL);

	/* a memory volume, one request run by hand */
	memset(&vcfg, 0, sizeof(vcfg));
	vcfg.size = VOL_SIZE;
	CHECK(fm_refvol_open(&vcfg, &v) == 0);
	memset(&r, 0, sizeof(r));
	r.op = FM_MOVER_WRITE;
	r.offset = GRAIN;
	r.length = sizeof(buf);
	r.buf = buf;
	CHECK(fm_refvol_do(v, &r) == 0);
	r.op = FM_MOVER_READ;
	r.buf = back;
	CHECK(fm_refvol_do(v, &r) == 0 && memcmp(back, buf, sizeof(buf)) == 0);
	fm_refvol_close(&v);
	CHECK(v == NULL);
	return 0;
}

static int online(const char *addr, const char *keyfile, uint64_t map)
{
	static char src_data[GRAIN], tgt_data[GRAIN], buf[GRAIN], zero[GRAIN];
	struct fm_agent_cfg cfg;
	struct fm_agent *a = NULL;
	struct fm_engine_cfg ecfg;
	struct fm_engine *e = NULL;
	struct fm_refvol_cfg vcfg;
	struct fm_refvol *vs = NULL, *vt = NULL;
	struct fm_volume *src, *tgt;
	struct fm_engine_stats st;
	char key[64];
	size_t key_len;
	FILE *f;

	f = fopen(keyfile, "rb");
	CHECK(f != NULL);
	key_len = fread(key, 1, sizeof(key), f);
	fclose(f);
	CHECK(key_len > 0);

	memset(&cfg, 0, sizeof(cfg));
	cfg.provider = "shm";
	cfg.addr = addr;
	cfg.client_id = 1;
	cfg.key = key;
	cfg.key_len = key_len;
	CHECK(fm_agent_new(&a, &cfg) == 0);
	CHECK(fm_agent_wait_active(a, 10000) == 0);

	memset(&ecfg, 0, sizeof(ecfg));
	ecfg.agent = a;
	CHECK(fm_engine_new(&ecfg, &e) == 0);
	memset(&vcfg, 0, sizeof(vcfg));
	vcfg.size = VOL_SIZE;
	CHECK(fm_refvol_open(&vcfg, &vs) == 0);
	CHECK(fm_refvol_open(&vcfg, &vt) == 0);
	CHECK(fm_engine_volume_add(e, fm_refvol_ops(), vs, VOL_SIZE, &src) == 0);
	CHECK(fm_engine_volume_add(e, fm_refvol_ops(), vt, VOL_SIZE, &tgt) == 0);
	CHECK(fm_engine_attach(e, map, src, tgt) == 0);

	/* the source changes after the trigger: the target still reads as
	 * the source did (zeros), the source reads its new data */
	memset(src_data, 'S', sizeof(src_data));
	CHECK(fm_engine_rw(e, map, FM_IO_WRITE_SOURCE, 0, GRAIN, src_data, NULL) == 0);
	CHECK(fm_engine_rw(e, map, FM_IO_READ_TARGET, 0, GRAIN, buf, NULL) == 0);
	CHECK(memcmp(buf, zero, GRAIN) == 0);
	CHECK(fm_engine_rw(e, map, FM_IO_READ_SOURCE, 0, GRAIN, buf, NULL) == 0);
	CHECK(memcmp(buf, src_data, GRAIN) == 0);
	/* the target's own write */
	memset(tgt_data, 'T', sizeof(tgt_data));
	CHECK(fm_engine_rw(e, map, FM_IO_WRITE_TARGET, 2 * GRAIN, GRAIN, tgt_data, NULL) == 0);
	CHECK(fm_engine_rw(e, map, FM_IO_READ_TARGET, 2 * GRAIN, GRAIN, buf, NULL) == 0);
	CHECK(memcmp(buf, tgt_data, GRAIN) == 0);
	/* an I/O past the volume is the caller's mistake */
	CHECK(fm_engine_rw(e, map, FM_IO_READ_SOURCE, VOL_SIZE, GRAIN, buf, NULL) == -ERANGE);

	fm_engine_stats(e, &st);
	CHECK(st.copies >= 1 && st.commits >= 2);

	fm_engine_delete(&e);
	fm_agent_delete(&a);
	fm_refvol_close(&vs);
	fm_refvol_close(&vt);
	CHECK(e == NULL && a == NULL);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 1 && argc != 4) {
		fprintf(stderr, "usage: engine_min [ADDR KEYFILE MAP_ID]\n");
		return 2;
	}
	if (offline())
		return 1;
	if (argc == 4 && online(argv[1], argv[2], strtoull(argv[3], NULL, 10)))
		return 1;
	printf("engine_min: OK (%s)\n", argc == 4 ? "offline and against the owner" : "offline");
	return 0;
}
