/* config.c -- the owner's configuration: "key = value" lines, from a file or
 * from flags (flashmeta-owner), into struct fm_ownerd_cfg.
 *
 * What an operator may write (ownerd.h has the keys):
 *   - a file is read whole, and only if it is a regular file of at most
 *     CFG_FILE_MAX bytes; a line holds at most CFG_LINE_MAX bytes, no NUL
 *     and no control character but a tab (a FIFO, /dev/zero, a binary or
 *     a truncated line is refused, never half-applied);
 *   - '#' starts a comment at the start of a line or after a blank, so
 *     "pmem = /pools/a#1" keeps its '#' and "lease_ms = 5000  # 5 s" works;
 *   - every key once per file (a second one is refused, naming both lines);
 *     a flag replaces the file's value;
 *   - numbers are decimal, whole, unsigned, range-checked (fm_u64_parse);
 *   - no value is empty; the control socket path fits a sockaddr_un.
 * The first error stops the load; its message names the file and line.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "flashmeta/error.h"
#include "flashmeta/geometry.h"
#include "flashmeta/input.h"
#include "flashmeta/transport.h"
#include "ownerd_priv.h"

#define CFG_FILE_MAX (64u * 1024) /* bytes of a config file */
#define CFG_LINE_MAX 1023u        /* bytes of one line, its newline not counted */

enum cfg_key {
	K_LISTEN, K_TRANSPORT, K_DEVICE, K_PMEM, K_CONTROL, K_POOL_MAX_MAPS,
	K_POOL_MAX_GRAINS, K_LEASE_MS, K_CLIENTS, K_KEY_FILE, K_LOG_LEVEL, K_CONTROL_IDLE_MS,
	K_SHM_UIDS, K_FENCE_TABLE, K_TRANSITION_TIMEOUT_MS, K_COUNT
};

static const struct {
	const char *name, *alias;
} keys[K_COUNT] = {
	[K_LISTEN] = { "listen", NULL },
	[K_TRANSPORT] = { "transport", "provider" },
	[K_DEVICE] = { "device", NULL },
	[K_PMEM] = { "pmem", "pmem_path" },
	[K_CONTROL] = { "control", NULL },
	[K_POOL_MAX_MAPS] = { "pool_max_maps", NULL },
	[K_POOL_MAX_GRAINS] = { "pool_max_grains", NULL },
	[K_LEASE_MS] = { "lease_ms", NULL },
	[K_CLIENTS] = { "clients", NULL },
	[K_KEY_FILE] = { "key_file", NULL },
	[K_LOG_LEVEL] = { "log_level", NULL },
	[K_CONTROL_IDLE_MS] = { "control_idle_ms", NULL },
	[K_SHM_UIDS] = { "shm_uids", NULL },
	[K_FENCE_TABLE] = { "fence_table", NULL },
	[K_TRANSITION_TIMEOUT_MS] = { "transition_timeout_ms", NULL },
};

char *od_trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/*
 * Put `fmt...` in front of the current fm_errormsg() and return rc.  The
 * message is copied out first: fm_err formats into the buffer that
 * fm_errormsg() returns, so passing it as an argument would read the
 * buffer while overwriting it.
 */
static int err_prefixed(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int err_prefixed(int rc, const char *fmt, ...)
{
	char prefix[192], detail[256];
	va_list ap;

	snprintf(detail, sizeof(detail), "%s", fm_errormsg());
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	return fm_err(rc, "%s%s", prefix, detail);
}

static int key_find(const char *k)
{
	for (int i = 0; i < K_COUNT; i++)
		if (!strcmp(k, keys[i].name) || (keys[i].alias && !strcmp(k, keys[i].alias)))
			return i;
	return -1;
}

/* Replace a config string (by file then flag, or parse_line again). */
static int cfg_set_str(const char **dst, const char *v)
{
	char *copy = strdup(v);

	if (!copy)
		return fm_err(-ENOMEM, "out of memory");
	free((char *)*dst);
	*dst = copy;
	return 0;
}

/* "N" or "N-M", both in 1..FM_WIRE_CLIENT_ID_MAX, N <= M */
static int cfg_clients(struct fm_ownerd_cfg *cfg, const char *v)
{
	char buf[64], *dash;
	uint64_t n, m;
	int rc;

	if (strlen(v) >= sizeof(buf))
		return fm_err(-EINVAL, "clients '%.40s...': expected N or N-M", v);
	strcpy(buf, v);
	dash = strchr(buf, '-');
	if (dash)
		*dash = '\0';
	rc = fm_u64_parse("clients: first id", buf, 1, FM_WIRE_CLIENT_ID_MAX, &n);
	if (!rc) {
		m = n;
		if (dash)
			rc = fm_u64_parse("clients: last id", dash + 1, 1,
					  FM_WIRE_CLIENT_ID_MAX, &m);
	}
	if (rc)
		return rc;
	if (m < n)
		return fm_err(-EINVAL, "clients %" PRIu64 "-%" PRIu64 ": last below first", n, m);
	cfg->client_first = (uint32_t)n;
	cfg->client_last = (uint32_t)m;
	return 0;
}

/* "U[,U...]": the uids allowed to connect over shm, at most FM_SHM_UIDS_MAX */
static int cfg_shm_uids(struct fm_ownerd_cfg *cfg, const char *v)
{
	char buf[CFG_LINE_MAX + 1], *save = NULL, *tok;
	uint32_t n = 0;

	strcpy(buf, v); /* cfg_apply bounded it */
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		uint64_t uid;
		int rc = fm_u64_parse("shm_uids: uid", od_trim(tok), 0, UINT32_MAX - 1, &uid);

		if (rc)
			return rc;
		if (n == FM_SHM_UIDS_MAX)
			return fm_err(-E2BIG, "shm_uids: at most %u uids", FM_SHM_UIDS_MAX);
		cfg->shm_uids[n++] = (uint32_t)uid;
	}
	if (!n)
		return fm_err(-EINVAL, "shm_uids '%.40s': expected U[,U...]", v);
	cfg->shm_nuids = n;
	return 0;
}

