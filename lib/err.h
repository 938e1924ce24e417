#ifndef MG_ERR_H
#define MG_ERR_H

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
	MG_ERR__COUNT
};

/* Static English text for an error code; never NULL. */
const char *mg_strerror(enum mg_err e);

#endif
