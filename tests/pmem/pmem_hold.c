/* pmem_hold.c -- a stand-in owner for tool_test.sh: opens a pool (taking
 * its exclusive lock), begins an owner incarnation, says "ready" and holds
 * the pool until it is killed.
 *
 *   pmem_hold POOL HOLD_MS
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "flashmeta/error.h"
#include "flashmeta/pmem_store.h"

int main(int argc, char **argv)
{
	struct fm_store *s;
	struct fm_store_owner_info prev;
	uint64_t inc;
	int ret;

	if (argc != 3) {
		fprintf(stderr, "usage: pmem_hold POOL HOLD_MS\n");
		return 2;
	}
	ret = fm_store_open(&s, argv[1], NULL);
	if (ret == 0)
		ret = fm_store_owner_begin(s, (uint32_t)strtoul(argv[2], NULL, 10),
					   &prev, &inc);
	if (ret == -EOPNOTSUPP) /* a 1.0 pool: no record, hold it all the same */
		ret = 0;
	if (ret) {
		fprintf(stderr, "pmem_hold: %s\n", fm_errormsg());
		return 1;
	}
	printf("ready incarnation %" PRIu64 "\n", inc);
	fflush(stdout);
	for (;;)
		pause(); /* until killed: the lock goes with the process */
}
