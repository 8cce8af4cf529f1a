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

/*
 * fm_ctl_json_line -- one line of such an answer as one JSON object, for
 * answers printed line by line as they happen (JSON Lines: flashmeta
 * --json join/show/lock/unlock/split):
 *   "NAME K V ..." or "K V ..."   {"record": NAME, K: V, ...}  (as above)
 *   "ok"                          {"ok": true}
 *   "error NAME: message"         {"ok": false, "error": NAME, "message": "..."}
 * `line` may end in one "\n".  *out: a malloc'ed NUL-terminated object
 * (no newline); 0, -EINVAL (more than one line, or no word), -ENOMEM.
 */
int fm_ctl_json_line(const char *line, char **out);

#endif /* FLASHMETA_CTL_JSON_H */
