/* err.c -- The library's one error enum, its messages (mg_strerror) and the
 * writer of error details into a caller's buffer (mg_err_detail).  Called
 * by every module. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include "err.h"

static const char *const messages[MG_ERR__COUNT] = {
	[MG_OK] = "success",
	[MG_ERR_NOMEM] = "out of memory",
	[MG_ERR_TOO_BIG] = "input too large",
	[MG_ERR_IO] = "input/output error",
	[MG_ERR_CONFIG] = "invalid configuration",
	[MG_ERR_JSON] = "invalid JSON",
	[MG_ERR_INVALID] = "invalid input",
	[MG_ERR_AUTH] = "authentication failed",
	[MG_ERR_NOT_FOUND] = "not found",
	[MG_ERR_EXISTS] = "already exists",
	[MG_ERR_AMBIGUOUS] = "ambiguous prefix",
	[MG_ERR_DB] = "database error",
	[MG_ERR_DB_DOWN] = "database unavailable",
	[MG_ERR_UPSTREAM_CONNECT] = "upstream unreachable",
	[MG_ERR_UPSTREAM_TIMEOUT] = "upstream timed out",
	[MG_ERR_UPSTREAM] = "upstream error",
	[MG_ERR_CLIENT_GONE] = "client closed the connection",
	[MG_ERR_AUTH_ADMIN] = "an admin key cannot call models",
};

const char *
mg_strerror(enum mg_err e)
{
	if ((unsigned)e >= MG_ERR__COUNT || messages[e] == NULL)
		return "unknown error";
	return messages[e];
}

void
mg_err_detail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	if (vsnprintf(err, errlen, fmt, ap) < 0)
		err[0] = '\0';
	va_end(ap);
}
