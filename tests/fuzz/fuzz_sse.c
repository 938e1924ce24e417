/* fuzz_sse.c -- An upstream's event stream (sse.c) fed in random splits,
 * each event read as a stream chunk (chunk.c) as the relay reads it.  The
 * first two bytes seed the splits; the events and the outcome are those
 * of the same bytes fed at once. */
#include "config.h"

#include "chunk.h"
#include "fuzz.h"
#include "sse.h"

/* Small enough that long lines and events hit the cap. */
#define MAX_EVENT 4096

struct seen {
	struct mg_buf all;   /* every event: its name, a NUL, its data, a NUL */
	int events;
	struct mg_usage u;
};

static int
on_event(void *arg, const struct mg_sse_event *ev)
{
	struct seen *s = arg;
	struct mg_chunk c;

	FUZZ_CHECK(ev->data[ev->len] == '\0');
	FUZZ_CHECK(strlen(ev->event) < 64);
	FUZZ_CHECK(mg_buf_add(&s->all, ev->event, strlen(ev->event) + 1) == MG_OK);
	FUZZ_CHECK(mg_buf_add(&s->all, ev->data, ev->len + 1) == MG_OK);
	s->events++;
	mg_chunk_read(&c, &s->u, ev->data, ev->len);
	if (c.kind == MG_CHUNK_DATA || c.kind == MG_CHUNK_USAGE_ONLY)
		FUZZ_CHECK(memchr(c.text, '\n', c.len) == NULL);
	mg_chunk_free(&c);
	/* a callback may stop the parser: this one does at an event named
	 * "stop" */
	return strcmp(ev->event, "stop") == 0;
}

static enum mg_err
feed(struct seen *s, const char *p, size_t n, unsigned seed)
{
	struct mg_sse sse;
	enum mg_err rc = MG_OK;
	size_t at = 0;

	mg_buf_init(&s->all, (size_t)-1);
	s->events = 0;
	mg_usage_init(&s->u);
	mg_sse_init(&sse, MAX_EVENT);
	while (at < n && rc == MG_OK) {
		size_t step = n - at;

		if (seed != 0) {
			seed = seed * 1103515245u + 12345u;
			step = 1 + (seed >> 16) % (seed & 0x100 ? 7 : 200);
			if (step > n - at)
				step = n - at;
		}
		rc = mg_sse_feed(&sse, p + at, step, on_event, s);
		at += step;
	}
	mg_sse_free(&sse);
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned seed = fuzz_byte(&data, &size) << 8;
	struct seen whole, split;
	enum mg_err a, b;
	char *text;

	seed |= fuzz_byte(&data, &size) | 1;
	text = fuzz_text(data, size);
	a = feed(&whole, text, size, 0);
	b = feed(&split, text, size, seed);
	FUZZ_CHECK(a == b);
	FUZZ_CHECK(whole.events == split.events);
	FUZZ_CHECK(whole.all.len == split.all.len);
	FUZZ_CHECK(whole.all.len == 0 || memcmp(whole.all.data, split.all.data, whole.all.len) == 0);
	FUZZ_CHECK(whole.u.prompt_tokens == split.u.prompt_tokens);
	FUZZ_CHECK(whole.u.completion_tokens == split.u.completion_tokens);
	FUZZ_CHECK(whole.u.total_tokens == split.u.total_tokens);
	FUZZ_CHECK(strcmp(whole.u.cost, split.u.cost) == 0);
	FUZZ_CHECK(strcmp(whole.u.upstream_id, split.u.upstream_id) == 0);
	FUZZ_CHECK(strcmp(whole.u.provider, split.u.provider) == 0);
	mg_buf_free(&whole.all);
	mg_buf_free(&split.all);
	free(text);
	return 0;
}
