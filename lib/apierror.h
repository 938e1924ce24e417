#ifndef MG_APIERROR_H
#define MG_APIERROR_H

#include "buf.h"
#include "err.h"

/* An OpenAI-style error: the HTTP status and the four fields of
 * {"error":{"message","type","param","code"}}.  Fields point at static or
 * caller-owned strings; message is copied into a fixed array. */
struct mg_apierror {
	int status;          /* HTTP status */
	const char *type;    /* e.g. "invalid_request_error" */
	const char *param;   /* offending field, or NULL */
	const char *code;    /* machine-readable code, or NULL */
	char message[512];
};

/* Fills e; message is printf-formatted and truncated to fit. */
void mg_apierror_set(struct mg_apierror *e, int status, const char *type,
    const char *param, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
/* Appends the JSON error object to out. */
enum mg_err mg_apierror_json(const struct mg_apierror *e, struct mg_buf *out)
	__attribute__((warn_unused_result));
/* What the client is told when the upstream answered an HTTP error
 * (status, with its body or NULL): its own words for a request it
 * rejected (4xx), a gateway error for the rest; the provider account's
 * problems are never passed on (pure). */
void mg_apierror_upstream(long status, const char *upstream_body, struct mg_apierror *e);
/* What the client is told when the upstream call failed with rc (connect,
 * timeout, too large, broken off). */
void mg_apierror_transport(enum mg_err rc, struct mg_apierror *e);
/* The reason phrase of an HTTP status ("Not Found"); "Unknown" if none. */
const char *mg_http_reason(int status);

#endif
