/* fuzz_recon.c -- The upstream's answers outside the request's own
 * (reconcile.c, apierror.c): GET /generation, /activity and /credits
 * answers, and an error answer's body as told to the client.  The first
 * byte picks the HTTP status.  What they give on is what Postgres and the
 * client take: an amount in the exact form, a strict JSON array with no
 * raw control character, an OpenAI error object; a generation id goes
 * into its lookup's path and comes back out the same. */
#include "config.h"

#include <json-c/json.h>

#include "../jsonref.h"
#include "apierror.h"
#include "fuzz.h"
#include "jscan.h"
#include "money.h"
#include "reconcile.h"
#include "router.h"

static const long statuses[] = { 200, 404, 405, 501, 500, 502, 401, 402, 429, 408, 400,
	413, 422, 403, 301, 0 };

/* 1 when len bytes of text are one JSON value of type want as the
 * scanner reads them (the JSON judge of fuzz_jscan). */
static int
json_is(const char *text, size_t len, enum mg_jscan_type want)
{
	enum mg_jscan_type top;

	return scan_ok(text, len, &top) && top == want;
}

static void
no_control(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		FUZZ_CHECK((unsigned char)p[i] >= 0x20);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	long status = statuses[fuzz_byte(&data, &size) % (sizeof(statuses) / sizeof(statuses[0]))];
	char *body = fuzz_text(data, size);
	char cost[MG_MONEY_MAX], path[512], id[512];
	unsigned long long nano;
	struct mg_apierror e;
	struct mg_buf out, err;
	long n;

	if (mg_recon_read(status, body, size, cost, sizeof(cost)) == MG_RECON_BILLED) {
		FUZZ_CHECK(status == 200);
		FUZZ_CHECK(mg_money_valid(cost, MG_MONEY_NUMBER));
		(void)!mg_money_nano(cost, &nano);
	} else {
		FUZZ_CHECK(cost[0] == '\0');
	}

	mg_buf_init(&out, 1 << 20);
	if (mg_recon_activity_read(body, size, "2026-01-15", &out) == 0) {
		FUZZ_CHECK(json_is(out.data, out.len, MG_JSCAN_ARRAY));
		no_control(out.data, out.len);
	}
	mg_buf_free(&out);

	if (mg_recon_credits_read(body, size, cost, sizeof(cost)) == 0)
		FUZZ_CHECK(mg_money_valid(cost, MG_MONEY_NUMBER));

	mg_apierror_upstream(status, body, &e);
	FUZZ_CHECK(e.status >= 400 && e.status <= 599);
	FUZZ_CHECK(e.message[0] != '\0');
	mg_buf_init(&err, 1 << 16);
	FUZZ_CHECK(mg_apierror_json(&e, &err) == MG_OK);
	FUZZ_CHECK(json_is(err.data, err.len, MG_JSCAN_OBJECT));
	no_control(err.data, err.len);
	mg_buf_free(&err);

	/* the id as it came, to its NUL */
	if (mg_recon_path(body, path, sizeof(path)) == 0) {
		FUZZ_CHECK(strncmp(path, "/generation?id=", 15) == 0);
		n = mg_url_decode(path + 15, strlen(path + 15), id, sizeof(id));
		FUZZ_CHECK(n >= 0 && strcmp(id, body) == 0);
	}
	free(body);
	return 0;
}
