/* jsonw.c -- JSON text written straight into an mg_buf (see jsonw.h). */
#include "config.h"

#include <string.h>

#include "jsonw.h"
#include "text.h"

void
mg_jw_init(struct mg_jw *w, struct mg_buf *b)
{
	w->b = b;
	w->rc = MG_OK;
	w->comma = 0;
}

static inline void
put(struct mg_jw *w, const char *p, size_t n)
{
	struct mg_buf *b = w->b;

	if (w->rc != MG_OK)
		return;
	/* most writes are a few bytes into room the buffer has */
	if (n < b->cap - b->len && n <= b->max - b->len) {
		memcpy(b->data + b->len, p, n);
		b->len += n;
		b->data[b->len] = '\0';
		return;
	}
	w->rc = mg_buf_add(b, p, n);
}

/* The separator before a value that is an element (after a key, comma
 * is 0). */
static void
element(struct mg_jw *w)
{
	if (w->comma)
		put(w, ",", 1);
	w->comma = 1;
}

void
mg_jw_open(struct mg_jw *w, char c)
{
	element(w);
	put(w, &c, 1);
	w->comma = 0;
}

void
mg_jw_close(struct mg_jw *w, char c)
{
	put(w, &c, 1);
	w->comma = 1;
}

void
mg_jw_key(struct mg_jw *w, const char *key)
{
	struct mg_buf *b = w->b;
	size_t n = strlen(key);
	char *p;

	if (w->rc != MG_OK)
		return;
	/* ,"key": -- into the room the buffer has, or piece by piece */
	if (n + 5 < b->cap - b->len && n + 4 <= b->max - b->len) {
		p = b->data + b->len;
		if (w->comma)
			*p++ = ',';
		*p++ = '"';
		memcpy(p, key, n);
		p += n;
		*p++ = '"';
		*p++ = ':';
		*p = '\0';
		b->len = (size_t)(p - b->data);
	} else {
		element(w);
		put(w, "\"", 1);
		put(w, key, n);
		put(w, "\":", 2);
	}
	w->comma = 0;
}

static void
escape_u(struct mg_jw *w, unsigned long c)
{
	const char *hex = mg_text_hex_digit;
	char e[6] = { '\\', 'u', hex[c >> 12 & 15], hex[c >> 8 & 15], hex[c >> 4 & 15],
		hex[c & 15] };

	put(w, e, sizeof(e));
}

/* 1 for the bytes a string takes as they are: printable ASCII but the
 * quote and the backslash. */
static const unsigned char verbatim[256] = {
	[0x20 ... 0x21] = 1, [0x23 ... 0x5b] = 1, [0x5d ... 0x7e] = 1
};

void
mg_jw_str(struct mg_jw *w, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n, i = 0, start, len;
	unsigned long c;
	unsigned char b;

	if (str == NULL) {
		mg_jw_null(w);
		return;
	}
	element(w);
	n = strlen(str);
	put(w, "\"", 1);
	for (;;) {
		/* a run of bytes written as they are, up to the NUL at the
		 * latest */
		start = i;
		while (verbatim[s[i]])
			i++;
		put(w, str + start, i - start);
		if (i >= n)
			break;
		b = s[i];
		if (b == '"' || b == '\\') {
			char e[2] = { '\\', (char)b };

			put(w, e, 2);
			i++;
		} else if (b == '\n') {
			put(w, "\\n", 2);
			i++;
		} else if (b == '\t') {
			put(w, "\\t", 2);
			i++;
		} else if (b < 0x80) {
			escape_u(w, b);         /* the other C0 controls, DEL */
			i++;
		} else if ((len = mg_text_utf8(str + i, n - i, &c)) == 0) {
			put(w, "\\ufffd", 6);   /* not UTF-8: one byte replaced */
			i++;
		} else if (c <= 0x9f || c == 0x2028 || c == 0x2029) {
			escape_u(w, c);
			i += len;
		} else {
			put(w, str + i, len);
			i += len;
		}
	}
	put(w, "\"", 1);
}

void
mg_jw_int(struct mg_jw *w, long long v)
{
	char d[24];
	size_t n = mg_text_decimal(d, v, 1);

	element(w);
	put(w, d, n);
}

void
mg_jw_bool(struct mg_jw *w, int v)
{
	element(w);
	if (v)
		put(w, "true", 4);
	else
		put(w, "false", 5);
}

void
mg_jw_null(struct mg_jw *w)
{
	element(w);
	put(w, "null", 4);
}

enum mg_err
mg_jw_done(const struct mg_jw *w)
{
	return w->rc;
}
