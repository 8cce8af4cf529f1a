/* watch.c -- flashmeta --watch: copy progress, asked again every interval.
 *
 * Each update is one new control connection with one command ("status"
 * for status and maps, "map-show ID"), read whole, then drawn; the next
 * update is due one interval after this one was (CLOCK_MONOTONIC,
 * absolute), or at once when the owner took longer than the interval to
 * answer -- never two at once to catch up.  A query waits at most
 * WATCH_ANSWER_MS for the owner: an owner that stopped answering is gone.
 *
 * Three outputs (watch_cfg.json, isatty(stdout)):
 *   terminal  a header and one line per mapping (a bar of split grains,
 *             percent, grains, the rate and its bytes/s, the speed seen
 *             since the last update, ETA at the rate, copiers, state),
 *             redrawn in place: cursor up over the last drawing, clear to
 *             the end of the screen (plain ANSI: ESC[nA ESC[J), every
 *             line cut to the terminal's width and no more mappings than
 *             its rows hold, so that the count of lines to go back over
 *             holds (the rest are counted in one line)
 *   not one   one record line per mapping per update, "progress update N
 *             elapsed-ms T map ID state S ..." (ownerd.h's record form:
 *             grep it, or read it with fm_ctl_record_value), and an
 *             "end reason R ..." line when it ends
 *   --json    one JSON object per update, {"records": [{"record":
 *             "watch", "update": N, ...}, {"record": "progress", ...}],
 *             "ok": true} (the same records, ctl_json.h), the end as such
 *             an object with an "end" record; a failure as the owner's
 *             error object, {"records": [], "ok": false, "error", ...}
 *
 * The speed seen ("split-bytes-per-s") is the grains split between two
 * updates of the same mapping and generation, times the grain size, over
 * the time between the two answers: background copy and copy-on-write
 * together.  It is left out of the first update of a mapping and after a
 * restart (a new generation starts again from nothing split).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "flashmeta/ctl.h"
#include "flashmeta/ctl_json.h"
#include "flashmeta/ctl_progress.h"
#include "flashmeta/error.h"
#include "watch.h"

#define WATCH_ANSWER_MS 10000 /* an owner silent this long is gone */
#define WATCH_BAR 24          /* cells of the bar on a terminal */

static volatile sig_atomic_t w_stop;

