/* chunk.c -- Reading an OpenAI stream chunk: [DONE], an error, the
 * usage-only chunk or one to relay, with its content deltas counted and
 * its usage taken.  Read in place (lib/jscan) in the usual case; json-c is
 * the judge of the rest.  Called by stream.c. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "chunk.h"
#include "jscan.h"

/* What the in-place reading found besides the usage. */
struct scanned {
	struct mg_jscan_value error, choices; /* the members, as read */
	long n_choices;         /* elements of choices, when an array */
	long contents;          /* of them with a delta.content that is a non-empty string */
};

/* The choices array of a chunk: each delta.content. */
static void
scan_choices(struct mg_jscan *s, struct scanned *c)
{
	static const char *const names[] = { "delta", NULL };
	struct mg_jscan_value choice, delta, content;
	int i;

	while (mg_jscan_element(s)) {
		c->n_choices++;
		mg_jscan_value(s, &choice);
		if (choice.type != MG_JSCAN_OBJECT) {
			mg_jscan_skip(s, &choice);
			continue;
		}
		delta.type = MG_JSCAN_NONE;
		while ((i = mg_jscan_field(s, names, NULL)) >= 0) {
			if (i == 0) {
				mg_jscan_next(s);
				continue;
			}
			mg_jscan_take(s, &delta);
			if (delta.type != MG_JSCAN_OBJECT) {
				mg_jscan_skip(s, &delta);
				continue;
			}
			mg_jscan_pick(s, "content", &content);
			if (content.type == MG_JSCAN_STRING && content.len > 0)
				c->contents++;
		}
	}
}

/* A member of a chunk besides its usage (mg_usage_scan's walk).  What
 * json-c is to judge fails the scanner: a member of interest named twice,
 * or an error that is not null (rare, and read there). */
static void
chunk_member(void *arg, struct mg_jscan *s, const struct mg_jscan_value *name)
{
	struct scanned *c = arg;

	if (mg_jscan_is(name, "error")) {
		mg_jscan_take(s, &c->error);
		mg_jscan_skip(s, &c->error);
		if (c->error.type != MG_JSCAN_NULL)
			mg_jscan_fail(s);
	} else if (mg_jscan_is(name, "choices")) {
		mg_jscan_take(s, &c->choices);
		if (c->choices.type == MG_JSCAN_ARRAY)
			scan_choices(s, c);
		else
			mg_jscan_skip(s, &c->choices);
	} else {
		mg_jscan_next(s);
	}
}

/* The same reading from a json-c tree. */
static void
read_tree(struct mg_chunk *c, json_object *obj)
{
	json_object *err, *msg, *choices, *usage;
	size_t i, n;

	if (json_object_object_get_ex(obj, "error", &err) && err != NULL) {
		c->kind = MG_CHUNK_ERROR;
		if (json_object_object_get_ex(err, "message", &msg) &&
		    json_object_is_type(msg, json_type_string))
			snprintf(c->message, sizeof(c->message), "%s", json_object_get_string(msg));
		return;
	}
	if (!json_object_object_get_ex(obj, "choices", &choices) ||
	    !json_object_is_type(choices, json_type_array))
		return;
	n = json_object_array_length(choices);
	if (n == 0 && json_object_object_get_ex(obj, "usage", &usage) && usage != NULL) {
		c->kind = MG_CHUNK_USAGE_ONLY;
		return;
	}
	for (i = 0; i < n; i++) {
		json_object *delta, *content;

		if (json_object_object_get_ex(json_object_array_get_idx(choices, i), "delta", &delta) &&
		    json_object_object_get_ex(delta, "content", &content) &&
		    json_object_is_type(content, json_type_string) &&
		    json_object_get_string_len(content) > 0)
			c->contents++;
	}
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
	/* the usual chunk, read in place and passed on as it came */
	memset(&sc, 0, sizeof(sc));
	if (memchr(data, '\n', len) == NULL && mg_usage_scan(u, data, len, &walk) == MG_OK) {
		if (sc.choices.type == MG_JSCAN_ARRAY && sc.n_choices == 0 && walk.usage)
			c->kind = MG_CHUNK_USAGE_ONLY;
		c->contents = sc.contents;
		return;
	}
	c->tree = json_tokener_parse(data);
	if (c->tree == NULL || !json_object_is_type(c->tree, json_type_object)) {
		c->kind = MG_CHUNK_INVALID;
		return;
	}
	mg_usage_from_json(u, c->tree);
	read_tree(c, c->tree);
	if (memchr(data, '\n', len) != NULL) {
		/* several data: lines: passed on as one */
		c->text = json_object_to_json_string_ext(c->tree, JSON_C_TO_STRING_PLAIN);
		c->len = strlen(c->text);
	}
}

void
mg_chunk_free(struct mg_chunk *c)
{
	if (c == NULL)
		return;
	json_object_put(c->tree);
	c->tree = NULL;
}
