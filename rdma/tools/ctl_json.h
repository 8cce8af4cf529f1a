/* ctl_json.h -- the owner's control answers as JSON (flashmeta --json).
 *
 * An answer is records, one per line ("NAME K V K V..." or "K V K V...",
 * ownerd.h), then "ok" or "error ERRNO-NAME: message".  Printed as
 *   {"ok": true, "records": [{"record": NAME, K: V, ...}, ...]}
 *   {"ok": false, "error": "ENOENT", "message": "...", "records": [...]}
 * A value of decimal digits that fits in 64 bits is a JSON number; every
 * other value a string.
 */
#ifndef FM_CTL_JSON_H
#define FM_CTL_JSON_H

#include <stdio.h>

void ctl_json_print(FILE *f, const char *answer);

#endif
