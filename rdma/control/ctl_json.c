/* ctl_json.c -- the owner's control answers as JSON (flashmeta/ctl_json.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flashmeta/ctl_json.h"
#include "flashmeta/error.h"

static void json_str(FILE *f, const char *s, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* decimal digits, no leading zero, at most `max` */
static bool is_dec(const char *s, size_t n, uint64_t max)
{
	uint64_t v = 0;

	if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		if (v > (max - (uint64_t)(s[i] - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	return true;
}

/* a JSON number: 0..2^64-1, or a negative one down to -2^63 (a lease
 * left that ran out is "-12": a number like any other lease left) */
static bool is_number(const char *s, size_t n)
{
	if (n > 1 && s[0] == '-')
		return s[1] != '0' && is_dec(s + 1, n - 1, UINT64_C(1) << 63);
	return is_dec(s, n, UINT64_MAX);
}

static void json_val(FILE *f, const char *s, size_t n)
{
	if (is_number(s, n))
		fwrite(s, 1, n, f);
	else
		json_str(f, s, n);
}

/* the words of one line: start and length each */
#define WORDS_MAX 64

static size_t words(const char *line, size_t len, const char **w, size_t *wl)
{
	size_t n = 0, i = 0;

	while (i < len && n < WORDS_MAX) {
		while (i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i == len)
			break;
		w[n] = line + i;
		while (i < len && line[i] != ' ' && line[i] != '\t')
			i++;
		wl[n] = (size_t)(line + i - w[n]);
		n++;
	}
	return n;
}

static void record(FILE *f, const char *line, size_t len, bool first)
{
	const char *w[WORDS_MAX];
	size_t wl[WORDS_MAX], n = words(line, len, w, wl), k = 0;

	if (n == 0)
		return;
	fputs(first ? "{\"record\": " : ", {\"record\": ", f);
	json_str(f, w[0], wl[0]);
	if (n % 2) /* NAME K V ... */
		k = 1;
	for (; k + 1 < n; k += 2) {
		fputs(", ", f);
		json_str(f, w[k], wl[k]);
		fputs(": ", f);
		json_val(f, w[k + 1], wl[k + 1]);
	}
	fputc('}', f);
}

/* ', "error": NAME, "message": "..."' of "error NAME: message" (err:
 * what follows "error ") */
static void error_fields(FILE *f, const char *err, size_t errlen)
{
	const char *colon = memchr(err, ':', errlen);
	size_t nlen = colon ? (size_t)(colon - err) : errlen;
	const char *msg = colon ? colon + 1 : err + errlen;

	while (msg < err + errlen && *msg == ' ')
		msg++;
	fputs(", \"error\": ", f);
	json_str(f, err, nlen);
	fputs(", \"message\": ", f);
	json_str(f, msg, (size_t)(err + errlen - msg));
}

static void print(FILE *f, const char *answer)
{
	const char *p = answer, *err = NULL;
	size_t errlen = 0;
	bool first = true, ok = false;

	fputs("{\"records\": [", f);
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		if (len == 2 && !strncmp(p, "ok", 2))
			ok = true;
		else if (len > 6 && !strncmp(p, "error ", 6)) {
			err = p + 6;
			errlen = len - 6;
		} else if (len) {
			record(f, p, len, first);
			first = false;
		}
		p += len + (nl ? 1 : 0);
	}
	fputs("]", f);
	fprintf(f, ", \"ok\": %s", ok && !err ? "true" : "false");
	if (err)
		error_fields(f, err, errlen);
	fputs("}", f);
}

/* one line (without its newline) as one object */
static void print_line(FILE *f, const char *line, size_t len)
{
	if (len == 2 && !strncmp(line, "ok", 2)) {
		fputs("{\"ok\": true}", f);
	} else if (len > 6 && !strncmp(line, "error ", 6)) {
		fputs("{\"ok\": false", f);
		error_fields(f, line + 6, len - 6);
		fputs("}", f);
	} else {
		record(f, line, len, true);
	}
}

/* what `fn` prints of (s, len), as a malloc'ed string */
static int to_string(char **out, void (*fn)(FILE *, const char *, size_t), const char *s,
		     size_t len)
{
	size_t used = 0;
	FILE *f;

	*out = NULL;
	f = open_memstream(out, &used);
	if (!f)
		return fm_err(-ENOMEM, "control: JSON answer");
	fn(f, s, len);
	if (fclose(f) || !*out) {
		free(*out);
		*out = NULL;
		return fm_err(-ENOMEM, "control: JSON answer");
	}
	return 0;
}

static void print_answer(FILE *f, const char *answer, size_t len)
{
	(void)len;
	print(f, answer);
}

int fm_ctl_json(const char *answer, char **out)
{
	return to_string(out, print_answer, answer, 0);
}

int fm_ctl_json_line(const char *line, char **out)
{
	const char *nl = strchr(line, '\n');
	size_t len = nl ? (size_t)(nl - line) : strlen(line);
	const char *w[WORDS_MAX];
	size_t wl[WORDS_MAX];

	*out = NULL;
	if ((nl && nl[1]) || words(line, len, w, wl) == 0)
		return fm_err(-EINVAL, "control: JSON of a line: not one line with a word");
	return to_string(out, print_line, line, len);
}