static int cfg_log_level(struct fm_ownerd_cfg *cfg, const char *v)
{
	static const char *const names[] = { "err", "warn", "info", "debug" };

	if (!strcmp(v, "error")) {
		cfg->log_level = FM_LOGLVL_ERR;
		return 0;
	}
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(v, names[i])) {
			cfg->log_level = (enum fm_loglvl)i;
			return 0;
		}
	return fm_err(-EINVAL, "log_level '%.40s': expected err, warn, info or debug", v);
}

/* one key (an index into keys[]) from a value taken as it is */
static int cfg_apply(struct fm_ownerd_cfg *cfg, int k, const char *v)
{
	const char *name = keys[k].name;
	uint64_t n;
	int rc;

	if (!*v)
		return fm_err(-EINVAL, "%s: empty value", name);
	if (strlen(v) > CFG_LINE_MAX)
		return fm_err(-EINVAL, "%s: value of %zu bytes, at most %u", name, strlen(v),
			      CFG_LINE_MAX);
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return fm_err(-EINVAL, "%s: control character 0x%02x in the value", name,
				      (unsigned char)*p);
	switch (k) {
	case K_LISTEN:
		return cfg_set_str(&cfg->listen, v);
	case K_TRANSPORT:
		if (strcmp(v, "shm") && strcmp(v, "verbs"))
			return fm_err(-EINVAL, "transport '%.40s': expected shm or verbs", v);
		return cfg_set_str(&cfg->provider, v);
	case K_DEVICE:
		return cfg_set_str(&cfg->device, v);
	case K_PMEM:
		return cfg_set_str(&cfg->pmem_path, v);
	case K_CONTROL:
		if (strlen(v) >= sizeof(((struct sockaddr_un *)0)->sun_path))
			return fm_err(-ENAMETOOLONG, "control: path of %zu bytes, a unix socket "
				      "path holds at most %zu", strlen(v),
				      sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		return cfg_set_str(&cfg->control_path, v);
	case K_POOL_MAX_MAPS:
		/* an owner never serves more: a bigger table would be dead weight */
		rc = fm_u64_parse(name, v, 1, OD_MAX_MAPS, &n);
		if (!rc)
			cfg->pool_max_maps = (uint32_t)n;
		return rc;
	case K_POOL_MAX_GRAINS:
		/* the most grains a volume can have (geometry.h) */
		rc = fm_u64_parse(name, v, 1, FM_VOLUME_SIZE_MAX >> FM_GRAIN_SHIFT_MIN, &n);
		if (!rc)
			cfg->pool_max_grains = n;
		return rc;
	case K_LEASE_MS:
		rc = fm_u64_parse(name, v, 10, 600000, &n);
		if (!rc)
			cfg->lease_ms = (uint32_t)n;
		return rc;
	case K_CLIENTS:
		return cfg_clients(cfg, v);
	case K_KEY_FILE:
		rc = fm_key_file_read(v, cfg->key, sizeof(cfg->key));
		if (rc < 0)
			return rc;
		cfg->key_len = (size_t)rc;
		return 0;
	case K_LOG_LEVEL:
		return cfg_log_level(cfg, v);
	case K_CONTROL_IDLE_MS:
		rc = fm_u64_parse(name, v, 100, 86400000, &n);
		if (!rc)
			cfg->control_idle_ms = (uint32_t)n;
		return rc;
	case K_TRANSITION_TIMEOUT_MS:
		rc = fm_u64_parse(name, v, 100, 3600000, &n);
		if (!rc)
			cfg->transition_timeout_ms = (uint32_t)n;
		return rc;
	case K_SHM_UIDS:
		return cfg_shm_uids(cfg, v);
	case K_FENCE_TABLE:
		return cfg_set_str(&cfg->fence_table, v);
	}
	return fm_err(-EINVAL, "%s: unknown key", name);
}

void fm_ownerd_cfg_fini(struct fm_ownerd_cfg *cfg)
{
	const char **strs[] = { &cfg->provider, &cfg->device, &cfg->listen,
				&cfg->pmem_path, &cfg->control_path, &cfg->fence_table };

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		free((char *)*strs[i]);
		*strs[i] = NULL;
	}
	explicit_bzero(cfg->key, sizeof(cfg->key));
	cfg->key_len = 0;
}

