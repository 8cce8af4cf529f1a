/* svc_vols.c -- see svc_vols.h. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flashmeta/error.h"
#include "flashmeta/fence_table.h"
#include "flashmeta/refvol.h"
#include "svc_vols.h"

void svc_vols_make(struct svc *s, uint64_t size)
{
	char p[400];

	for (int i = 0; i < 2; i++) {
		int fd;

		snprintf(p, sizeof(p), "%s/%s", s->dir, i ? "tgt.img" : "src.img");
		fd = open(p, O_RDWR | O_CREAT, 0644);
		if (fd < 0 || ftruncate(fd, (off_t)size) != 0)
			DIE("volume %s: %s", p, strerror(errno));
		close(fd);
	}
}

int svc_vols_trigger(struct svc *s, uint64_t map, uint64_t size, uint32_t grain, uint64_t *x,
		     uint8_t **smodel, uint8_t **tmodel)
{
	char out[4096];

	*smodel = malloc(size);
	*tmodel = malloc(size);
	if (!*smodel || !*tmodel)
		DIE("trigger: no memory");
	svc_fill(*smodel, size, x);
	svc_fill(*tmodel, size, x);
	svc_file_store(s, "src.img", *smodel, size);
	svc_file_store(s, "tgt.img", *tmodel, size);
	memcpy(*tmodel, *smodel, size);
	CHECK(svc_ctl(s, out, sizeof(out), "map-create %" PRIu64 " 1 2 %" PRIu64 " %u", map,
		      size, grain) == 0);
	CHECK(svc_ctl(s, out, sizeof(out), "map-prepare %" PRIu64, map) == 0);
	CHECK(svc_ctl(s, out, sizeof(out), "map-start %" PRIu64, map) == 0);
	return 0;
}

int svc_vols_open(struct svc *s, struct fm_agent *a, uint32_t id, uint64_t map_id,
		  uint64_t size, struct svc_vols *v)
{
	struct fm_engine_cfg ec = { .agent = a, .retry_ms = 20000 };
	struct fm_refvol_cfg rc = { .size = size, .client_id = id };
	struct fm_volume *vs, *vt;
	char p[2][400];

	memset(v, 0, sizeof(*v));
	v->map_id = map_id;
	snprintf(p[0], sizeof(p[0]), "%s/src.img", s->dir);
	snprintf(p[1], sizeof(p[1]), "%s/tgt.img", s->dir);
	CHECK(fm_fence_table_open(s->fence, 0, &v->ft) == 0);
	rc.fence = v->ft;
	rc.path = p[0];
	CHECK(fm_refvol_open(&rc, &v->src) == 0);
	rc.path = p[1];
	CHECK(fm_refvol_open(&rc, &v->tgt) == 0);
	CHECK(fm_engine_new(&ec, &v->e) == 0);
	CHECK(fm_engine_volume_add(v->e, fm_refvol_ops(), v->src, size, &vs) == 0);
	CHECK(fm_engine_volume_add(v->e, fm_refvol_ops(), v->tgt, size, &vt) == 0);
	CHECK(fm_engine_attach(v->e, map_id, vs, vt) == 0);
	return 0;
}

void svc_vols_close(struct svc_vols *v)
{
	fm_engine_delete(&v->e);
	fm_refvol_close(&v->src);
	fm_refvol_close(&v->tgt);
	fm_fence_table_close(&v->ft);
}

int svc_vols_io(struct svc_vols *v, enum fm_io_op op, uint64_t off, uint64_t len, void *buf)
{
	return fm_engine_rw(v->e, v->map_id, op, off, len, buf, NULL);
}

uint8_t *svc_file_load(struct svc *s, const char *name, size_t size)
{
	char p[400];
	uint8_t *b = calloc(1, size);
	int fd;

	snprintf(p, sizeof(p), "%s/%s", s->dir, name);
	fd = open(p, O_RDONLY);
	if (!b || fd < 0 || pread(fd, b, size, 0) != (ssize_t)size)
		DIE("load %s", p);
	close(fd);
	return b;
}

void svc_file_store(struct svc *s, const char *name, const uint8_t *b, size_t size)
{
	char p[400];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", s->dir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || pwrite(fd, b, size, 0) != (ssize_t)size)
		DIE("store %s", p);
	fsync(fd);
	close(fd);
}

void svc_fill(uint8_t *b, size_t n, uint64_t *x)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)rnd(x);
}
