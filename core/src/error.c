/* error.c -- thread-local error message behind flashmeta's negative errnos. */
#include <stdarg.h>
#include <stdio.h>

#include "flashmeta/error.h"

#define FM_ERRORMSG_MAX 256

static __thread char errormsg[FM_ERRORMSG_MAX];

const char *fm_errormsg(void)
{
	return errormsg;
}

int fm_err(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errormsg, sizeof(errormsg), fmt, ap);
	va_end(ap);
	return err;
}

void fm_err_clear(void)
{
	errormsg[0] = '\0';
}