int fm_ownerd_cfg_set(struct fm_ownerd_cfg *cfg, const char *key, const char *value)
{
	int k = key_find(key);

	if (k < 0)
		return fm_err(-EINVAL, "unknown key '%.40s'", key);
	return cfg_apply(cfg, k, value);
}

/*
 * One line (without its newline, at most CFG_LINE_MAX bytes, no NUL):
 * *key gets the key's index, or -1 for a blank or comment line.  With
 * `given` (a file's lines so far, per key: the line number, 0 none), a key
 * given before is refused before its value is applied.  The message of an
 * error starts with the key; the caller says where.
 */
static int cfg_line(struct fm_ownerd_cfg *cfg, const char *line, const int *given, int *key)
{
	char buf[CFG_LINE_MAX + 1], *k, *v, *eq;

	*key = -1;
	if (strlen(line) > CFG_LINE_MAX)
		return fm_err(-EINVAL, "line of %zu bytes, at most %u", strlen(line),
			      CFG_LINE_MAX);
	strcpy(buf, line);
	/* a comment: '#' first on the line or after a blank */
	for (char *p = buf; *p; p++)
		if (*p == '#' && (p == buf || *(p - 1) == ' ' || *(p - 1) == '\t')) {
			*p = '\0';
			break;
		}
	k = od_trim(buf);
	if (!*k)
		return 0;
	eq = strchr(k, '=');
	if (!eq)
		return fm_err(-EINVAL, "'%.40s': expected key = value", k);
	*eq = '\0';
	k = od_trim(k);
	v = od_trim(eq + 1);
	*key = key_find(k);
	if (*key < 0)
		return fm_err(-EINVAL, "unknown key '%.40s'", k);
	if (given && given[*key])
		return fm_err(-EINVAL, "%s given again (first on line %d)", keys[*key].name,
			      given[*key]);
	return cfg_apply(cfg, *key, v);
}

int fm_ownerd_cfg_parse_line(struct fm_ownerd_cfg *cfg, const char *line)
{
	char buf[CFG_LINE_MAX + 2];
	size_t len = strlen(line);
	int key, rc;

	/* a line as fgets gives it: one trailing newline is no part of it */
	if (len && line[len - 1] == '\n')
		len--;
	if (len > CFG_LINE_MAX)
		return fm_err(-EINVAL, "config: line of %zu bytes, at most %u", len,
			      CFG_LINE_MAX);
	memcpy(buf, line, len);
	buf[len] = '\0';
	if (strchr(buf, '\n'))
		return fm_err(-EINVAL, "config: one line, without a newline inside");
	rc = cfg_line(cfg, buf, NULL, &key);
	return rc ? err_prefixed(rc, "config: ") : 0;
}

int fm_ownerd_cfg_load(struct fm_ownerd_cfg *cfg, const char *path)
{
	int given[K_COUNT]; /* the line each key was given on, 0: not yet */
	char *text, line[CFG_LINE_MAX + 1];
	size_t len, pos = 0;
	int lineno = 0, rc;

	text = malloc(CFG_FILE_MAX);
	if (!text)
		return fm_err(-ENOMEM, "config %s: out of memory", path);
	rc = fm_regular_file_read("config", path, text, CFG_FILE_MAX, &len);
	if (rc)
		goto out;
	memset(given, 0, sizeof(given));
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = (nl ? (size_t)(nl - text) : len) - pos;
		int key;

		lineno++;
		if (memchr(text + pos, '\0', n)) {
			rc = fm_err(-EINVAL, "%s:%d: a NUL byte (not a text file?)", path, lineno);
			goto out;
		}
		if (n > CFG_LINE_MAX) {
			rc = fm_err(-EINVAL, "%s:%d: line of %zu bytes, at most %u", path, lineno,
				    n, CFG_LINE_MAX);
			goto out;
		}
		memcpy(line, text + pos, n);
		line[n] = '\0';
		pos += n + (nl ? 1 : 0);
		rc = cfg_line(cfg, line, given, &key);
		if (rc) {
			rc = err_prefixed(rc, "%s:%d: ", path, lineno);
			goto out;
		}
		if (key >= 0)
			given[key] = lineno;
	}
out:
	free(text);
	return rc;
}
