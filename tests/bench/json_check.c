/* json_check.c -- does a JSON document parse, and does it hold the fields
 * named?  For the benchmark smoke tests (no JSON library is a dependency
 * of this tree, and a smoke test must not need python).
 *
 *   fm-json-check FILE PATH[:TYPE]...
 *
 * PATH is dot-separated object keys and array indexes ("points.0.split_pct");
 * TYPE, when given, is what the value must be: number (a JSON number, not
 * null), string, object, array, bool.  Exit 0: the document is valid JSON
 * (RFC 8259, one value, nothing after it) and every PATH is there with its
 * TYPE; 1: it is not (each failure on stderr); 2: usage, unreadable file.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_OBJ, J_ARR };

static const char *const type_name[] = { "null", "bool", "number", "string", "object",
					 "array" };

/* every value's path and type, in document order */
struct entry {
	char *path;
	enum jtype type;
};

static struct entry *ents;
static size_t nents, capents;

static const char *src, *p;
static char err[256];

static bool fail(const char *what)
{
	if (!err[0])
		snprintf(err, sizeof(err), "%s at byte %ld", what, (long)(p - src));
	return false;
}

static bool record(const char *path, enum jtype t)
{
	if (nents == capents) {
		size_t nc = capents ? capents * 2 : 256;
		struct entry *n = realloc(ents, nc * sizeof(*n));

		if (!n)
			return fail("out of memory");
		ents = n;
		capents = nc;
	}
	ents[nents].path = strdup(path);
	ents[nents].type = t;
	if (!ents[nents].path)
		return fail("out of memory");
	nents++;
	return true;
}

static void ws(void)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
}

/* a string; its contents (escapes kept as is) into out when out != NULL */
static bool string(char *out, size_t cap)
{
	size_t n = 0;

	if (*p != '"')
		return fail("expected a string");
	p++;
	while (*p != '"') {
		unsigned char c = (unsigned char)*p;

		if (c == '\0')
			return fail("unterminated string");
		if (c < 0x20)
			return fail("control character in a string");
		if (c == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!isxdigit((unsigned char)p[i]))
						return fail("bad \\u escape");
				p += 4;
			} else if (!strchr("\"\\/bfnrt", *p) || !*p) {
				return fail("bad escape");
			}
		}
		if (out && n + 1 < cap)
			out[n++] = *p;
		p++;
	}
	p++;
	if (out)
		out[n] = '\0';
	return true;
}

static bool number(void)
{
	const char *s = p;

	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (isdigit((unsigned char)*p))
		while (isdigit((unsigned char)*p))
			p++;
	else
		return fail("bad number");
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return fail("bad fraction");
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!isdigit((unsigned char)*p))
			return fail("bad exponent");
		while (isdigit((unsigned char)*p))
			p++;
	}
	return p > s;
}

static bool value(char *path, size_t len, int depth);

static bool child_path(char *path, size_t len, const char *key, size_t *keep)
{
	size_t pl = strlen(path);

	*keep = pl;
	if (pl + strlen(key) + 2 > len)
		return fail("path too long");
	if (pl)
		path[pl++] = '.';
	strcpy(path + pl, key);
	return true;
}

static bool object(char *path, size_t len, int depth)
{
	p++; /* { */
	ws();
	if (*p == '}') {
		p++;
		return true;
	}
	for (;;) {
		char key[128];
		size_t keep;

		ws();
		if (!string(key, sizeof(key)))
			return false;
		ws();
		if (*p++ != ':')
			return fail("expected ':'");
		if (!child_path(path, len, key, &keep) || !value(path, len, depth + 1))
			return false;
		path[keep] = '\0';
		ws();
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p == '}') {
			p++;
			return true;
		}
		return fail("expected ',' or '}'");
	}
}

static bool array(char *path, size_t len, int depth)
{
	unsigned i = 0;

	p++; /* [ */
	ws();
	if (*p == ']') {
		p++;
		return true;
	}
	for (;; i++) {
		char key[16];
		size_t keep;

		snprintf(key, sizeof(key), "%u", i);
		if (!child_path(path, len, key, &keep) || !value(path, len, depth + 1))
			return false;
		path[keep] = '\0';
		ws();
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p == ']') {
			p++;
			return true;
		}
		return fail("expected ',' or ']'");
	}
}

static bool value(char *path, size_t len, int depth)
{
	if (depth > 64)
		return fail("nested too deep");
	ws();
	switch (*p) {
	case '{':
		return record(path, J_OBJ) && object(path, len, depth);
	case '[':
		return record(path, J_ARR) && array(path, len, depth);
	case '"':
		return record(path, J_STR) && string(NULL, 0);
	case 't':
		if (strncmp(p, "true", 4))
			return fail("bad literal");
		p += 4;
		return record(path, J_BOOL);
	case 'f':
		if (strncmp(p, "false", 5))
			return fail("bad literal");
		p += 5;
		return record(path, J_BOOL);
	case 'n':
		if (strncmp(p, "null", 4))
			return fail("bad literal");
		p += 4;
		return record(path, J_NULL);
	default:
		return record(path, J_NUM) && number();
	}
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0;

	if (!f)
		return NULL;
	for (;;) {
		size_t k;

		if (n + 4096 + 1 > cap) {
			char *nb;

			cap = cap ? cap * 2 : 65536;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		k = fread(buf + n, 1, 4096, f);
		n += k;
		if (k < 4096)
			break;
	}
	fclose(f);
	buf[n] = '\0';
	if (strlen(buf) != n) { /* a NUL inside */
		free(buf);
		errno = EINVAL;
		return NULL;
	}
	return buf;
}

int main(int argc, char **argv)
{
	char path[1024] = "";
	int bad = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: fm-json-check FILE [PATH[:TYPE]]...\n");
		return 2;
	}
	src = p = slurp(argv[1]);
	if (!src) {
		fprintf(stderr, "fm-json-check: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	if (!value(path, sizeof(path), 0) || (ws(), *p != '\0')) {
		fail("trailing bytes after the document");
		fprintf(stderr, "fm-json-check: %s: not JSON: %s\n", argv[1], err);
		return 1;
	}
	for (int i = 2; i < argc; i++) {
		char want[256], *colon;
		const char *type = NULL;
		size_t k;

		snprintf(want, sizeof(want), "%s", argv[i]);
		colon = strchr(want, ':');
		if (colon) {
			*colon = '\0';
			type = colon + 1;
		}
		for (k = 0; k < nents; k++)
			if (!strcmp(ents[k].path, want))
				break;
		if (k == nents) {
			fprintf(stderr, "fm-json-check: %s: no field %s\n", argv[1], want);
			bad = 1;
		} else if (type && strcmp(type, type_name[ents[k].type])) {
			fprintf(stderr, "fm-json-check: %s: %s is %s, want %s\n", argv[1], want,
				type_name[ents[k].type], type);
			bad = 1;
		}
	}
	printf("fm-json-check: %s: valid JSON, %zu values, %d field%s %s\n", argv[1], nents,
	       argc - 2, argc == 3 ? "" : "s", bad ? "NOT all there" : "all there");
	return bad;
}
