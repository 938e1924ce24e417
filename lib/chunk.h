#ifndef MG_CHUNK_H
#define MG_CHUNK_H

#include <stddef.h>

#include "usage.h"

/* The reader of OpenAI stream chunks (the data of one SSE event of a
 * streamed chat completion): what the relay must know of it, and its
 * usage, id and provider taken into a usage row on the way.  Pure; called
 * by stream.c. */

enum mg_chunk_kind {
	MG_CHUNK_DONE = 0,   /* "[DONE]": the stream is complete */
	MG_CHUNK_DATA,       /* a chunk to pass on (text, len) */
	MG_CHUNK_USAGE_ONLY, /* choices: [] with usage: the usage-only chunk */
	MG_CHUNK_ERROR,      /* the upstream's error object: message */
	MG_CHUNK_INVALID     /* not a JSON object: to be dropped */
};

struct mg_chunk {
	enum mg_chunk_kind kind;
	long contents;           /* choices whose delta.content is a non-empty string */
	const char *text;        /* DATA, USAGE_ONLY: the chunk as one line of JSON */
	size_t len;
	char message[512];       /* ERROR: error.message, or "" */
	char *line;              /* owned: set when text had to be written anew */
};

/* Reads len bytes of event data (NUL-terminated at len) into c, and the
 * chunk's usage into u.  text is data itself when the chunk is one line
 * (the bytes go on as the upstream sent them); a chunk of several data
 * lines is written anew on one.  Free c with mg_chunk_free. */
void mg_chunk_read(struct mg_chunk *c, struct mg_usage *u, const char *data, size_t len);
void mg_chunk_free(struct mg_chunk *c);

#endif
