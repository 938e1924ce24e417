/* buf.c -- A growable byte buffer with a hard cap, the one owner of sizes that
 * outside input decides.  Used by every module that collects bytes. */
#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void
mg_buf_init(struct mg_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

static enum mg_err
reserve(struct mg_buf *b, size_t extra)
{
	size_t need, ncap;
	char *p;

	if (extra > b->max - b->len)
		return MG_ERR_TOO_BIG;
	need = b->len + extra + 1;
	if (need <= b->cap)
		return MG_OK;
	ncap = b->cap ? b->cap : 256;
	while (ncap < need)
		ncap *= 2;
	if (b->max < SIZE_MAX && ncap > b->max + 1)
		ncap = b->max + 1;
	p = realloc(b->data, ncap);
	if (p == NULL)
		return MG_ERR_NOMEM;
	b->data = p;
	b->cap = ncap;
	return MG_OK;
}

enum mg_err
mg_buf_add(struct mg_buf *b, const void *p, size_t n)
{
	enum mg_err e = reserve(b, n);

	if (e != MG_OK)
		return e;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return MG_OK;
}

enum mg_err
mg_buf_adds(struct mg_buf *b, const char *s)
{
	return mg_buf_add(b, s, strlen(s));
}

enum mg_err
mg_buf_addf(struct mg_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	enum mg_err e;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return MG_ERR_INVALID;
	e = reserve(b, (size_t)n);
	if (e != MG_OK)
		return e;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return MG_OK;
}

void
mg_buf_reset(struct mg_buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

void
mg_buf_shrink(struct mg_buf *b, size_t keep)
{
	if (b->cap > keep) {
		free(b->data);
		b->data = NULL;
		b->cap = 0;
	}
	mg_buf_reset(b);
}

void
mg_buf_free(struct mg_buf *b)
{
	if (b == NULL)
		return;
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

const char *
mg_buf_str(const struct mg_buf *b)
{
	return b->data != NULL ? b->data : "";
}
