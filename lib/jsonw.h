#ifndef MG_JSONW_H
#define MG_JSONW_H

#include "buf.h"
#include "err.h"

/* JSON text written straight into an mg_buf, for what the gateway sends
 * to Postgres a request at a time (admission and settlement batches):
 * no tree, no allocation per member.  Errors stick: after the first
 * (the buffer's cap, memory) every call does nothing, and mg_jw_done
 * returns it.  Strings are escaped: '"', '\\' and controls (C0, DEL, C1,
 * U+2028/U+2029) as \u escapes or their short forms, each byte that is
 * not part of well-formed UTF-8 as \ufffd, so the text is always valid
 * JSON in UTF-8 whatever the bytes.  Not thread-safe (one writer, one
 * buffer). */
struct mg_jw {
	struct mg_buf *b;
	enum mg_err rc;
	int comma;              /* a member or element precedes: write ',' */
};

/* Starts writing at the end of b. */
void mg_jw_init(struct mg_jw *w, struct mg_buf *b);
/* '{' or '[' (as a value: after a key, or as an element). */
void mg_jw_open(struct mg_jw *w, char c);
/* '}' or ']'. */
void mg_jw_close(struct mg_jw *w, char c);
/* "key": -- key is the caller's text, written as it is (no escaping). */
void mg_jw_key(struct mg_jw *w, const char *key);
/* Values (as members after mg_jw_key, or as elements). */
void mg_jw_str(struct mg_jw *w, const char *s);        /* NULL: null */
void mg_jw_int(struct mg_jw *w, long long v);
void mg_jw_bool(struct mg_jw *w, int v);
void mg_jw_null(struct mg_jw *w);
/* MG_OK, or the first error met. */
enum mg_err mg_jw_done(const struct mg_jw *w) __attribute__((warn_unused_result));

#endif