static void on_stop(int sig)
{
	(void)sig;
	w_stop = 1;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* what the last update saw of a mapping: the speed's other end */
struct seen {
	uint64_t map_id, generation, split, at_ms;
};

struct watch {
	const struct watch_cfg *cfg;
	char cmd[64];              /* the control line, with its newline */
	char what[64];             /* the same, for people */
	char *answer;             /* FM_CTL_ANSWER_MAX + 1 bytes */
	bool tty;
	unsigned drawn;           /* lines of the last drawing (terminal) */
	uint64_t update, t0;
	struct seen *seen;        /* the last update's mappings */
	size_t nseen, capseen;
	bool map_seen;            /* one_map: it was there once */
	struct fm_ctl_progress last; /* one_map: its last state */
};

/* the speed of p since the last update, or false if there is none */
static bool speed(const struct watch *w, const struct fm_ctl_progress *p, uint64_t now,
		  uint64_t *bps)
{
	for (size_t i = 0; i < w->nseen; i++) {
		const struct seen *s = &w->seen[i];

		if (s->map_id != p->map_id)
			continue;
		if (s->generation != p->generation || p->split < s->split || now <= s->at_ms)
			return false;
		{
			/* bytes < 2^57 (mapping.h): times 1000 could wrap */
			uint64_t bytes = (p->split - s->split) * p->grain_bytes, ms = now - s->at_ms;

			*bps = bytes < UINT64_MAX / 1000 ? bytes * 1000 / ms : bytes / ms * 1000;
		}
		return true;
	}
	return false;
}

/* "progress map ID ..." (without update and elapsed: the caller's) */
static int progress_record(char *out, size_t cap, const struct fm_ctl_progress *p,
			   bool has_speed, uint64_t bps)
{
	int n = snprintf(out, cap, "map %" PRIu64 " state %s generation %" PRIu64 " split %"
			 PRIu64 " grains %" PRIu64 " split-pct %" PRIu64 " grain %" PRIu64
			 " rate %" PRIu64 " rate-bytes-per-s %" PRIu64 " eta-s %" PRId64
			 " copiers %" PRIu64, p->map_id, p->state, p->generation, p->split,
			 p->grains, p->split_pct, p->grain_bytes, p->rate, p->rate_bps,
			 p->eta_s, p->copiers);

	if (has_speed && n > 0 && (size_t)n < cap)
		n += snprintf(out + n, cap - (size_t)n, " split-bytes-per-s %" PRIu64, bps);
	return n;
}

/* one mapping as a person reads it: two lines, each cut to `cols`;
 * returns the lines printed */
static unsigned human_lines(const struct fm_ctl_progress *p, bool has_speed, uint64_t bps,
			    unsigned cols)
{
	char bar[WATCH_BAR + 3], rate[24], now[24], eta[24], line[512];

	(void)fm_ctl_progress_bar(p, WATCH_BAR, bar, sizeof(bar));
	fm_ctl_bytes_human(p->rate_bps, rate, sizeof(rate));
	if (has_speed)
		fm_ctl_bytes_human(bps, now, sizeof(now));
	if (p->eta_s == 0 && strcmp(p->state, "copying"))
		snprintf(eta, sizeof(eta), "-");
	else
		fm_ctl_duration_human(p->eta_s, eta, sizeof(eta));
	snprintf(line, sizeof(line), "map %-4" PRIu64 " %-14s %s %3" PRIu64 "%%  %" PRIu64 "/%"
		 PRIu64 " grains", p->map_id, p->state, bar, p->split_pct, p->split, p->grains);
	printf("%.*s\n", (int)cols - 1, line);
	snprintf(line, sizeof(line), "         rate %" PRIu64 " = %s%s  now %s%s  eta %s  copiers %"
		 PRIu64, p->rate, p->rate ? rate : "none", p->rate ? "/s" : "",
		 has_speed ? now : "-", has_speed ? "/s" : "", eta, p->copiers);
	printf("%.*s\n", (int)cols - 1, line);
	return 2;
}

/* the terminal's columns and rows (80x24 if it does not say) */
static void term_size(unsigned *cols, unsigned *rows)
{
	struct winsize ws;

	*cols = 80;
	*rows = 24;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20 && ws.ws_row >= 4) {
		*cols = ws.ws_col;
		*rows = ws.ws_row;
	}
}

/* JSON of a text answer (records then "ok"), one line on stdout */
static void json_out(const char *text)
{
	char *j = NULL;

	if (fm_ctl_json(text, &j) == 0)
		puts(j);
	else
		fprintf(stderr, "flashmeta --watch: %s\n", fm_errormsg());
	free(j);
}

/* the mappings of the owner's answer: parsed into *ps (malloc'ed), their
 * count returned; -EPROTO if a map record is malformed, -ENOMEM */
static int parse_maps(const char *answer, struct fm_ctl_progress **ps)
{
	size_t n = 0, cap = 0;
	const char *l = answer;
	struct fm_ctl_progress *v = NULL;

	*ps = NULL;
	for (; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
		if (strncmp(l, "map ", 4))
			continue;
		if (n == cap) {
			struct fm_ctl_progress *nv;

			cap = cap ? 2 * cap : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				return fm_err(-ENOMEM, "watch: %zu mappings", cap);
			}
			v = nv;
		}
		if (fm_ctl_progress_parse(l, &v[n])) {
			int rc = fm_err(-EPROTO, "the owner's answer: %s", fm_errormsg());

			free(v);
			return rc;
		}
		n++;
	}
	*ps = v;
	return (int)n;
}

/* draw one update of n mappings, answered at `now`; remember them for
 * the next speed */
