/* mapping.c -- a FlashCopy mapping's state machine.
 *
 * Design: the legal transitions are one table indexed [state][event]; a
 * zero entry means "refused".  Next states are stored +1 so that the
 * table's zero initialiser is the refusal and IDLE_OR_COPIED (value 0)
 * stays expressible.  The table is the header's table, row for row:
 *
 *   IDLE_OR_COPIED --PREPARE--------> PREPARING
 *   STOPPED        --PREPARE--------> PREPARING
 *   PREPARING      --PREPARE_DONE---> PREPARED
 *   PREPARING      --STOP-----------> STOPPED
 *   PREPARED       --START----------> COPYING        generation++
 *   PREPARED       --STOP-----------> STOPPED
 *   COPYING        --COPY_COMPLETE--> IDLE_OR_COPIED
 *   COPYING        --STOP-----------> STOPPING
 *   STOPPING       --STOP_DONE------> STOPPED
 *
 * fm_mapping_apply() computes everything first and writes `m` last, so a
 * refused event leaves the mapping untouched.  The mapping itself is a
 * plain value: whoever shares one serializes access to it.
 */
#include <errno.h>
#include <stddef.h>

#include "flashmeta/error.h"
#include "flashmeta/mapping.h"

#define NEXT(s) ((unsigned char)((s) + 1))

static const unsigned char fm_map_table[FM_MAP_STATE_COUNT][FM_MAP_EV_COUNT] = {
	[FM_MAP_IDLE_OR_COPIED] = {
		[FM_MAP_EV_PREPARE] = NEXT(FM_MAP_PREPARING),
	},
	[FM_MAP_STOPPED] = {
		[FM_MAP_EV_PREPARE] = NEXT(FM_MAP_PREPARING),
	},
	[FM_MAP_PREPARING] = {
		[FM_MAP_EV_PREPARE_DONE] = NEXT(FM_MAP_PREPARED),
		[FM_MAP_EV_STOP] = NEXT(FM_MAP_STOPPED),
	},
	[FM_MAP_PREPARED] = {
		[FM_MAP_EV_START] = NEXT(FM_MAP_COPYING),
		[FM_MAP_EV_STOP] = NEXT(FM_MAP_STOPPED),
	},
	[FM_MAP_COPYING] = {
		[FM_MAP_EV_COPY_COMPLETE] = NEXT(FM_MAP_IDLE_OR_COPIED),
		[FM_MAP_EV_STOP] = NEXT(FM_MAP_STOPPING),
	},
	[FM_MAP_STOPPING] = {
		[FM_MAP_EV_STOP_DONE] = NEXT(FM_MAP_STOPPED),
	},
};

static const char *const fm_map_state_names[FM_MAP_STATE_COUNT] = {
	[FM_MAP_IDLE_OR_COPIED] = "idle_or_copied",
	[FM_MAP_PREPARING] = "preparing",
	[FM_MAP_PREPARED] = "prepared",
	[FM_MAP_COPYING] = "copying",
	[FM_MAP_STOPPING] = "stopping",
	[FM_MAP_STOPPED] = "stopped",
};

static const char *const fm_map_event_names[FM_MAP_EV_COUNT] = {
	[FM_MAP_EV_PREPARE] = "prepare",
	[FM_MAP_EV_PREPARE_DONE] = "prepare_done",
	[FM_MAP_EV_START] = "start",
	[FM_MAP_EV_COPY_COMPLETE] = "copy_complete",
	[FM_MAP_EV_STOP] = "stop",
	[FM_MAP_EV_STOP_DONE] = "stop_done",
};

/* Enums may be signed: compare as unsigned so negatives are out of range. */
static int state_ok(enum fm_map_state s)
{
	return (unsigned int)s < FM_MAP_STATE_COUNT;
}

static int event_ok(enum fm_map_event e)
{
	return (unsigned int)e < FM_MAP_EV_COUNT;
}

const char *fm_map_state_name(enum fm_map_state s)
{
	return state_ok(s) ? fm_map_state_names[s] : "?";
}

const char *fm_map_event_name(enum fm_map_event e)
{
	return event_ok(e) ? fm_map_event_names[e] : "?";
}

int fm_map_next_state(enum fm_map_state s, enum fm_map_event ev)
{
	unsigned char next;

	if (!state_ok(s))
		return fm_err(-EINVAL, "mapping: state %d out of range", (int)s);
	if (!event_ok(ev))
		return fm_err(-EINVAL, "mapping: event %d out of range", (int)ev);
	next = fm_map_table[s][ev];
	if (!next)
		return fm_err(-EPERM, "mapping: event %s is not allowed in state %s",
			      fm_map_event_names[ev], fm_map_state_names[s]);
	return next - 1;
}

