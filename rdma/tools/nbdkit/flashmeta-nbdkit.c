/* flashmeta-nbdkit.c -- an nbdkit plugin: one volume of a FlashCopy mapping
 * (its source or its target) served over NBD through the library's I/O
 * engine (flashmeta/engine.h), so tools no one here wrote -- qemu-img,
 * qemu-io, nbdcopy -- read and write flashmeta volumes.
 *
 *   nbdkit PLUGIN.so addr=shm:/NAME key-file=PATH client=ID map=ID \
 *          volume=source|target source=FILE target=FILE [fence=PATH] \
 *          [provider=shm|verbs] [device=DEV] [direct=off|auto|on]
 *
 * The plugin is one client of the owner: an agent (client id `client`),
 * an engine, and reference file volumes for the mapping's source and
 * target (flashmeta/refvol.h; with the owner's fence table when given, so
 * a write of a fenced session lands nowhere).  Every NBD read and write is
 * one fm_engine_rw on the volume named by `volume` -- the library does the
 * copy-on-write.  FLUSH makes both files durable (fdatasync) inside an I/O
 * bracket, under the session's fencing token.  With direct=auto|on the
 * files use O_DIRECT where allowed, and the plugin tells NBD clients its
 * alignment as the minimum block size (they read-modify-write below it).
 * Default off: the page cache, any 512-byte aligned request.
 *
 * Threads: nbdkit's parallel model; the engine takes any number of
 * threads.  Errors: nbdkit_error with fm_errormsg(), errno set from the
 * engine's status (engine.h lists them).
 */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flashmeta/agent.h"
#include "flashmeta/engine.h"
#include "flashmeta/error.h"
#include "flashmeta/fence_table.h"
#include "flashmeta/refvol.h"

#define KEY_MAX 64

static struct {
	/* config */
	const char *addr, *provider, *device, *key_file, *src_path, *tgt_path, *fence_path;
	uint32_t client;
	uint64_t map;
	bool target;            /* volume=target */
	bool volume_set;
	enum fm_refvol_direct direct;
	/* run */
	struct fm_agent *agent;
	struct fm_engine *engine;
	struct fm_fence_table *fence;
	struct fm_refvol *src, *tgt;
	uint64_t size;
} P = { .provider = "shm", .direct = FM_REFVOL_BUFFERED };

static int fm_config(const char *key, const char *value)
{
	if (!strcmp(key, "addr")) {
		P.addr = value;
	} else if (!strcmp(key, "provider")) {
		P.provider = value;
	} else if (!strcmp(key, "device")) {
		P.device = value;
	} else if (!strcmp(key, "key-file")) {
		P.key_file = value;
	} else if (!strcmp(key, "source")) {
		P.src_path = value;
	} else if (!strcmp(key, "target")) {
		P.tgt_path = value;
	} else if (!strcmp(key, "fence")) {
		P.fence_path = value;
	} else if (!strcmp(key, "client")) {
		if (nbdkit_parse_uint32_t("client", value, &P.client) == -1)
			return -1;
		if (P.client == 0 || P.client > 65535) {
			nbdkit_error("client=%s: 1..65535", value);
			return -1;
		}
	} else if (!strcmp(key, "map")) {
		if (nbdkit_parse_uint64_t("map", value, &P.map) == -1)
			return -1;
	} else if (!strcmp(key, "volume")) {
		if (strcmp(value, "source") && strcmp(value, "target")) {
			nbdkit_error("volume=%s: source or target", value);
			return -1;
		}
		P.target = !strcmp(value, "target");
		P.volume_set = true;
	} else if (!strcmp(key, "direct")) {
		if (!strcmp(value, "auto"))
			P.direct = FM_REFVOL_DIRECT_TRY;
		else if (!strcmp(value, "on"))
			P.direct = FM_REFVOL_DIRECT;
		else if (!strcmp(value, "off"))
			P.direct = FM_REFVOL_BUFFERED;
		else {
			nbdkit_error("direct=%s: auto, on or off", value);
			return -1;
		}
	} else {
		nbdkit_error("unknown parameter '%s' (nbdkit PLUGIN --help lists them)", key);
		return -1;
	}
	return 0;
}

static int fm_config_complete(void)
{
	if (!P.addr || !P.key_file || !P.client || !P.map || !P.volume_set || !P.src_path ||
	    !P.tgt_path) {
		nbdkit_error("addr, key-file, client, map, volume, source and target are needed");
		return -1;
	}
	return 0;
}

