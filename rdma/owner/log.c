/* log.c -- the owner's log: one line per event on stderr; messages above
 * the configured level are dropped.
 *
 * Two forms of a line, chosen once per process:
 *
 *   flashmeta-owner[PID] 2026-11-29T01:23:45.678Z LEVEL: message
 *       the wall-clock time in ISO 8601, UTC, milliseconds
 *   <N>LEVEL: message
 *       when stderr is the systemd journal's stream (JOURNAL_STREAM names
 *       stderr's device and inode, systemd.exec(5)): N is the syslog
 *       priority (3 err, 4 warning, 6 info, 7 debug), which journald takes
 *       as the line's level and strips; the journal keeps time and pid
 *
 * Each line is formatted in one buffer and written with one write(2), so
 * lines from several threads never interleave.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ownerd_priv.h"

/* longer lines are cut, ending in "..." */
#define LOG_LINE_MAX 2048

static enum fm_loglvl g_level = FM_LOGLVL_INFO;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static bool g_journal; /* written once under g_once, then only read */

static void journal_detect(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char end;

	/* "DEV:INO", both decimal; anything else is not the journal */
	g_journal = js && sscanf(js, "%llu:%llu%c", &dev, &ino, &end) == 2 &&
		    fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
		    (unsigned long long)st.st_ino == ino;
}

bool fm_ownerd_log_is_journal(void)
{
	pthread_once(&g_once, journal_detect);
	return g_journal;
}

void od_log(enum fm_loglvl lv, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };
	static const int prio[] = { 3, 4, 6, 7 }; /* LOG_ERR .. LOG_DEBUG */
	char line[LOG_LINE_MAX];
	size_t used;
	va_list ap;
	int n;

	if (lv > g_level)
		return;
	if (fm_ownerd_log_is_journal()) {
		n = snprintf(line, sizeof(line), "<%d>%s: ", prio[lv], names[lv]);
	} else {
		struct timespec ts;
		struct tm tm;
		char when[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		n = snprintf(line, sizeof(line), "flashmeta-owner[%d] %s.%03ldZ %s: ",
			     (int)getpid(), when, ts.tv_nsec / 1000000, names[lv]);
	}
	used = (size_t)n;
	va_start(ap, fmt);
	n = vsnprintf(line + used, sizeof(line) - used - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(line) - used - 1) {
		used = sizeof(line) - 1;
		memcpy(line + used - 3, "...", 3);
	} else {
		used += (size_t)n;
	}
	line[used++] = '\n';
	(void)!write(STDERR_FILENO, line, used);
}

void od_log_level_set(enum fm_loglvl lv)
{
	g_level = lv;
}
