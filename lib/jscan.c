/* jscan.c -- The one JSON reader of request bodies, upstream answers and
 * stream chunks: checks a text and walks it in place, without building a
 * tree.  Called by request, usage and chunk. */
#include "config.h"

#include <limits.h>
#include <string.h>

#include "jscan.h"

void
mg_jscan_init(struct mg_jscan *s, const char *text, size_t len)
{
	s->p = text;
	s->end = text + len;
	s->depth = 0;
	s->failed = 0;
}

void
mg_jscan_fail(struct mg_jscan *s)
{
	s->failed = 1;
	s->p = s->end;
}

int
mg_jscan_ok(const struct mg_jscan *s)
{
	return !s->failed;
}

static void
skip_space(struct mg_jscan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
		s->p++;
}

static int
is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The value of a hex digit already checked: '0'-'9' have bit 6 clear,
 * 'a'-'f' and 'A'-'F' have it set and 1-6 in the low bits. */
static unsigned
hex_value(char c)
{
	return ((unsigned char)c & 0xf) + ((unsigned char)c >> 6) * 9;
}

/* 1 for the bytes that stand for themselves in a string: all but the
 * quote, the backslash and NUL.  Raw control characters are taken, as
 * json-c takes them (RFC 8259 wants them escaped). */
static const unsigned char plain[256] = {
	0 /* NUL */, [1 ... 0x21] = 1, 0 /* '"' */, [0x23 ... 0x5b] = 1, 0 /* '\\' */,
	[0x5d ... 0xff] = 1
};

/* A string from its opening quote. */
static void
read_string(struct mg_jscan *s, struct mg_jscan_value *v)
{
	const char *p = s->p + 1, *end = s->end;

	v->type = MG_JSCAN_STRING;
	v->text = p;
	v->escaped = 0;
	for (;;) {
		while (p < end && plain[(unsigned char)*p])
			p++;
		if (p >= end || *p == '\0')
			goto fail;
		if (*p == '"')
			break;
		v->escaped = 1;
		if (end - p < 2)
			goto fail;
		switch (p[1]) {
		case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
			p += 2;
			break;
		case 'u':
			if (end - p < 6 || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4]) || !is_hex(p[5]))
				goto fail;
			p += 6;
			break;
		default:
			goto fail;
		}
	}
	v->len = (size_t)(p - v->text);
	s->p = p + 1;
	return;
fail:
	v->type = MG_JSCAN_NONE;
	mg_jscan_fail(s);
}

static const char *
digits(const char *p, const char *end)
{
	while (p < end && *p >= '0' && *p <= '9')
		p++;
	return p;
}

static void
read_number(struct mg_jscan *s, struct mg_jscan_value *v)
{
	const char *p = s->p, *end = s->end, *d;

	v->type = MG_JSCAN_NUMBER;
	v->text = p;
	v->integer = 1;
	if (*p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if (p < end && *p >= '1' && *p <= '9')
		p = digits(p, end);
	else
		goto fail;
	if (p < end && *p == '.') {
		d = digits(p + 1, end);
		if (d == p + 1)
			goto fail;
		p = d;
		v->integer = 0;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		d = digits(p, end);
		if (d == p)
			goto fail;
		p = d;
		v->integer = 0;
	}
	v->len = (size_t)(p - v->text);
	s->p = p;
	return;
fail:
	v->type = MG_JSCAN_NONE;
	mg_jscan_fail(s);
}

static void
read_word(struct mg_jscan *s, struct mg_jscan_value *v, const char *word, size_t n,
    enum mg_jscan_type type)
{
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) {
		v->type = MG_JSCAN_NONE;
		mg_jscan_fail(s);
		return;
	}
	v->type = type;
	v->text = s->p;
	v->len = n;
	s->p += n;
}

static void
open_level(struct mg_jscan *s, struct mg_jscan_value *v, char bracket, enum mg_jscan_type type)
{
	if (s->depth >= MG_JSCAN_DEPTH) {
		v->type = MG_JSCAN_NONE;
		mg_jscan_fail(s);
		return;
	}
	s->open[s->depth] = bracket;
	s->started[s->depth] = 0;
	s->depth++;
	v->type = type;
	v->text = s->p++;
	v->len = 0;
}