static int draw(struct watch *w, const struct fm_ctl_progress *ps, size_t n, uint64_t now)
{
	uint64_t el = now - w->t0;
	char rec[512];
	unsigned cols = 0, rows = 0;
	size_t fit = n; /* terminal: mappings drawn (all of them fit on the screen) */

	if (w->tty) {
		char tbuf[16];
		time_t t = time(NULL);
		struct tm tm;

		term_size(&cols, &rows);
		/* cursor up works within the screen only: a drawing taller than
		 * it could not be drawn over; 2 lines a mapping, 2 for the rest */
		if (fit > (rows - 2) / 2)
			fit = (rows - 2) / 2;
		if (w->drawn)
			printf("\033[%uA\r\033[J", w->drawn);
		strftime(tbuf, sizeof(tbuf), "%H:%M:%S", localtime_r(&t, &tm));
		snprintf(rec, sizeof(rec), "flashmeta --watch: %s every %u s, update %" PRIu64
			 " at %s (Ctrl-C ends)", w->what, w->cfg->interval_s, w->update, tbuf);
		printf("%.*s\n", (int)cols - 1, rec);
		w->drawn = 1;
		if (n == 0) {
			printf("no mappings\n");
			w->drawn++;
		}
	}
	if (w->cfg->json) {
		size_t cap = 128 + n * sizeof(rec), used;
		char *text = malloc(cap);

		if (!text)
			return fm_err(-ENOMEM, "watch: an update of %zu mappings", n);
		used = (size_t)snprintf(text, cap, "watch update %" PRIu64 " elapsed-ms %" PRIu64
					" mappings %zu\n", w->update, el, n);
		for (size_t i = 0; i < n; i++) {
			uint64_t bps = 0;
			bool hs = speed(w, &ps[i], now, &bps);

			progress_record(rec, sizeof(rec), &ps[i], hs, bps);
			used += (size_t)snprintf(text + used, cap - used, "progress %s\n", rec);
		}
		snprintf(text + used, cap - used, "ok\n");
		json_out(text);
		free(text);
	} else {
		for (size_t i = 0; i < n; i++) {
			uint64_t bps = 0;
			bool hs = speed(w, &ps[i], now, &bps);

			if (w->tty) {
				if (i < fit)
					w->drawn += human_lines(&ps[i], hs, bps, cols);
			} else {
				progress_record(rec, sizeof(rec), &ps[i], hs, bps);
				printf("progress update %" PRIu64 " elapsed-ms %" PRIu64 " %s\n",
				       w->update, el, rec);
			}
		}
		if (w->tty && fit < n) {
			printf("... and %zu more mappings (a taller terminal, or map-show ID)\n",
			       n - fit);
			w->drawn++;
		}
	}
	fflush(stdout);
	/* the next speed's other end */
	if (n > w->capseen) {
		struct seen *ns = realloc(w->seen, n * sizeof(*ns));

		if (!ns)
			return fm_err(-ENOMEM, "watch: %zu mappings", n);
		w->seen = ns;
		w->capseen = n;
	}
	for (size_t i = 0; i < n; i++)
		w->seen[i] = (struct seen){ ps[i].map_id, ps[i].generation, ps[i].split, now };
	w->nseen = n;
	return 0;
}

/* the end: reason (idle_or_copied, stopped, deleted, interrupted) */
static int end(struct watch *w, const char *reason)
{
	char line[160];

	if (w->cfg->one_map)
		snprintf(line, sizeof(line), "end reason %s map %" PRIu64 " updates %" PRIu64,
			 reason, w->cfg->map_id, w->update);
	else
		snprintf(line, sizeof(line), "end reason %s updates %" PRIu64, reason, w->update);
	if (w->cfg->json) {
		char text[200];

		snprintf(text, sizeof(text), "%s\nok\n", line);
		json_out(text);
	} else if (w->tty) {
		if (!strcmp(reason, "interrupted"))
			printf("watch ended (Ctrl-C) after %" PRIu64 " updates\n", w->update);
		else
			printf("map %" PRIu64 " is %s%s: watch ended after %" PRIu64 " updates\n",
			       w->cfg->map_id, reason,
			       !strcmp(reason, "idle_or_copied") ? " (copy complete, or none)" : "",
			       w->update);
	} else {
		printf("%s\n", line);
	}
	fflush(stdout);
	return 0;
}

/* a failure: stderr, and with --json the error object (the errno's name
 * and msg; owner_line instead: the owner's own "error NAME: message");
 * exit status 1 */
static int fail(struct watch *w, int rc, const char *msg, const char *owner_line)
{
	fprintf(stderr, "flashmeta --watch: %s\n", msg);
	if (w->cfg->json) {
		char text[700];

		if (owner_line)
			snprintf(text, sizeof(text), "%s\n", owner_line);
		else
			snprintf(text, sizeof(text), "error %s: %s\n",
				 strerrorname_np(-rc) ? strerrorname_np(-rc) : "EIO", msg);
		json_out(text);
	}
	fflush(stdout);
	return 1;
}

