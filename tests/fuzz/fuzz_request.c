/* fuzz_request.c -- A client's request body (request.c): the first byte
 * picks chat completions or embeddings, the rest is the body.  A body
 * refused gets a 400 naming why; a stream's body rewritten to ask for
 * usage is read again as the same request, now asking for it. */
#include "config.h"

#include "fuzz.h"
#include "request.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum mg_endpoint ep = fuzz_byte(&data, &size) & 1 ? MG_EP_EMBEDDINGS : MG_EP_CHAT;
	char *body = fuzz_text(data, size);
	struct mg_apierror e;
	struct mg_call c, again;
	const char *sent;
	size_t len = size;

	memset(&e, 0, sizeof(e));
	if (mg_request_parse(ep, body, size, &c, &e) != MG_OK) {
		FUZZ_CHECK(e.status == 400);
		FUZZ_CHECK(e.message[0] != '\0');
		free(body);
		return 0;
	}
	FUZZ_CHECK(c.endpoint == ep);
	FUZZ_CHECK(c.model[0] != '\0');
	if (ep == MG_EP_CHAT && c.stream) {
		sent = mg_call_usage_body(&c, body, &len);
		FUZZ_CHECK(sent != NULL);
		if (sent != body || len != size) {
			char *copy = malloc(len + 1);

			FUZZ_CHECK(copy != NULL);
			memcpy(copy, sent, len);
			copy[len] = '\0';
			FUZZ_CHECK(mg_request_parse(ep, copy, len, &again, &e) == MG_OK);
			FUZZ_CHECK(again.stream && again.include_usage);
			FUZZ_CHECK(strcmp(again.model, c.model) == 0);
			FUZZ_CHECK(again.max_output == c.max_output);
			mg_call_free(&again);
			free(copy);
		} else {
			FUZZ_CHECK(c.include_usage);
		}
	}
	mg_call_free(&c);
	free(body);
	return 0;
}
