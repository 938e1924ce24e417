#ifndef MG_JSCAN_H
#define MG_JSCAN_H

#include <stddef.h>

/* The JSON reader of the request path: it checks a text and walks it in
 * place, without building a tree or allocating, so that only the few
 * members that matter are read and the bytes go on as they came.  It is
 * the one reader of client request bodies, upstream answers and stream
 * chunks (json-c builds and rewrites trees elsewhere).
 *
 * It accepts RFC 8259 JSON with raw control characters other than NUL in
 * strings (json-c takes them too), nesting up to MG_JSCAN_DEPTH, and
 * nothing after the value but white space.  A member named twice counts
 * with its last value, and names are compared decoded, as json-c does.
 * Failure is sticky: after it every call does nothing, returns 0 and reads
 * values as MG_JSCAN_NONE, so a walk ends by itself and mg_jscan_ok() at
 * the end tells.  Not thread-safe; the text must outlive the scanner. */

#define MG_JSCAN_DEPTH 64  /* json-c's limit in the gateway */

enum mg_jscan_type {
	MG_JSCAN_NONE = 0, /* no value: the scanner failed */
	MG_JSCAN_OBJECT,   /* '{' read (text at it): walk it with mg_jscan_member or skip it */
	MG_JSCAN_ARRAY,    /* '[' read (text at it): walk it with mg_jscan_element or skip it */
	MG_JSCAN_STRING,   /* text, len: between the quotes, escapes as written */
	MG_JSCAN_NUMBER,   /* text, len: the number as written */
	MG_JSCAN_TRUE,     /* true */
	MG_JSCAN_FALSE,    /* false */
	MG_JSCAN_NULL      /* null */
};

struct mg_jscan_value {
	enum mg_jscan_type type;
	const char *text;
	size_t len;
	int escaped;       /* string: holds a backslash escape */
	int integer;       /* number: no fraction, no exponent (json-c's int) */
};

struct mg_jscan {
	const char *p;
	const char *end;
	int depth;                         /* open objects and arrays */
	int failed;
	char open[MG_JSCAN_DEPTH];         /* '{' or '[' per open level */
	char started[MG_JSCAN_DEPTH];      /* a member/element was read there */
};

void mg_jscan_init(struct mg_jscan *s, const char *text, size_t len);
/* Reads the next value: a scalar whole, an object or array only up to its
 * opening bracket.  v->type is MG_JSCAN_NONE on failure. */
void mg_jscan_value(struct mg_jscan *s, struct mg_jscan_value *v);
/* In the innermost open object: 1 when a member follows (its key is in
 * key, its value is to be read next), 0 when the object closed here. */
int mg_jscan_member(struct mg_jscan *s, struct mg_jscan_value *key);
/* The next member of the innermost open object, by name: i + 1 when its
 * name is names[i] (a NULL-terminated list), 0 for any other name, -1 when
 * the object closed here; the name in *key unless key is NULL. */
int mg_jscan_field(struct mg_jscan *s, const char *const names[], struct mg_jscan_value *key);
/* Walks the rest of the innermost open object: the value of its member
 * name (checked whole; the last one when named twice) goes to *slot,
 * MG_JSCAN_NONE when there is none. */
void mg_jscan_pick(struct mg_jscan *s, const char *name, struct mg_jscan_value *slot);
/* In the innermost open array: 1 when an element follows (to be read
 * next), 0 when the array closed here. */
int mg_jscan_element(struct mg_jscan *s);
/* Checks and passes the rest of v, the value just read (nothing for a
 * scalar; an object or array to its closing bracket). */
void mg_jscan_skip(struct mg_jscan *s, const struct mg_jscan_value *v);
/* Reads the next value and passes it whole. */
void mg_jscan_next(struct mg_jscan *s);
/* After the top-level value: only white space may follow. */
void mg_jscan_finish(struct mg_jscan *s);
/* Makes the scanner fail: for what the caller does not take on itself. */
void mg_jscan_fail(struct mg_jscan *s);
/* 1 while nothing failed. */
int mg_jscan_ok(const struct mg_jscan *s);

/* Where the scanner is: just after the value last read whole (an
 * object or array once walked or skipped to its end). */
const char *mg_jscan_at(const struct mg_jscan *s);

/* 1 when string v, decoded, is name. */
int mg_jscan_is(const struct mg_jscan_value *v, const char *name);
/* The integer of number v in *out: 0, or -1 for anything else (a
 * fraction, an exponent, past the range of long long). */
int mg_jscan_int(const struct mg_jscan_value *v, long long *out)
	__attribute__((warn_unused_result));
/* Decodes string v as json-c does (a surrogate pair to one code point, a
 * lone surrogate to U+FFFD, an escaped U+0000 to a NUL byte, which sets *nul when nul
 * is not NULL) into dst, size bytes: as snprintf, at most size - 1 bytes
 * and a NUL, and returns the length decoded whole (size or more: cut).
 * -1 when v is not a string or size is 0. */
long mg_jscan_string(const struct mg_jscan_value *v, char *dst, size_t size, int *nul)
	__attribute__((warn_unused_result));

#endif
