/* ctl_json.h -- the owner's control answers as JSON.
 *
 * A text answer is records, one per line ("NAME K V K V..." or "K V K
 * V...", ownerd.h), then "ok" or "error ERRNO-NAME: message".  As JSON,
 * on one line:
 *   {"records": [{"record": NAME, K: V, ...}, ...], "ok": true}
 *   {"records": [...], "ok": false, "error": "ENOENT", "message": "..."}
 * A value of decimal digits (no leading zero) that fits in 64 bits, or
 * one with a '-' down to -2^63, is a JSON number; every other value a
 * string (escaped).  The owner answers "json CMD ..." this
 * way itself (the JSON line, then the usual "ok" / "error" line); the CLI's
 * --json asks for that.
 */
#ifndef FLASHMETA_CTL_JSON_H
#define FLASHMETA_CTL_JSON_H

/* *out: a malloc'ed NUL-terminated JSON object (no newline) for the text
 * answer; 0 or -ENOMEM. */
int fm_ctl_json(const char *answer, char **out);

#endif /* FLASHMETA_CTL_JSON_H */
