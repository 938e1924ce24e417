/* fcgi.c -- FastCGI input and output over libfcgi: parameters, the request body
 * under its cap, status and header lines, the body out.  Called by the
 * gateway. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "apierror.h"
#include "fcgi.h"

/* Bytes dropped after the cap before giving up on reading to the end. */
#define DRAIN_LIMIT ((size_t)1 << 30)

const char *
mg_fcgi_param(FCGX_Request *r, const char *name)
{
	size_t n = strlen(name);
	char **p;

	/* FCGX_GetParam's search, with the first letter compared inline */
	if (r->envp == NULL)
		return NULL;
	for (p = r->envp; *p != NULL; p++)
		if ((*p)[0] == name[0] && strncmp(*p, name, n) == 0 && (*p)[n] == '=')
			return *p + n + 1;
	return NULL;
}

enum mg_err
mg_fcgi_read_body(FCGX_Request *r, struct mg_buf *body)
{
	char chunk[16384];
	size_t dropped = 0;
	int too_big = 0;

	for (;;) {
		int n = FCGX_GetStr(chunk, sizeof(chunk), r->in);

		if (n <= 0)
			break;
		if (too_big) {
			dropped += (size_t)n;
			if (dropped > DRAIN_LIMIT)
				break;
			continue;
		}
		if (mg_buf_add(body, chunk, (size_t)n) != MG_OK)
			too_big = 1;
	}
	if (FCGX_GetError(r->in) != 0)
		return MG_ERR_IO;
	return too_big ? MG_ERR_TOO_BIG : MG_OK;
}

enum mg_err
mg_fcgi_reply(FCGX_Request *r, int status, const char *content_type,
    const char *extra_headers, const char *body, size_t len)
{
	char code[16];
	const char *parts[] = { "Status: ", code, " ", mg_http_reason(status),
		"\r\nContent-Type: ", content_type, "\r\n",
		extra_headers != NULL ? extra_headers : "", "\r\n" };
	size_t i;

	/* the head in pieces: FCGX_FPrintF formats a byte at a time */
	snprintf(code, sizeof(code), "%d", status);
	for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		if (FCGX_PutStr(parts[i], (int)strlen(parts[i]), r->out) < 0)
			return MG_ERR_CLIENT_GONE;
	if (len > 0 && FCGX_PutStr(body, (int)len, r->out) < 0)
		return MG_ERR_CLIENT_GONE;
	return MG_OK;
}
