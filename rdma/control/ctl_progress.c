/* ctl_progress.c -- a mapping's copy progress from the owner's record
 * (flashmeta/ctl_progress.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "flashmeta/ctl_progress.h"
#include "flashmeta/error.h"
#include "flashmeta/input.h"

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

/* the next word of line[*i..end): start and length; false at the end */
static bool next_word(const char *line, size_t end, size_t *i, const char **w, size_t *wl)
{
	while (*i < end && blank(line[*i]))
		(*i)++;
	if (*i == end)
		return false;
	*w = line + *i;
	while (*i < end && !blank(line[*i]))
		(*i)++;
	*wl = (size_t)(line + *i - *w);
	return true;
}

int fm_ctl_record_value(const char *line, const char *key, const char **val, size_t *len)
{
	const char *nl = strchr(line, '\n'), *w;
	size_t end = nl ? (size_t)(nl - line) : strlen(line), i = 0, wl, n = 0, klen = strlen(key);

	/* an odd number of words: the first is the record's name, not a key */
	while (next_word(line, end, &i, &w, &wl))
		n++;
	i = 0;
	if (n % 2)
		(void)next_word(line, end, &i, &w, &wl);
	for (;;) {
		const char *v;
		size_t vl;

		if (!next_word(line, end, &i, &w, &wl) || !next_word(line, end, &i, &v, &vl))
			return -ENOENT;
		if (wl == klen && !memcmp(w, key, klen)) {
			*val = v;
			*len = vl;
			return 0;
		}
	}
}

/* key's value, a decimal in [0, max] */
static int field_u64(const char *line, const char *key, uint64_t max, uint64_t *out)
{
	const char *v;
	size_t len;
	char buf[32], what[48];

	if (fm_ctl_record_value(line, key, &v, &len))
		return fm_err(-EINVAL, "map record: no '%s'", key);
	if (len >= sizeof(buf))
		return fm_err(-EINVAL, "map record: %s: %zu characters", key, len);
	memcpy(buf, v, len);
	buf[len] = 0;
	snprintf(what, sizeof(what), "map record: %s", key);
	return fm_u64_parse(what, buf, 0, max, out) ? -EINVAL : 0;
}

int fm_ctl_progress_parse(const char *line, struct fm_ctl_progress *p)
{
	const char *v;
	size_t len;
	uint64_t eta;
	int rc = 0;

	memset(p, 0, sizeof(*p));
	if (strncmp(line, "map ", 4))
		return fm_err(-EINVAL, "not a map record: '%.40s'", line);
	rc = rc ?: field_u64(line, "map", UINT64_MAX, &p->map_id);
	rc = rc ?: field_u64(line, "generation", UINT64_MAX, &p->generation);
	rc = rc ?: field_u64(line, "grains", UINT64_MAX, &p->grains);
	rc = rc ?: field_u64(line, "split", UINT64_MAX, &p->split);
	rc = rc ?: field_u64(line, "split-pct", 100, &p->split_pct);
	rc = rc ?: field_u64(line, "grain", UINT64_C(1) << 40, &p->grain_bytes);
	rc = rc ?: field_u64(line, "rate", 150, &p->rate);
	rc = rc ?: field_u64(line, "rate-bytes-per-s", UINT64_MAX, &p->rate_bps);
	rc = rc ?: field_u64(line, "copiers", UINT32_MAX, &p->copiers);
	if (rc)
		return rc;
	if (fm_ctl_record_value(line, "eta-s", &v, &len))
		return fm_err(-EINVAL, "map record: no 'eta-s'");
	if (len == 2 && !memcmp(v, "-1", 2)) {
		p->eta_s = -1;
	} else {
		rc = field_u64(line, "eta-s", INT64_MAX, &eta);
		if (rc)
			return rc;
		p->eta_s = (int64_t)eta;
	}
	if (fm_ctl_record_value(line, "state", &v, &len))
		return fm_err(-EINVAL, "map record: no 'state'");
	if (len == 0 || len >= sizeof(p->state) || strspn(v, "abcdefghijklmnopqrstuvwxyz_") < len)
		return fm_err(-EINVAL, "map record: state '%.*s' is no state name",
			      (int)(len < 40 ? len : 40), v);
	memcpy(p->state, v, len);
	if (p->grains == 0 || p->split > p->grains)
		return fm_err(-EINVAL, "map record: split %" PRIu64 " of %" PRIu64 " grains",
			      p->split, p->grains);
	return 0;
}

bool fm_ctl_progress_settled(const struct fm_ctl_progress *p)
{
	return !strcmp(p->state, "idle_or_copied") || !strcmp(p->state, "stopped");
}

int fm_ctl_progress_bar(const struct fm_ctl_progress *p, unsigned width, char *out, size_t cap)
{
	/* cells full: rounded down, so a bar is full only when all is split
	 * (split * width cannot overflow: a mapping has at most 2^45 grains,
	 * 2^57 bytes of 4 KiB, mapping.h; width <= 200) */
	uint64_t full = p->grains ? p->split * width / p->grains : 0;

	if (width > 200 || cap < (size_t)width + 3)
		return fm_err(-EINVAL, "progress bar: width %u in %zu bytes", width, cap);
	out[0] = '[';
	for (unsigned i = 0; i < width; i++)
		out[1 + i] = i < full ? '#' : '.';
	out[width + 1] = ']';
	out[width + 2] = 0;
	return (int)width + 2;
}

const char *fm_ctl_bytes_human(uint64_t n, char *out, size_t cap)
{
	static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)n;
	unsigned u = 0;

	if (n < 1024) {
		snprintf(out, cap, "%" PRIu64 " B", n);
		return out;
	}
	v /= 1024;
	while (v >= 1024 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
		v /= 1024;
		u++;
	}
	snprintf(out, cap, "%.1f %s", v, unit[u]);
	return out;
}

const char *fm_ctl_duration_human(int64_t s, char *out, size_t cap)
{
	if (s < 0)
		snprintf(out, cap, "never");
	else if (s < 60)
		snprintf(out, cap, "%" PRId64 "s", s);
	else if (s < 3600)
		snprintf(out, cap, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(out, cap, "%" PRId64 "h%02" PRId64 "m", s / 3600, s % 3600 / 60);
	else
		snprintf(out, cap, "%" PRId64 "d%02" PRId64 "h", s / 86400, s % 86400 / 3600);
	return out;
}
