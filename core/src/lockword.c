/* lockword.c -- checks and classification of grain lock words (see
 * lockword.h for the layout and the CAS protocol).  Pure functions. */
#include <errno.h>
#include <stdio.h>

#include "flashmeta/error.h"
#include "flashmeta/lockword.h"

int fm_lockword_check(uint64_t w)
{
	uint16_t f = fm_lockword_flags(w);

	if (w == FM_LOCKWORD_FREE)
		return 0;
	if (f & ~FM_LOCKWORD_F_KNOWN)
		return fm_err(-EINVAL, "lock word 0x%016llx: unknown flags 0x%x",
			      (unsigned long long)w, f);
	if (!(f & FM_LOCKWORD_F_HELD))
		return fm_err(-EINVAL, "lock word 0x%016llx: not free, not held",
			      (unsigned long long)w);
	if (fm_lockword_client(w) == 0)
		return fm_err(-EINVAL, "lock word 0x%016llx: held by client 0",
			      (unsigned long long)w);
	return 0;
}

enum fm_lockword_release fm_lockword_release_result(uint64_t mine, uint64_t old)
{
	if (old == mine)
		return FM_LOCKWORD_RELEASED;
	if (fm_lockword_same_holder(old, mine) &&
	    (fm_lockword_flags(old) & FM_LOCKWORD_F_HELD) &&
	    (fm_lockword_flags(old) & FM_LOCKWORD_F_WAITERS))
		return FM_LOCKWORD_NOTIFY;
	return FM_LOCKWORD_LOST;
}

const char *fm_lockword_format(uint64_t w, char *buf, size_t len)
{
	uint16_t f = fm_lockword_flags(w);

	if (w == FM_LOCKWORD_FREE)
		snprintf(buf, len, "free");
	else
		snprintf(buf, len, "c=%u e=%u%s%s%s", fm_lockword_client(w),
			 fm_lockword_epoch(w), (f & FM_LOCKWORD_F_HELD) ? " held" : "",
			 (f & FM_LOCKWORD_F_WAITERS) ? " waiters" : "",
			 (f & ~FM_LOCKWORD_F_KNOWN) ? " bad-flags" : "");
	return buf;
}
