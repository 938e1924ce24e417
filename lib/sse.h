#ifndef MG_SSE_H
#define MG_SSE_H

#include <stddef.h>

#include "buf.h"

/* An incremental parser for text/event-stream: feed it bytes as they
 * arrive, split anywhere; it calls back once per complete event.  Lines
 * end in \n, \r\n or \r; comment lines (":…") are skipped; several data:
 * lines of one event are joined with \n; one space after the colon is
 * dropped.  Not thread-safe; one parser per stream. */
struct mg_sse_event {
	const char *data;     /* the joined data, NUL-terminated */
	size_t len;
	const char *event;    /* the event: field, "" if none */
};

/* Returns 0 to go on, nonzero to stop parsing. */
typedef int (*mg_sse_cb)(void *arg, const struct mg_sse_event *ev);

struct mg_sse {
	struct mg_buf line;   /* the line being read */
	struct mg_buf data;   /* data of the event being read */
	char event[64];
	int has_data;         /* a data: field was seen in this event */
	int after_cr;         /* the previous byte was \r */
};

/* max_event caps a line and an event's data (bytes). */
void mg_sse_init(struct mg_sse *p, size_t max_event);
void mg_sse_free(struct mg_sse *p);
/* Parses n bytes.  MG_OK; MG_ERR_TOO_BIG when a line or event exceeds the
 * cap; MG_ERR_INVALID when the callback asked to stop. */
enum mg_err mg_sse_feed(struct mg_sse *p, const char *buf, size_t n, mg_sse_cb cb, void *arg)
	__attribute__((warn_unused_result));

#endif
