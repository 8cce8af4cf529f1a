/* time.c -- the transport's clock: monotonic milliseconds and deadlines
 * (a deadline of UINT64_MAX waits forever). */
#include <time.h>

#include "transport_priv.h"

uint64_t fm__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t fm__deadline(int timeout_ms)
{
	if (timeout_ms < 0)
		return UINT64_MAX;
	return fm__now_ms() + (uint64_t)timeout_ms;
}

int fm__remaining_ms(uint64_t deadline)
{
	uint64_t now;

	if (deadline == UINT64_MAX)
		return -1;
	now = fm__now_ms();
	if (now >= deadline)
		return 0;
	return deadline - now > 1000000000u ? 1000000000 : (int)(deadline - now);
}
