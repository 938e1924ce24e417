/* chunk.c -- Reading an OpenAI stream chunk: [DONE], an error, the
 * usage-only chunk or one to relay, with its content deltas counted and
 * its usage taken, in one pass in place (lib/jscan, through
 * mg_usage_scan).  Called by stream.c. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "jscan.h"

/* What the pass found besides the usage: the last value of each member
 * of interest. */
struct scanned {
	struct mg_jscan_value error;   /* the member, as read */
	struct mg_jscan_value message; /* error.message */
	struct mg_jscan_value choices;
	long n_choices;         /* elements of choices, when an array */
	long contents;          /* of them with a delta.content that is a non-empty string */
};

/* One choice: 1 when its delta (the last one named) is an object whose
 * content is a non-empty string. */
static int
scan_choice(struct mg_jscan *s)
{
	static const char *const names[] = { "delta", NULL };
	struct mg_jscan_value delta, content;
	int i, has = 0;

	while ((i = mg_jscan_field(s, names, NULL)) >= 0) {
		if (i == 0) {
			mg_jscan_next(s);
			continue;
		}
		mg_jscan_value(s, &delta);
		has = 0;
		if (delta.type != MG_JSCAN_OBJECT) {
			mg_jscan_skip(s, &delta);
			continue;
		}
		mg_jscan_pick(s, "content", &content);
		has = content.type == MG_JSCAN_STRING && content.len > 0;
	}
	return has;
}

/* The choices array of a chunk. */
static void
scan_choices(struct mg_jscan *s, struct scanned *c)
{
	struct mg_jscan_value choice;

	while (mg_jscan_element(s)) {
		c->n_choices++;
		mg_jscan_value(s, &choice);
		if (choice.type == MG_JSCAN_OBJECT)
			c->contents += scan_choice(s);
		else
			mg_jscan_skip(s, &choice);
	}
}

/* A member of a chunk besides its usage (mg_usage_scan's walk). */
static void
chunk_member(void *arg, struct mg_jscan *s, const struct mg_jscan_value *name)
{
	struct scanned *c = arg;

	if (mg_jscan_is(name, "error")) {
		mg_jscan_value(s, &c->error);
		c->message.type = MG_JSCAN_NONE;
		if (c->error.type == MG_JSCAN_OBJECT)
			mg_jscan_pick(s, "message", &c->message);
		else
			mg_jscan_skip(s, &c->error);
	} else if (mg_jscan_is(name, "choices")) {
		mg_jscan_value(s, &c->choices);
		c->n_choices = 0;
		c->contents = 0;
		if (c->choices.type == MG_JSCAN_ARRAY)
			scan_choices(s, c);
		else
			mg_jscan_skip(s, &c->choices);
	} else {
		mg_jscan_next(s);
	}
}

/* The data of several data: lines (joined by LF) on one line: an LF
 * between tokens becomes a space, one inside a string its escape.  A
 * copy, malloc'd; NULL when out of memory. */
static char *
one_line(const char *data, size_t len, size_t *out_len)
{
	char *line = malloc(2 * len + 1);
	size_t i, o = 0;
	int in_string = 0;

	if (line == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		char ch = data[i];

		if (ch == '\n') {
			if (in_string) {
				line[o++] = '\\';
				line[o++] = 'n';
			} else {
				line[o++] = ' ';
			}
			continue;
		}
		line[o++] = ch;
		if (ch == '"') {
			in_string = !in_string;
		} else if (ch == '\\' && in_string && i + 1 < len) {
			/* an escape (the scan checked it): its letter ends no string */
			line[o++] = data[++i];
		}
	}
	line[o] = '\0';
	*out_len = o;
	return line;
}

void
mg_chunk_read(struct mg_chunk *c, struct mg_usage *u, const char *data, size_t len)
{
	struct scanned sc;
	struct mg_usage_walk walk = { chunk_member, &sc, 0 };

	memset(c, 0, sizeof(*c));
	c->kind = MG_CHUNK_DATA;
	c->text = data;
	c->len = len;
	if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
		c->kind = MG_CHUNK_DONE;
		return;
	}
	memset(&sc, 0, sizeof(sc));
	if (mg_usage_scan(u, data, len, &walk) != MG_OK) {
		c->kind = MG_CHUNK_INVALID;
		return;
	}
	if (sc.error.type != MG_JSCAN_NONE && sc.error.type != MG_JSCAN_NULL) {
		c->kind = MG_CHUNK_ERROR;
		if (mg_jscan_string(&sc.message, c->message, sizeof(c->message), NULL) < 0)
			c->message[0] = '\0';
		return;
	}
	if (sc.choices.type == MG_JSCAN_ARRAY && sc.n_choices == 0 && walk.usage)
		c->kind = MG_CHUNK_USAGE_ONLY;
	c->contents = sc.contents;
	if (memchr(data, '\n', len) != NULL) {
		/* several data: lines: passed on as one */
		c->line = one_line(data, len, &c->len);
		if (c->line == NULL) {
			c->kind = MG_CHUNK_INVALID;
			return;
		}
		c->text = c->line;
	}
}

void
mg_chunk_free(struct mg_chunk *c)
{
	if (c == NULL)
		return;
	free(c->line);
	c->line = NULL;
}
