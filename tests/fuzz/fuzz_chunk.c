/* fuzz_chunk.c -- The data of one stream event (chunk.c) and its usage
 * (usage.c).  A chunk passed on is one line, and that line, read again,
 * is the same chunk with the same usage. */
#include "config.h"

#include "chunk.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_text(data, size), *line;
	struct mg_chunk c, again;
	struct mg_usage u, v;

	mg_usage_init(&u);
	mg_chunk_read(&c, &u, text, size);
	if (c.kind == MG_CHUNK_ERROR)
		FUZZ_CHECK(strlen(c.message) < sizeof(c.message));
	if (c.kind != MG_CHUNK_DATA && c.kind != MG_CHUNK_USAGE_ONLY) {
		mg_chunk_free(&c);
		free(text);
		return 0;
	}
	FUZZ_CHECK(c.contents >= 0);
	FUZZ_CHECK(memchr(c.text, '\n', c.len) == NULL);
	FUZZ_CHECK(u.total_tokens >= -1 && u.prompt_tokens >= -1 && u.completion_tokens >= -1);
	line = malloc(c.len + 1);
	FUZZ_CHECK(line != NULL);
	memcpy(line, c.text, c.len);
	line[c.len] = '\0';
	mg_usage_init(&v);
	mg_chunk_read(&again, &v, line, c.len);
	FUZZ_CHECK(again.kind == c.kind);
	FUZZ_CHECK(again.contents == c.contents);
	FUZZ_CHECK(again.line == NULL);
	FUZZ_CHECK(v.prompt_tokens == u.prompt_tokens);
	FUZZ_CHECK(v.completion_tokens == u.completion_tokens);
	FUZZ_CHECK(v.total_tokens == u.total_tokens);
	FUZZ_CHECK(strcmp(v.cost, u.cost) == 0);
	FUZZ_CHECK(strcmp(v.upstream_id, u.upstream_id) == 0);
	FUZZ_CHECK(strcmp(v.provider, u.provider) == 0);
	mg_chunk_free(&again);
	mg_chunk_free(&c);
	free(line);
	free(text);
	return 0;
}
