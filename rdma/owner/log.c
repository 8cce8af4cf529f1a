/* log.c -- the owner's log: one line per event on stderr, with the pid, the
 * wall-clock time and the level; messages above the configured level are
 * dropped. */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "ownerd_priv.h"

static enum fm_loglvl g_level = FM_LOGLVL_INFO;

void od_log(enum fm_loglvl lv, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	struct timespec ts;
	va_list ap;

	if (lv > g_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	fprintf(stderr, "flashmeta-owner[%d] %ld.%03ld %s: ", (int)getpid(),
		(long)ts.tv_sec, ts.tv_nsec / 1000000, names[lv]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void od_log_level_set(enum fm_loglvl lv)
{
	g_level = lv;
}