int fm_mapping_init(struct fm_mapping *m, uint64_t id, uint64_t source_vol,
		    uint64_t target_vol, uint64_t volume_size, uint64_t grain_size)
{
	struct fm_geom geom;
	int ret;

	if (!m)
		return fm_err(-EINVAL, "mapping: NULL mapping");
	if (source_vol == target_vol)
		return fm_err(-EINVAL,
			      "mapping %llu: source and target are the same volume %llu",
			      (unsigned long long)id, (unsigned long long)source_vol);
	ret = fm_geom_init(&geom, volume_size, grain_size);
	if (ret)
		return ret; /* fm_geom_init's message says which rule */

	*m = (struct fm_mapping){
		.id = id,
		.source_vol = source_vol,
		.target_vol = target_vol,
		.geom = geom,
		.generation = 0,
		.copy_rate = 0,
		.state = FM_MAP_IDLE_OR_COPIED,
	};
	return 0;
}

int fm_mapping_apply(struct fm_mapping *m, enum fm_map_event ev)
{
	uint64_t generation;
	int next;

	if (!m)
		return fm_err(-EINVAL, "mapping: NULL mapping");
	next = fm_map_next_state(m->state, ev);
	if (next < 0)
		return next;

	generation = m->generation;
	if (ev == FM_MAP_EV_START) {
		/* A wrapped generation could match confirmations cached for
		 * generation 0; refuse instead (2^64 triggers: never in practice). */
		if (generation == UINT64_MAX)
			return fm_err(-EOVERFLOW, "mapping %llu: generation exhausted",
				      (unsigned long long)m->id);
		generation++;
	}

	/* Commit point: nothing above wrote to m. */
	m->generation = generation;
	m->state = (enum fm_map_state)next;
	return 0;
}

int fm_mapping_reverse(const struct fm_mapping *m, struct fm_mapping *out)
{
	struct fm_mapping r;

	if (!m || !out)
		return fm_err(-EINVAL, "mapping: NULL mapping");
	switch (m->state) {
	case FM_MAP_COPYING:
		break;
	case FM_MAP_IDLE_OR_COPIED:
		if (m->generation == 0)
			return fm_err(-EPERM, "mapping %llu was never started: its target holds "
				      "no image to restore", (unsigned long long)m->id);
		break;
	case FM_MAP_PREPARING:
	case FM_MAP_PREPARED:
		return fm_err(-EPERM, "mapping %llu is %s: a trigger is being prepared; start "
			      "or stop it before a restore", (unsigned long long)m->id,
			      fm_map_state_name(m->state));
	default:
		return fm_err(-EPERM, "mapping %llu is %s: its target is no point-in-time "
			      "image, there is nothing to restore", (unsigned long long)m->id,
			      fm_map_state_name(m->state));
	}
	if (m->generation == UINT64_MAX)
		return fm_err(-EOVERFLOW, "mapping %llu: generation exhausted",
			      (unsigned long long)m->id);
	r = *m;
	r.source_vol = m->target_vol;
	r.target_vol = m->source_vol;
	r.generation = m->generation + 1;
	r.state = FM_MAP_COPYING;
	*out = r;
	return 0;
}

int fm_mapping_admit(const struct fm_mapping *v, size_t n, const struct fm_mapping *m)
{
	unsigned per_source = 0;
	size_t i;

	if (!m || (n && !v))
		return fm_err(-EINVAL, "mapping: NULL argument");
	/* one pass per rule, so the first rule broken is the one reported
	 * whatever the order of v */
	for (i = 0; i < n; i++) {
		if (v[i].id == m->id)
			return fm_err(-EEXIST, "map %llu exists", (unsigned long long)m->id);
		if (v[i].source_vol == m->source_vol && v[i].target_vol == m->target_vol)
			return fm_err(-EEXIST, "map %llu already copies volume %llu to volume "
				      "%llu (duplicate source/target pair)",
				      (unsigned long long)v[i].id,
				      (unsigned long long)m->source_vol,
				      (unsigned long long)m->target_vol);
	}
	for (i = 0; i < n; i++) {
		if (v[i].source_vol == m->target_vol)
			return fm_err(-EOPNOTSUPP, "target volume %llu is the source of map %llu: "
				      "cascades are not supported",
				      (unsigned long long)m->target_vol,
				      (unsigned long long)v[i].id);
		if (v[i].target_vol == m->source_vol)
			return fm_err(-EOPNOTSUPP, "source volume %llu is the target of map %llu: "
				      "cascades are not supported",
				      (unsigned long long)m->source_vol,
				      (unsigned long long)v[i].id);
	}
	for (i = 0; i < n; i++)
		if (v[i].target_vol == m->target_vol)
			return fm_err(-EADDRINUSE, "target volume %llu is already the target of "
				      "map %llu (a volume is the target of one mapping at most)",
				      (unsigned long long)m->target_vol,
				      (unsigned long long)v[i].id);
	for (i = 0; i < n; i++)
		per_source += v[i].source_vol == m->source_vol;
	if (per_source >= FM_MAPS_PER_SOURCE_MAX)
		return fm_err(-EMLINK, "source volume %llu has %u mappings, the most one volume "
			      "may have", (unsigned long long)m->source_vol, per_source);
	return 0;
}
