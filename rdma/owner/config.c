/* config.c -- the owner's configuration: "key = value" lines, from a file or
 * from flags (flashmeta-owner), into struct fm_ownerd_cfg. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flashmeta/error.h"
#include "ownerd_priv.h"

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

int od_parse_u64(const char *v, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(v, &end, 0);
	return (errno || end == v || *od_trim(end)) ? -EINVAL : 0;
}

/* Replace a config string (a key given twice, or by file then flag). */
static int cfg_set_str(const char **dst, const char *v)
{
	char *copy = strdup(v);

	if (!copy)
		return fm_err(-ENOMEM, "config: out of memory");
	free((char *)*dst);
	*dst = copy;
	return 0;
}

void fm_ownerd_cfg_fini(struct fm_ownerd_cfg *cfg)
{
	const char **strs[] = { &cfg->provider, &cfg->device, &cfg->listen,
				&cfg->pmem_path, &cfg->control_path };

	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		free((char *)*strs[i]);
		*strs[i] = NULL;
	}
	memset(cfg->key, 0, sizeof(cfg->key));
	cfg->key_len = 0;
}

int fm_ownerd_cfg_parse_line(struct fm_ownerd_cfg *cfg, const char *line)
{
	char buf[1024], *k, *v, *eq;
	uint64_t n, m;
	int rc;

	if (strlen(line) >= sizeof(buf))
		return fm_err(-EINVAL, "config line too long");
	strcpy(buf, line);
	if ((eq = strchr(buf, '#')))
		*eq = '\0';
	k = od_trim(buf);
	if (!*k)
		return 0;
	eq = strchr(k, '=');
	if (!eq)
		return fm_err(-EINVAL, "config: '%s': expected key = value", k);
	*eq = '\0';
	k = od_trim(k);
	v = od_trim(eq + 1);
	if (!strcmp(k, "listen")) {
		return cfg_set_str(&cfg->listen, v);
	} else if (!strcmp(k, "transport") || !strcmp(k, "provider")) {
		if (strcmp(v, "shm") && strcmp(v, "verbs"))
			return fm_err(-EINVAL, "config: transport must be shm or verbs");
		return cfg_set_str(&cfg->provider, v);
	} else if (!strcmp(k, "device")) {
		return cfg_set_str(&cfg->device, v);
	} else if (!strcmp(k, "pmem") || !strcmp(k, "pmem_path")) {
		return cfg_set_str(&cfg->pmem_path, v);
	} else if (!strcmp(k, "control")) {
		return cfg_set_str(&cfg->control_path, v);
	} else if (!strcmp(k, "pool_max_maps")) {
		if (od_parse_u64(v, &n) || n == 0 || n > 65536)
			return fm_err(-EINVAL, "config: pool_max_maps '%s'", v);
		cfg->pool_max_maps = (uint32_t)n;
	} else if (!strcmp(k, "pool_max_grains")) {
		if (od_parse_u64(v, &n) || n == 0)
			return fm_err(-EINVAL, "config: pool_max_grains '%s'", v);
		cfg->pool_max_grains = n;
	} else if (!strcmp(k, "lease_ms")) {
		if (od_parse_u64(v, &n) || n < 10 || n > 600000)
			return fm_err(-EINVAL, "config: lease_ms '%s' (10..600000)", v);
		cfg->lease_ms = (uint32_t)n;
	} else if (!strcmp(k, "clients")) {
		char *dash = strchr(v, '-');

		if (dash) {
			*dash = '\0';
			if (od_parse_u64(v, &n) || od_parse_u64(dash + 1, &m))
				return fm_err(-EINVAL, "config: clients '%s'", v);
		} else if (od_parse_u64(v, &n)) {
			return fm_err(-EINVAL, "config: clients '%s'", v);
		} else {
			m = n;
		}
		if (n < 1 || m < n || m > FM_WIRE_CLIENT_ID_MAX)
			return fm_err(-EINVAL, "config: clients must be within 1..65535");
		cfg->client_first = (uint32_t)n;
		cfg->client_last = (uint32_t)m;
	} else if (!strcmp(k, "key_file")) {
		rc = fm_key_file_read(v, cfg->key, sizeof(cfg->key));
		if (rc < 0)
			return rc;
		cfg->key_len = (size_t)rc;
	} else if (!strcmp(k, "log_level")) {
		if (!strcmp(v, "err") || !strcmp(v, "error"))
			cfg->log_level = FM_LOGLVL_ERR;
		else if (!strcmp(v, "warn"))
			cfg->log_level = FM_LOGLVL_WARN;
		else if (!strcmp(v, "info"))
			cfg->log_level = FM_LOGLVL_INFO;
		else if (!strcmp(v, "debug"))
			cfg->log_level = FM_LOGLVL_DEBUG;
		else
			return fm_err(-EINVAL, "config: log_level '%s'", v);
	} else {
		return fm_err(-EINVAL, "config: unknown key '%s'", k);
	}
	return 0;
}

int fm_ownerd_cfg_load(struct fm_ownerd_cfg *cfg, const char *path)
{
	char line[1024];
	int lineno = 0, rc = 0;
	FILE *f = fopen(path, "re");

	if (!f)
		return fm_err(-errno, "config %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		rc = fm_ownerd_cfg_parse_line(cfg, line);
		if (rc) {
			rc = fm_err(rc, "%s:%d: %s", path, lineno, fm_errormsg());
			break;
		}
	}
	fclose(f);
	return rc;
}