/* the shared key: the file's bytes, 1..KEY_MAX (a trailing newline dropped) */
static int key_read(uint8_t *key, size_t *len)
{
	int fd = open(P.key_file, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0) {
		nbdkit_error("key-file %s: %s", P.key_file, strerror(errno));
		return -1;
	}
	n = read(fd, key, KEY_MAX + 1);
	close(fd);
	if (n > 0 && key[n - 1] == '\n')
		n--;
	if (n <= 0 || n > KEY_MAX) {
		nbdkit_error("key-file %s: 1..%d bytes needed", P.key_file, KEY_MAX);
		return -1;
	}
	*len = (size_t)n;
	return 0;
}

static int vol_open(const char *path, struct fm_refvol **out, struct fm_volume **vol)
{
	struct fm_refvol_cfg vc = { .path = path, .size = P.size, .fence = P.fence,
				    .client_id = P.client, .direct = P.direct };
	int rc = fm_refvol_open(&vc, out);

	if (!rc)
		rc = fm_engine_volume_add(P.engine, fm_refvol_ops(), *out, P.size, vol);
	if (rc)
		nbdkit_error("volume %s: %s", path, fm_errormsg());
	return rc;
}

/* after config, before the first connection: join the owner, attach */
static int fm_get_ready(void)
{
	uint8_t key[KEY_MAX + 1];
	struct fm_agent_cfg ac = { .provider = P.provider, .device = P.device, .addr = P.addr,
				   .client_id = P.client, .key = key, .wait_ms = 10000 };
	struct fm_engine_cfg ec = { .retry_ms = 10000 };
	struct fm_volume *vs, *vt;
	struct fm_agent_map m;
	struct stat sb;
	int rc;

	if (key_read(key, &ac.key_len))
		return -1;
	if (stat(P.src_path, &sb)) {
		nbdkit_error("source %s: %s", P.src_path, strerror(errno));
		return -1;
	}
	P.size = (uint64_t)sb.st_size;
	if ((rc = fm_agent_new(&P.agent, &ac)) || (rc = fm_agent_wait_active(P.agent, 10000))) {
		nbdkit_error("joining the owner at %s: %s", P.addr, fm_errormsg());
		return -1;
	}
	for (int i = 0; i < 1000 && fm_agent_map_get(P.agent, P.map, &m); i++)
		usleep(10000);
	if (fm_agent_map_get(P.agent, P.map, &m)) {
		nbdkit_error("map %" PRIu64 ": the owner does not serve it", P.map);
		return -1;
	}
	if (m.grain_count != (P.size + (UINT64_C(1) << m.grain_shift) - 1) >> m.grain_shift) {
		nbdkit_error("map %" PRIu64 " has %" PRIu64 " grains of 2^%u bytes; %s holds %"
			     PRIu64 " bytes", P.map, m.grain_count, m.grain_shift, P.src_path,
			     P.size);
		return -1;
	}
	if (P.fence_path && fm_fence_table_open(P.fence_path, 0, &P.fence)) {
		nbdkit_error("fence %s: %s", P.fence_path, fm_errormsg());
		return -1;
	}
	ec.agent = P.agent;
	if (fm_engine_new(&ec, &P.engine)) {
		nbdkit_error("engine: %s", fm_errormsg());
		return -1;
	}
	if (vol_open(P.src_path, &P.src, &vs) || vol_open(P.tgt_path, &P.tgt, &vt))
		return -1;
	if (fm_engine_attach(P.engine, P.map, vs, vt)) {
		nbdkit_error("attach map %" PRIu64 ": %s", P.map, fm_errormsg());
		return -1;
	}
	nbdkit_debug("flashmeta: client %u, map %" PRIu64 " %s, %" PRIu64 " bytes", P.client,
		     P.map, P.target ? "target" : "source", P.size);
	return 0;
}

static void fm_unload(void)
{
	fm_engine_delete(&P.engine); /* no I/O in flight: nbdkit closed every handle */
	fm_refvol_close(&P.src);
	fm_refvol_close(&P.tgt);
	fm_fence_table_close(&P.fence);
	fm_agent_delete(&P.agent);
}

static void *fm_open(int readonly)
{
	(void)readonly;
	return &P; /* all connections share the engine */
}

