/* ctl_reply.c -- how an answer reaches a control connection: each line
 * sent as it is printed, or, for a "json CMD", collected until the answer
 * is complete and then sent as one JSON line (flashmeta/ctl_json.h)
 * followed by the text's own last line, so the "ok"/"error" framing stays
 * the same.  The loop is single-threaded: one answer is collected at a
 * time.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "flashmeta/ctl_json.h"
#include "flashmeta/error.h"
#include "ownerd_priv.h"

/* "json CMD": the text answer is collected here (one command at a time:
 * the loop is single-threaded) and sent as one JSON line when complete */
static struct {
	int fd;            /* the connection being collected for, or -1 */
	char *buf;
	size_t len, cap;
	bool oom;
} jcap = { .fd = -1 };

static void jcap_add(const char *p, size_t n)
{
	if (jcap.len + n + 1 > jcap.cap) {
		size_t nc = (jcap.len + n + 1) * 2;
		char *nb = realloc(jcap.buf, nc);

		if (!nb) {
			jcap.oom = true;
			return;
		}
		jcap.buf = nb;
		jcap.cap = nc;
	}
	memcpy(jcap.buf + jcap.len, p, n);
	jcap.len += n;
	jcap.buf[jcap.len] = '\0';
}

void od_ctl_printf(int fd, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	if (fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 1)
		n = (int)sizeof(buf) - 1;
	if (fd == jcap.fd)
		jcap_add(buf, (size_t)n);
	else
		(void)!send(fd, buf, (size_t)n, MSG_NOSIGNAL);
}

/* collect what is printed to fd from now on, after `so_far` (may be NULL) */
void od_ctl_json_begin(int fd, const char *so_far)
{
	jcap.fd = fd;
	jcap.len = 0;
	jcap.oom = false;
	jcap_add("", 0);
	if (so_far)
		jcap_add(so_far, strlen(so_far));
}

/* stop collecting; the text so far (malloc'ed, may be NULL on OOM) */
char *od_ctl_json_take(void)
{
	char *t = jcap.oom ? NULL : strdup(jcap.buf ? jcap.buf : "");

	jcap.fd = -1;
	jcap.len = 0;
	return t;
}

/* stop collecting: the whole answer, as a JSON line, then the text's own
 * last line ("ok" / "error ...") so the framing stays the same */
void od_ctl_json_send(int fd)
{
	char *text = od_ctl_json_take(), *json = NULL, *last;
	size_t n;

	if (!text || fm_ctl_json(text, &json)) {
		od_ctl_printf(fd, "error ENOMEM: the JSON answer\n");
		free(text);
		return;
	}
	od_ctl_printf(fd, "%s\n", json);
	n = strlen(text);
	while (n && text[n - 1] == '\n')
		text[--n] = '\0';
	last = strrchr(text, '\n');
	last = last ? last + 1 : text;
	/* (a long error message is cut by ctl_printf's buffer: the JSON
	 * line above has it whole) */
	od_ctl_printf(fd, "%s\n", *last ? last : "ok");
	free(json);
	free(text);
}

void od_ctl_result(int fd, int rc)
{
	if (rc < 0)
		od_ctl_printf(fd, "error %s: %s\n", strerrorname_np(-rc) ? strerrorname_np(-rc) : "?",
			   fm_errormsg());
	else
		od_ctl_printf(fd, "ok\n");
}
