/* fcgi.c -- FastCGI input and output over libfcgi: parameters, the request body
 * under its cap, status and header lines, the body out.  Also the one
 * builder of response header lines (mg_fcgi_header_add), which refuses
 * CR and LF.  Called by the gateway and by quota for its header lines. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "apierror.h"
#include "fcgi.h"
#include "text.h"

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

/* 1 when the n bytes at p hold no CR or LF. */
static int
one_line(const char *p, size_t n)
{
	return memchr(p, '\r', n) == NULL && memchr(p, '\n', n) == NULL;
}

/* Checks the name and puts "name: " at out + used; the bytes written, or 0
 * (out unchanged) when the name is not a header name or does not fit. */
static size_t
header_name(char *out, size_t len, size_t used, const char *name, enum mg_err *rc)
{
	size_t n = strlen(name);

	*rc = MG_ERR_INVALID;
	if (n == 0 || !one_line(name, n) || memchr(name, ':', n) != NULL)
		return 0;
	*rc = MG_ERR_TOO_BIG;
	if (used >= len || n + 2 >= len - used)
		return 0;
	memcpy(out + used, name, n);
	memcpy(out + used + n, ": ", 3);
	*rc = MG_OK;
	return n + 2;
}

/* Appends "name: " a b "\r\n" (na and nb bytes, neither holding CR or
 * LF) to out: mg_fcgi_header_add once the value is checked. */
static enum mg_err
header_put(char *out, size_t len, const char *name, const char *a, size_t na, const char *b,
    size_t nb)
{
	size_t used = strlen(out), k;
	enum mg_err rc;

	k = header_name(out, len, used, name, &rc);
	if (k == 0)
		return rc;
	if (na + nb + 2 >= len - used - k) {
		out[used] = '\0';
		return MG_ERR_TOO_BIG;
	}
	memcpy(out + used + k, a, na);
	memcpy(out + used + k + na, b, nb);
	memcpy(out + used + k + na + nb, "\r\n", 3);
	return MG_OK;
}

enum mg_err
mg_fcgi_header_add(char *out, size_t len, const char *name, const char *value)
{
	size_t n = strlen(value);

	if (!one_line(value, n))
		return MG_ERR_INVALID;
	return header_put(out, len, name, value, n, "", 0);
}

enum mg_err
mg_fcgi_header_addll(char *out, size_t len, const char *name, long long v)
{
	char digits[24];

	return header_put(out, len, name, digits, mg_text_decimal(digits, v, 1), "", 0);
}

enum mg_err
mg_fcgi_header_addf(char *out, size_t len, const char *name, const char *fmt, ...)
{
	size_t used = strlen(out), k, room;
	enum mg_err rc;
	va_list ap;
	int n;

	k = header_name(out, len, used, name, &rc);
	if (k == 0)
		return rc;
	room = len - used - k;
	va_start(ap, fmt);
	n = vsnprintf(out + used + k, room, fmt, ap);
	va_end(ap);
	rc = MG_ERR_TOO_BIG;
	if (n < 0 || (size_t)n + 2 >= room)
		goto undo;
	rc = MG_ERR_INVALID;
	if (!one_line(out + used + k, (size_t)n))
		goto undo;
	memcpy(out + used + k + (size_t)n, "\r\n", 3);
	return MG_OK;
undo:
	out[used] = '\0';
	return rc;
}

enum mg_err
mg_fcgi_reply(FCGX_Request *r, int status, const char *content_type,
    const char *extra_headers, const char *body, size_t len)
{
	char head[256] = "", code[24];
	const char *parts[] = { head, extra_headers != NULL ? extra_headers : "", "\r\n" };
	const char *reason = mg_http_reason(status);
	enum mg_err rc;
	size_t i, n;

	/* "Status: %d %s"; the reasons are one line each */
	n = mg_text_decimal(code, status, 1);
	code[n++] = ' ';
	rc = header_put(head, sizeof(head), "Status", code, n, reason, strlen(reason));
	if (rc == MG_OK)
		rc = mg_fcgi_header_add(head, sizeof(head), "Content-Type", content_type);
	if (rc != MG_OK)
		return rc;
	/* the head in pieces: FCGX_FPrintF formats a byte at a time */
	for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		if (FCGX_PutStr(parts[i], (int)strlen(parts[i]), r->out) < 0)
			return MG_ERR_CLIENT_GONE;
	if (len > 0 && FCGX_PutStr(body, (int)len, r->out) < 0)
		return MG_ERR_CLIENT_GONE;
	return MG_OK;
}

enum mg_err
mg_fcgi_end(FCGX_Request *r)
{
	int rc;

	/* stderr first: nothing is written to it, so closing it sends
	 * nothing, and the end of the request then goes with stdout's last
	 * bytes (libfcgi adds it to the stream closed last) */
	rc = FCGX_FClose(r->err);
	if (FCGX_FClose(r->out) != 0 || rc != 0)
		return MG_ERR_CLIENT_GONE;
	return MG_OK;
}