void
mg_jscan_value(struct mg_jscan *s, struct mg_jscan_value *v)
{
	v->type = MG_JSCAN_NONE;
	v->text = NULL;
	v->len = 0;
	v->escaped = 0;
	v->integer = 0;
	skip_space(s);
	if (s->p >= s->end) {
		mg_jscan_fail(s);
		return;
	}
	switch (*s->p) {
	case '{':
		open_level(s, v, '{', MG_JSCAN_OBJECT);
		break;
	case '[':
		open_level(s, v, '[', MG_JSCAN_ARRAY);
		break;
	case '"':
		read_string(s, v);
		break;
	case 't':
		read_word(s, v, "true", 4, MG_JSCAN_TRUE);
		break;
	case 'f':
		read_word(s, v, "false", 5, MG_JSCAN_FALSE);
		break;
	case 'n':
		read_word(s, v, "null", 4, MG_JSCAN_NULL);
		break;
	default:
		if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
			read_number(s, v);
		else
			mg_jscan_fail(s);
		break;
	}
}

/* Before a member or element of the innermost level: 1 when one follows,
 * 0 when the level closed (or the scanner failed). */
static int
next_item(struct mg_jscan *s, char bracket)
{
	char closing = bracket == '{' ? '}' : ']';
	int level = s->depth - 1;

	if (s->failed)
		return 0;
	if (level < 0 || s->open[level] != bracket) {
		mg_jscan_fail(s);
		return 0;
	}
	skip_space(s);
	if (s->p < s->end && *s->p == closing) {
		s->p++;
		s->depth--;
		return 0;
	}
	if (s->started[level]) {
		if (s->p >= s->end || *s->p != ',') {
			mg_jscan_fail(s);
			return 0;
		}
		s->p++;
	}
	s->started[level] = 1;
	return 1;
}

/* A member's name and its colon. */
static int
read_key(struct mg_jscan *s, struct mg_jscan_value *key)
{
	skip_space(s);
	if (s->p >= s->end || *s->p != '"') {
		mg_jscan_fail(s);
		return 0;
	}
	read_string(s, key);
	skip_space(s);
	if (s->failed || s->p >= s->end || *s->p != ':') {
		key->type = MG_JSCAN_NONE;
		mg_jscan_fail(s);
		return 0;
	}
	s->p++;
	return 1;
}

int
mg_jscan_member(struct mg_jscan *s, struct mg_jscan_value *key)
{
	key->type = MG_JSCAN_NONE;
	return next_item(s, '{') && read_key(s, key);
}

/* 1 when key, a member name, is name: compared as written when it has no
 * escapes, else decoded (a name of interest is short and has no NUL). */
static int
name_is(const struct mg_jscan_value *key, const char *name)
{
	char decoded[64];
	long n;
	int nul;

	if (!key->escaped)
		return key->text[0] == name[0] && mg_jscan_is(key, name);
	n = mg_jscan_string(key, decoded, sizeof(decoded), &nul);
	return n >= 0 && (size_t)n < sizeof(decoded) && !nul && strcmp(decoded, name) == 0;
}

int
mg_jscan_field(struct mg_jscan *s, const char *const names[], struct mg_jscan_value *key)
{
	struct mg_jscan_value k;
	int i;

	if (key == NULL)
		key = &k;
	if (!mg_jscan_member(s, key))
		return -1;
	for (i = 0; names[i] != NULL; i++)
		if (name_is(key, names[i]))
			return i + 1;
	return 0;
}

void
mg_jscan_pick(struct mg_jscan *s, const char *name, struct mg_jscan_value *slot)
{
	const char *const names[] = { name, NULL };
	int i;

	memset(slot, 0, sizeof(*slot));  /* MG_JSCAN_NONE, no text */
	while ((i = mg_jscan_field(s, names, NULL)) >= 0) {
		if (i == 0) {
			mg_jscan_next(s);
		} else {
			/* named again: the last one counts, as in json-c */
			mg_jscan_value(s, slot);
			mg_jscan_skip(s, slot);
		}
	}
}

int
mg_jscan_element(struct mg_jscan *s)
{
	return next_item(s, '[');
}

void
mg_jscan_skip(struct mg_jscan *s, const struct mg_jscan_value *v)
{
	struct mg_jscan_value t;
	int base = s->depth - 1;

	if (v->type != MG_JSCAN_OBJECT && v->type != MG_JSCAN_ARRAY)
		return;
	/* one loop over all the levels inside v, not calls per value */
	while (!s->failed && s->depth > base) {
		char bracket = s->open[s->depth - 1];

		if (!next_item(s, bracket))
			continue;       /* that level closed */
		if (bracket == '{' && !read_key(s, &t))
			break;
		mg_jscan_value(s, &t);
	}
}

