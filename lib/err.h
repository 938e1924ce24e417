#ifndef MG_ERR_H
#define MG_ERR_H

#include <stddef.h>

/* The one error enum of the library.  Only the HTTP layer (gateway) turns
 * these into statuses and OpenAI error objects. */
enum mg_err {
	MG_OK = 0,
	MG_ERR_NOMEM,            /* allocation failed */
	MG_ERR_TOO_BIG,          /* input exceeded a configured cap */
	MG_ERR_IO,               /* read/write on a file or socket failed */
	MG_ERR_CONFIG,           /* configuration invalid */
	MG_ERR_JSON,             /* text is not valid JSON */
	MG_ERR_INVALID,          /* well-formed but semantically invalid input */
	MG_ERR_AUTH,             /* key missing, unknown or revoked */
	MG_ERR_NOT_FOUND,        /* the named object does not exist */
	MG_ERR_EXISTS,           /* the named object exists already */
	MG_ERR_AMBIGUOUS,        /* a prefix matched several objects */
	MG_ERR_DB,               /* Postgres answered with an error */
	MG_ERR_DB_DOWN,          /* Postgres cannot be reached */
	MG_ERR_UPSTREAM_CONNECT, /* upstream unreachable */
	MG_ERR_UPSTREAM_TIMEOUT, /* upstream did not answer in time */
	MG_ERR_UPSTREAM,         /* upstream answered garbage or broke off */
	MG_ERR_CLIENT_GONE,      /* the client closed the connection */
	MG_ERR_AUTH_ADMIN,       /* an admin key where a project's key is needed */
	MG_ERR__COUNT
};

/* Static English text for an error code; never NULL. */
const char *mg_strerror(enum mg_err e);

/* Error details.  A function that can fail with more to say than
 * mg_strerror() takes `char *err, size_t errlen` as its last two
 * parameters: the caller's buffer (MG_ERR_DETAIL_LEN bytes are enough).
 * On failure the function returns its enum mg_err and writes one line of
 * English into err with mg_err_detail(): no newline, cut to fit, always
 * terminated; on success err is left alone.  err may be NULL (errlen 0)
 * when the caller wants no detail.  Who prints it decides where it goes
 * (stderr for the programs, the log for the responders); a detail never
 * goes to an API client.
 *
 * The one other form: a handle over a library that keeps its own last
 * message (libcurl's error buffer, libpq's error text) gives it out as
 * mg_<module>_last_error(), valid until its next call, for log lines. */
#define MG_ERR_DETAIL_LEN 1024

/* Writes the detail into err (see above); nothing when err is NULL or
 * errlen 0. */
void mg_err_detail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
