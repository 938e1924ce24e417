#ifndef MG_BUF_H
#define MG_BUF_H

#include <stddef.h>

#include "err.h"

/* A growable byte buffer with a hard cap.  The data is always
 * NUL-terminated (the NUL is not counted in len).  Not thread-safe. */
struct mg_buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max; /* len may never exceed this */
};

void mg_buf_init(struct mg_buf *b, size_t max);
/* Appends n bytes; MG_ERR_TOO_BIG past the cap (buffer unchanged). */
enum mg_err mg_buf_add(struct mg_buf *b, const void *p, size_t n)
	__attribute__((warn_unused_result));
enum mg_err mg_buf_adds(struct mg_buf *b, const char *s)
	__attribute__((warn_unused_result));
enum mg_err mg_buf_addf(struct mg_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), warn_unused_result));
/* Empties the buffer and keeps its memory for reuse. */
void mg_buf_reset(struct mg_buf *b);
/* Empties the buffer and frees its memory if it holds more than keep
 * bytes, so that one large request does not pin its memory for good. */
void mg_buf_shrink(struct mg_buf *b, size_t keep);
/* Releases the memory; the buffer can be reused after mg_buf_init. */
void mg_buf_free(struct mg_buf *b);
/* The contents as a C string; "" for an empty buffer. */
const char *mg_buf_str(const struct mg_buf *b);

#endif
