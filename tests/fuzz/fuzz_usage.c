/* fuzz_usage.c -- An upstream's answer (a completion or an embeddings
 * list) as the gateway reads it twice: its usage in place (usage.c) and,
 * for base64 embeddings, as a json-c tree (embed.c).  Whatever the
 * in-place reader takes, json-c takes as an object with the same id,
 * provider, tokens and cost; what it refuses leaves the usage row as it
 * was. */
#include "config.h"

#include "../jsonref.h"
#include "embed.h"
#include "fuzz.h"

/* json-c turns a surrogate pair whose code point ends in D800-DFFF into
 * U+FFFD where the reader decodes it: such text is not compared. */
static void
same_text(char *a, const char *b, size_t size)
{
	if (strcmp(a, b) != 0 && strstr(a, "\xef\xbf\xbd") != NULL)
		snprintf(a, size, "%s", b);
	FUZZ_CHECK(strcmp(a, b) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_text(data, size);
	/* as the gateway reads an embeddings answer to rewrite it */
	json_object *o = json_tokener_parse(text);
	struct mg_usage a, b, before;
	int skip_cost = 0;

	mg_usage_init(&before);
	if (size > 0 && data[0] & 1) {
		/* a stream's later chunk: fields kept from before */
		before.prompt_tokens = 3;
		snprintf(before.upstream_id, sizeof(before.upstream_id), "gen-old");
	}
	a = before;
	b = before;
	if (o != NULL && json_object_is_type(o, json_type_object))
		skip_cost = usage_from_tree(&a, o);
	if (mg_usage_from_text(&b, text, size) == MG_OK) {
		FUZZ_CHECK(o != NULL && json_object_is_type(o, json_type_object));
		/* json-c cuts a name at an escaped NUL ("provider\u0000" is
		 * "provider" to it); the reader, as the upstream, keeps it whole */
		if (strstr(text, "\\u0000") != NULL) {
			json_object_put(o);
			free(text);
			return 0;
		}
		FUZZ_CHECK(a.prompt_tokens == b.prompt_tokens);
		FUZZ_CHECK(a.completion_tokens == b.completion_tokens);
		FUZZ_CHECK(a.total_tokens == b.total_tokens);
		same_text(a.upstream_id, b.upstream_id, sizeof(a.upstream_id));
		same_text(a.provider, b.provider, sizeof(a.provider));
		/* json-c writes a number anew when its text is not kept */
		if (a.cost[0] != '\0' && strstr(text, a.cost) == NULL)
			snprintf(a.cost, sizeof(a.cost), "%s", b.cost);
		if (!skip_cost) {
			FUZZ_CHECK(strcmp(a.cost, b.cost) == 0);
			FUZZ_CHECK((a.cost_source == NULL) == (b.cost_source == NULL));
		}
		if (b.cost[0] != '\0')
			FUZZ_CHECK(mg_money_valid(b.cost, MG_MONEY_NUMBER));
	} else {
		FUZZ_CHECK(b.prompt_tokens == before.prompt_tokens);
		FUZZ_CHECK(strcmp(b.upstream_id, before.upstream_id) == 0);
		FUZZ_CHECK(b.cost[0] == '\0' && b.total_tokens == before.total_tokens);
	}
	if (o != NULL && mg_embed_to_base64(o) == MG_OK)
		FUZZ_CHECK(json_object_to_json_string(o) != NULL);
	json_object_put(o);
	free(text);
	return 0;
}