static int64_t fm_get_size(void *h)
{
	(void)h;
	return (int64_t)P.size;
}

static int fm_rw(enum fm_io_op op, void *buf, uint32_t count, uint64_t offset)
{
	int rc = fm_engine_rw(P.engine, P.map, op, offset, count, buf, NULL);

	if (rc) {
		nbdkit_error("%s %u bytes at %" PRIu64 ": %s", fm_io_op_name(op), count, offset,
			     fm_errormsg());
		errno = -rc == ETIMEDOUT || -rc == EKEYREJECTED ? EIO : -rc;
		return -1;
	}
	return 0;
}

static int fm_pread(void *h, void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
	(void)h;
	(void)flags;
	return fm_rw(P.target ? FM_IO_READ_TARGET : FM_IO_READ_SOURCE, buf, count, offset);
}

static int fm_pwrite(void *h, const void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
	(void)h;
	(void)flags; /* FUA: not offered (can_fua: NONE), nbdkit flushes for it */
	/* the engine takes a writable buffer for every op; writes only read it */
	return fm_rw(P.target ? FM_IO_WRITE_TARGET : FM_IO_WRITE_SOURCE, (void *)buf, count,
		     offset);
}

/* both files durable, admitted by the fence table under this session's
 * token (a fenced session's flush is refused like its writes) */
static int fm_flush(void *h, uint32_t flags)
{
	struct fm_mover_req r = { .op = FM_MOVER_FLUSH };
	struct fm_agent_io io;
	int rc;

	(void)h;
	(void)flags;
	rc = fm_agent_io_begin(P.agent, P.map, &io);
	if (!rc) {
		rc = fm_agent_step_begin(P.agent, &io, &r.token);
		if (!rc) {
			rc = fm_refvol_do(P.src, &r);
			if (!rc)
				rc = fm_refvol_do(P.tgt, &r);
			fm_agent_step_end(P.agent, &io);
		}
		fm_agent_io_end(P.agent, &io);
	}
	if (rc) {
		nbdkit_error("flush: %s", fm_errormsg());
		errno = EIO;
		return -1;
	}
	return 0;
}

/* O_DIRECT: the clients must keep to its alignment (NBD block size) */
static int fm_block_size(void *h, uint32_t *minimum, uint32_t *preferred, uint32_t *maximum)
{
	struct fm_refvol_stats st;

	(void)h;
	fm_refvol_stats(P.src, &st);
	*minimum = st.direct ? st.align : 1;
	*preferred = st.direct ? st.align : 4096;
	*maximum = 0xffffffff;
	return 0;
}

static int fm_can_multi_conn(void *h)
{
	(void)h;
	return 1; /* one engine behind every connection: a flush covers them all */
}

static int fm_thread_model(void)
{
	return NBDKIT_THREAD_MODEL_PARALLEL;
}

#define fm_config_help \
	"addr=ADDR            the owner: shm:/NAME or IP:PORT (required)\n" \
	"provider=shm|verbs   (default shm)\n" \
	"device=DEV           verbs device\n" \
	"key-file=PATH        the key shared with the owner (required)\n" \
	"client=ID            this client's id, 1..65535 (required)\n" \
	"map=ID               the mapping (required)\n" \
	"volume=source|target which of its volumes this export is (required)\n" \
	"source=FILE          the source volume's file (required)\n" \
	"target=FILE          the target volume's file (required)\n" \
	"fence=PATH           the owner's fence table (writes of a fenced session refused)\n" \
	"direct=off|auto|on   O_DIRECT on the files (default off; with it the\n" \
	"                     alignment is the NBD minimum block size)"

static struct nbdkit_plugin plugin = {
	.name = "flashmeta",
	.longname = "flashmeta FlashCopy volume",
	.version = "0.1",
	.description = "one volume of a FlashCopy mapping through the flashmeta I/O engine",
	.config = fm_config,
	.config_complete = fm_config_complete,
	.config_help = fm_config_help,
	.magic_config_key = NULL,
	.get_ready = fm_get_ready,
	.unload = fm_unload,
	.open = fm_open,
	.get_size = fm_get_size,
	.pread = fm_pread,
	.pwrite = fm_pwrite,
	.flush = fm_flush,
	.can_multi_conn = fm_can_multi_conn,
	.block_size = fm_block_size,
	.thread_model = fm_thread_model,
};

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL
NBDKIT_REGISTER_PLUGIN(plugin)
