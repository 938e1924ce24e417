/* fuzz_router.c -- A request's head as a client sends it: the method, the
 * REQUEST_URI (router.c, its %XX decoding) and the Authorization header
 * (apikey.c).  The input is three texts split at NUL bytes.  A route's
 * model id or file name is decoded, NUL-free and bounded; the key taken
 * from the header lies inside it, one word. */
#include "config.h"

#include "apikey.h"
#include "fuzz.h"
#include "router.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_text(data, size), *uri, *header, dec[MG_MODEL_ID_MAX];
	const char *method = text, *key;
	struct mg_route_match m;
	size_t n = 0;
	long len;

	uri = memchr(text, '\0', size + 1);
	uri = uri < text + size ? uri + 1 : text + size;
	header = uri + strlen(uri);
	header = header < text + size ? header + 1 : text + size;

	mg_router_match(method, uri, &m);
	FUZZ_CHECK(strlen(m.model_id) < sizeof(m.model_id));
	if (m.route == MG_ROUTE_NONE) {
		FUZZ_CHECK(m.allow == NULL && !m.method_ok);
	} else {
		FUZZ_CHECK(m.allow != NULL);
		FUZZ_CHECK(!m.method_ok || strcmp(method, m.allow) == 0 ||
		    (strcmp(method, "HEAD") == 0 && strcmp(m.allow, "GET") == 0));
	}
	if (m.route == MG_ROUTE_MODEL)
		FUZZ_CHECK(m.model_id[0] != '\0');
	if (m.route == MG_ROUTE_DASHBOARD)
		FUZZ_CHECK(strstr(m.model_id, "/") == NULL);
	mg_router_match(NULL, NULL, &m);
	FUZZ_CHECK(m.route == MG_ROUTE_NONE);

	len = mg_url_decode(uri, strlen(uri), dec, sizeof(dec));
	if (len >= 0) {
		FUZZ_CHECK((size_t)len == strlen(dec));
		FUZZ_CHECK((size_t)len <= strlen(uri));
	}
	FUZZ_CHECK(mg_url_decode(uri, strlen(uri), dec, 0) == -1);

	key = mg_apikey_from_header(header, &n);
	if (key != NULL) {
		FUZZ_CHECK(key > header && key + n <= header + strlen(header) && n > 0);
		FUZZ_CHECK(strcspn(key, " \t\r\n") == n);
		if (mg_apikey_valid(key, n)) {
			char prefix[MG_APIKEY_PREFIX_LEN + 1], hash[MG_APIKEY_HASH_HEX_LEN + 1];

			mg_apikey_prefix(key, prefix);
			FUZZ_CHECK(strncmp(prefix, "mg-", 3) == 0);
			FUZZ_CHECK(mg_apikey_hash_hex(key, n, hash) == MG_OK);
			FUZZ_CHECK(strlen(hash) == MG_APIKEY_HASH_HEX_LEN);
		}
	}
	free(text);
	return 0;
}