/* the last line of the owner's error answer, without its newline */
static const char *owner_error(char *answer)
{
	char *e = strstr(answer, "error ");
	char *nl;

	if (!e)
		return "error (no reason given)";
	nl = strchr(e, '\n');
	if (nl)
		*nl = 0;
	return e;
}

/* one update: query, draw; 1 when the watch ends well (said so), 0 to go
 * on, < 0 a failure (said so, *status set) */
static int step(struct watch *w, int *status)
{
	struct fm_ctl_progress *ps = NULL;
	char msg[600];
	uint64_t now;
	int rc, n;

	rc = fm_ownerd_ctl(w->cfg->control, w->cmd, w->answer, FM_CTL_ANSWER_MAX + 1,
			   WATCH_ANSWER_MS);
	if (w_stop)
		return end(w, "interrupted"), 1;
	now = mono_ms();
	if (rc == -EREMOTEIO) {
		const char *e = owner_error(w->answer);

		if (w->cfg->one_map && w->map_seen && !strncmp(e, "error ENOENT", 12))
			return end(w, "deleted"), 1;
		snprintf(msg, sizeof(msg), "the owner refused '%s': %s", w->what, e);
		*status = fail(w, -EREMOTEIO, msg, e);
		return -1;
	}
	if (rc) {
		snprintf(msg, sizeof(msg), "the owner is gone (%s)", fm_errormsg());
		*status = fail(w, rc, msg, NULL);
		return -1;
	}
	n = parse_maps(w->answer, &ps);
	if (n < 0 || (w->cfg->one_map && (n != 1 || ps[0].map_id != w->cfg->map_id))) {
		snprintf(msg, sizeof(msg), "%s", n < 0 ? fm_errormsg() :
			 "the owner's map-show answer is not one record of the mapping");
		free(ps);
		*status = fail(w, n < 0 ? n : -EPROTO, msg, NULL);
		return -1;
	}
	w->update++;
	rc = draw(w, ps, (size_t)n, now);
	if (rc) {
		free(ps);
		*status = fail(w, rc, fm_errormsg(), NULL);
		return -1;
	}
	if (w->cfg->one_map) {
		w->map_seen = true;
		w->last = ps[0];
		if (fm_ctl_progress_settled(&ps[0])) {
			char reason[sizeof(ps[0].state)];

			memcpy(reason, ps[0].state, sizeof(reason));
			free(ps);
			return end(w, reason), 1;
		}
	}
	free(ps);
	return 0;
}

/* sleep until `due` (CLOCK_MONOTONIC ms) or a stop signal */
static void sleep_until(uint64_t due)
{
	struct timespec ts = { .tv_sec = (time_t)(due / 1000),
			       .tv_nsec = (long)(due % 1000) * 1000000 };

	while (!w_stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

int watch_run(const struct watch_cfg *cfg)
{
	struct sigaction sa = { .sa_handler = on_stop }; /* no SA_RESTART: poll returns */
	struct watch w = { .cfg = cfg };
	uint64_t due;
	int status = 0;

	if (cfg->one_map)
		snprintf(w.cmd, sizeof(w.cmd), "map-show %" PRIu64 "\n", cfg->map_id);
	else
		snprintf(w.cmd, sizeof(w.cmd), "status\n");
	w.answer = malloc(FM_CTL_ANSWER_MAX + 1);
	if (!w.answer) {
		fprintf(stderr, "flashmeta --watch: out of memory\n");
		return 1;
	}
	w.tty = !cfg->json && isatty(STDOUT_FILENO);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	w.t0 = due = mono_ms();
	snprintf(w.what, sizeof(w.what), "%.*s", (int)strcspn(w.cmd, "\n"), w.cmd);
	for (;;) {
		int rc = step(&w, &status);

		if (rc)
			break;
		due += (uint64_t)cfg->interval_s * 1000;
		if (due < mono_ms())
			due = mono_ms(); /* the owner was slow: no burst to catch up */
		sleep_until(due);
		if (w_stop) {
			end(&w, "interrupted");
			break;
		}
	}
	free(w.answer);
	free(w.seen);
	return status;
}