void
mg_jscan_next(struct mg_jscan *s)
{
	struct mg_jscan_value v;

	mg_jscan_value(s, &v);
	mg_jscan_skip(s, &v);
}

void
mg_jscan_finish(struct mg_jscan *s)
{
	skip_space(s);
	if (s->depth != 0 || s->p != s->end)
		mg_jscan_fail(s);
}

int
mg_jscan_is(const struct mg_jscan_value *v, const char *name)
{
	size_t i;

	if (v->type != MG_JSCAN_STRING)
		return 0;
	if (v->escaped)
		return name_is(v, name);
	/* no NUL in v: a shorter name differs at its end */
	for (i = 0; i < v->len; i++)
		if (v->text[i] != name[i])
			return 0;
	return name[i] == '\0';
}

int
mg_jscan_int(const struct mg_jscan_value *v, long long *out)
{
	const char *p = v->text, *end = v->text + v->len;
	long long n = 0;
	int negative = 0;

	if (v->type != MG_JSCAN_NUMBER || !v->integer)
		return -1;
	if (*p == '-') {
		negative = 1;
		p++;
	}
	/* summed on the negative side, which holds LLONG_MIN */
	for (; p < end; p++)
		if (__builtin_mul_overflow(n, 10, &n) || __builtin_sub_overflow(n, *p - '0', &n))
			return -1;
	if (!negative && n == LLONG_MIN)
		return -1;
	*out = negative ? n : -n;
	return 0;
}

/* Appends code point c as UTF-8 where it fits (o counts all of it). */
static void
put_utf8(unsigned c, char *dst, size_t size, size_t *o)
{
	unsigned char b[4];
	size_t n, i;

	if (c < 0x80) {
		b[0] = (unsigned char)c;
		n = 1;
	} else if (c < 0x800) {
		b[0] = (unsigned char)(0xc0 | (c >> 6));
		b[1] = (unsigned char)(0x80 | (c & 0x3f));
		n = 2;
	} else if (c < 0x10000) {
		b[0] = (unsigned char)(0xe0 | (c >> 12));
		b[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
		b[2] = (unsigned char)(0x80 | (c & 0x3f));
		n = 3;
	} else {
		b[0] = (unsigned char)(0xf0 | (c >> 18));
		b[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3f));
		b[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
		b[3] = (unsigned char)(0x80 | (c & 0x3f));
		n = 4;
	}
	for (i = 0; i < n; i++, (*o)++)
		if (*o + 1 < size)
			dst[*o] = (char)b[i];
}

/* The 16-bit code unit of the unicode escape at p (at its backslash). */
static unsigned
unit_at(const char *p)
{
	return hex_value(p[2]) << 12 | hex_value(p[3]) << 8 | hex_value(p[4]) << 4 | hex_value(p[5]);
}

long
mg_jscan_string(const struct mg_jscan_value *v, char *dst, size_t size, int *nul)
{
	const char *p, *end;
	size_t o = 0;
	unsigned u, lo;

	if (nul != NULL)
		*nul = 0;
	/* a value that is not a string may hold no text at all */
	if (v->type != MG_JSCAN_STRING || size == 0)
		return -1;
	p = v->text;
	end = v->text + v->len;
	while (p < end) {
		char c = *p++;

		if (c == '\\') {
			/* the scanner checked the escape: its letter is there */
			c = *p++;
			switch (c) {
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'u':
				u = unit_at(p - 2);
				p += 4;
				if (u >= 0xd800 && u <= 0xdbff && end - p >= 6 && p[0] == '\\' &&
				    p[1] == 'u' && (lo = unit_at(p)) >= 0xdc00 && lo <= 0xdfff) {
					/* a surrogate pair */
					u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
					p += 6;
				} else if (u >= 0xd800 && u <= 0xdfff) {
					u = 0xfffd;     /* alone: the replacement character */
				} else if (u == 0 && nul != NULL) {
					*nul = 1;
				}
				put_utf8(u, dst, size, &o);
				continue;
			default:
				break; /* '"', '\\', '/' stand for themselves */
			}
		}
		if (o + 1 < size)
			dst[o] = c;
		o++;
	}
	dst[o < size ? o : size - 1] = '\0';
	return (long)o;
}

const char *
mg_jscan_at(const struct mg_jscan *s)
{
	return s->p;
}
