#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"

static const struct {
	const char *method;
	const char *uri;
	enum mg_route route;
	int method_ok;
	const char *allow;     /* NULL when route is MG_ROUTE_NONE */
	const char *model_id;  /* "" unless MG_ROUTE_MODEL or MG_ROUTE_DASHBOARD */
} routes[] = {
	/* every route with its method */
	{ "POST", "/v1/chat/completions", MG_ROUTE_CHAT, 1, "POST", "" },
	{ "POST", "/v1/embeddings", MG_ROUTE_EMBEDDINGS, 1, "POST", "" },
	{ "GET", "/v1/models", MG_ROUTE_MODELS, 1, "GET", "" },
	{ "GET", "/v1/models/gpt-4o", MG_ROUTE_MODEL, 1, "GET", "gpt-4o" },
	{ "GET", "/healthz", MG_ROUTE_HEALTH, 1, "GET", "" },
	{ "POST", "/mcp", MG_ROUTE_MCP, 1, "POST", "" },
	{ "GET", "/mcp", MG_ROUTE_MCP, 0, "POST", "" },
	{ "GET", "/v1/usage/models", MG_ROUTE_USAGE_MODELS, 1, "GET", "" },
	{ "GET", "/v1/usage/projects", MG_ROUTE_USAGE_PROJECTS, 1, "GET", "" },
	/* the dashboard: its page, then a file by name, nothing else */
	{ "GET", "/dashboard", MG_ROUTE_DASHBOARD, 1, "GET", "" },
	{ "GET", "/dashboard/", MG_ROUTE_DASHBOARD, 1, "GET", "" },
	{ "GET", "/dashboard/dashboard.js?v=1", MG_ROUTE_DASHBOARD, 1, "GET", "dashboard.js" },
	{ "POST", "/dashboard/index.html", MG_ROUTE_DASHBOARD, 0, "GET", "index.html" },
	{ "GET", "/dashboard/../etc/passwd", MG_ROUTE_NONE, 0, NULL, "" },
	{ "GET", "/dashboard/a%2Fb", MG_ROUTE_NONE, 0, NULL, "" },
	{ "GET", "/dashboard/sub/index.html", MG_ROUTE_NONE, 0, NULL, "" },
	{ "GET", "/dashboardx", MG_ROUTE_NONE, 0, NULL, "" },
	/* query strings and fragments are ignored */
	{ "POST", "/v1/chat/completions?stream=1", MG_ROUTE_CHAT, 1, "POST", "" },
	{ "POST", "/v1/embeddings?", MG_ROUTE_EMBEDDINGS, 1, "POST", "" },
	{ "GET", "/v1/models?x=/v1/chat", MG_ROUTE_MODELS, 1, "GET", "" },
	{ "GET", "/healthz?full", MG_ROUTE_HEALTH, 1, "GET", "" },
	{ "GET", "/healthz#top", MG_ROUTE_HEALTH, 1, "GET", "" },
	{ "GET", "/v1/models/gpt-4o?x=%zz", MG_ROUTE_MODEL, 1, "GET", "gpt-4o" },
	/* a trailing slash */
	{ "POST", "/v1/chat/completions/", MG_ROUTE_CHAT, 1, "POST", "" },
	{ "POST", "/v1/embeddings/", MG_ROUTE_EMBEDDINGS, 1, "POST", "" },
	{ "GET", "/v1/models/", MG_ROUTE_MODELS, 1, "GET", "" },
	{ "GET", "/v1/models/?a=b", MG_ROUTE_MODELS, 1, "GET", "" },
	{ "GET", "/healthz/", MG_ROUTE_HEALTH, 1, "GET", "" },
	/* model ids with a slash, escaped or not */
	{ "GET", "/v1/models/openai%2Fgpt-4o-mini", MG_ROUTE_MODEL, 1, "GET", "openai/gpt-4o-mini" },
	{ "GET", "/v1/models/openai%2fgpt-4o-mini", MG_ROUTE_MODEL, 1, "GET", "openai/gpt-4o-mini" },
	{ "GET", "/v1/models/openai/gpt-4o-mini", MG_ROUTE_MODEL, 1, "GET", "openai/gpt-4o-mini" },
	{ "GET", "/v1/models/openai/gpt-4o-mini?x=1", MG_ROUTE_MODEL, 1, "GET", "openai/gpt-4o-mini" },
	{ "GET", "/v1/models/meta-llama/llama-3.1-8b-instruct:free", MG_ROUTE_MODEL, 1, "GET",
	  "meta-llama/llama-3.1-8b-instruct:free" },
	{ "GET", "/v1/models/a%20b%2B", MG_ROUTE_MODEL, 1, "GET", "a b+" },
	{ "GET", "/v1/models/a+b", MG_ROUTE_MODEL, 1, "GET", "a+b" },
	/* bad escapes: no route */
	{ "GET", "/v1/models/%zz", MG_ROUTE_NONE, 0, NULL, "" },
	{ "GET", "/v1/models/openai%zzgpt", MG_ROUTE_NONE, 0, NULL, "" },
	{ "GET", "/v1/models/%2", MG_ROUTE_NONE, 0, NULL, "" },
	{ "GET", "/v1/models/%", MG_ROUTE_NONE, 0, NULL, "" },
	{ "GET", "/v1/models/abc%2?x", MG_ROUTE_NONE, 0, NULL, "" },
	{ "GET", "/v1/models/%00", MG_ROUTE_NONE, 0, NULL, "" },
	{ "GET", "/v1/models/gpt%00.txt", MG_ROUTE_NONE, 0, NULL, "" },
	/* HEAD is served like GET; not on POST routes */
	{ "HEAD", "/v1/models", MG_ROUTE_MODELS, 1, "GET", "" },
	{ "HEAD", "/v1/models/gpt-4o", MG_ROUTE_MODEL, 1, "GET", "gpt-4o" },
	{ "HEAD", "/healthz", MG_ROUTE_HEALTH, 1, "GET", "" },
	{ "HEAD", "/v1/chat/completions", MG_ROUTE_CHAT, 0, "POST", "" },
	/* the path exists, the method does not */
	{ "POST", "/v1/models", MG_ROUTE_MODELS, 0, "GET", "" },
	{ "DELETE", "/v1/models/gpt-4o", MG_ROUTE_MODEL, 0, "GET", "gpt-4o" },
	{ "GET", "/v1/chat/completions", MG_ROUTE_CHAT, 0, "POST", "" },
	{ "PUT", "/v1/embeddings", MG_ROUTE_EMBEDDINGS, 0, "POST", "" },
	{ "POST", "/healthz", MG_ROUTE_HEALTH, 0, "GET", "" },
	{ "post", "/v1/chat/completions", MG_ROUTE_CHAT, 0, "POST", "" },
	{ "", "/v1/chat/completions", MG_ROUTE_CHAT, 0, "POST", "" },
	{ NULL, "/v1/models", MG_ROUTE_MODELS, 0, "GET", "" },
	/* unknown paths */
	{ "GET", "/", MG_ROUTE_NONE, 0, NULL, "" },
	{ "GET", "", MG_ROUTE_NONE, 0, NULL, "" },
	{ "GET", "/v1", MG_ROUTE_NONE, 0, NULL, "" },
	{ "GET", "/v1/", MG_ROUTE_NONE, 0, NULL, "" },
	{ "POST", "/v1/completions", MG_ROUTE_NONE, 0, NULL, "" },
	{ "POST", "/v1/chat/completionsX", MG_ROUTE_NONE, 0, NULL, "" },
	{ "POST", "/v1/chat", MG_ROUTE_NONE, 0, NULL, "" },
	{ "GET", "/V1/MODELS", MG_ROUTE_NONE, 0, NULL, "" },
	{ "GET", "/v1/modelsx", MG_ROUTE_NONE, 0, NULL, "" },
	{ "GET", "/v2/models", MG_ROUTE_NONE, 0, NULL, "" },
	{ "GET", "//v1/models", MG_ROUTE_NONE, 0, NULL, "" },
	{ "GET", "/api/v1/models", MG_ROUTE_NONE, 0, NULL, "" },
	{ "GET", "/healthz2", MG_ROUTE_NONE, 0, NULL, "" },
	{ "GET", "?/v1/models", MG_ROUTE_NONE, 0, NULL, "" },
	{ "GET", NULL, MG_ROUTE_NONE, 0, NULL, "" },
	{ NULL, NULL, MG_ROUTE_NONE, 0, NULL, "" },
};

START_TEST(match_table)
{
	struct mg_route_match m;
	const char *meth = routes[_i].method, *uri = routes[_i].uri;

	memset(&m, 0x5a, sizeof(m));
	mg_router_match(meth, uri, &m);
	ck_assert_msg(m.route == routes[_i].route, "%s %s: route %d, want %d",
	    meth ? meth : "(null)", uri ? uri : "(null)", m.route, routes[_i].route);
	ck_assert_msg(m.method_ok == routes[_i].method_ok, "%s %s: method_ok %d, want %d",
	    meth ? meth : "(null)", uri ? uri : "(null)", m.method_ok, routes[_i].method_ok);
	if (routes[_i].allow == NULL)
		ck_assert_ptr_null(m.allow);
	else
		ck_assert_msg(m.allow != NULL && strcmp(m.allow, routes[_i].allow) == 0,
		    "%s %s: allow '%s', want '%s'", meth ? meth : "(null)", uri ? uri : "(null)",
		    m.allow ? m.allow : "(null)", routes[_i].allow);
	/* model_id is meaningful (and otherwise empty) only for a found route */
	if (routes[_i].route != MG_ROUTE_NONE)
		ck_assert_msg(strcmp(m.model_id, routes[_i].model_id) == 0, "%s %s: model_id '%s', want '%s'",
		    meth ? meth : "(null)", uri ? uri : "(null)", m.model_id, routes[_i].model_id);
}
END_TEST

/* A model id fills model_id up to MG_MODEL_ID_MAX-1 bytes; longer is no
 * route (never truncated to a different id). */
START_TEST(match_model_id_length)
{
	char uri[MG_MODEL_ID_MAX + 64], long_uri[16 + 3 * MG_MODEL_ID_MAX];
	struct mg_route_match m;
	size_t base = strlen("/v1/models/"), i, n;

	memset(uri, 0, sizeof(uri));
	memcpy(uri, "/v1/models/", base);
	memset(uri + base, 'x', MG_MODEL_ID_MAX - 1);
	mg_router_match("GET", uri, &m);
	ck_assert_int_eq(m.route, MG_ROUTE_MODEL);
	ck_assert_uint_eq(strlen(m.model_id), MG_MODEL_ID_MAX - 1);

	uri[base + MG_MODEL_ID_MAX - 1] = 'x';
	mg_router_match("GET", uri, &m);
	ck_assert_int_eq(m.route, MG_ROUTE_NONE);

	/* escapes count once decoded: 255 x "%41" fits, 256 do not */
	n = (size_t)snprintf(long_uri, sizeof(long_uri), "/v1/models/");
	for (i = 0; i < MG_MODEL_ID_MAX - 1; i++)
		n += (size_t)snprintf(long_uri + n, sizeof(long_uri) - n, "%%41");
	mg_router_match("GET", long_uri, &m);
	ck_assert_int_eq(m.route, MG_ROUTE_MODEL);
	ck_assert_uint_eq(strlen(m.model_id), MG_MODEL_ID_MAX - 1);
	ck_assert_int_eq(m.model_id[0], 'A');
	ck_assert_int_eq(m.model_id[MG_MODEL_ID_MAX - 2], 'A');

	snprintf(long_uri + n, sizeof(long_uri) - n, "%%41");
	mg_router_match("GET", long_uri, &m);
	ck_assert_int_eq(m.route, MG_ROUTE_NONE);
}
END_TEST

/* --- mg_url_decode ----------------------------------------------------- */

static const struct {
	const char *src;
	size_t n;          /* bytes of src; (size_t)-1: strlen */
	size_t dstlen;
	long want;         /* decoded length or -1 */
	const char *out;   /* when want >= 0 */
} decodes[] = {
	{ "abc", (size_t)-1, 16, 3, "abc" },
	{ "", (size_t)-1, 16, 0, "" },
	{ "", (size_t)-1, 1, 0, "" },
	{ "%41%62%2f%2F", (size_t)-1, 16, 4, "Ab//" },
	{ "a%20b", (size_t)-1, 16, 3, "a b" },
	{ "%ff", (size_t)-1, 16, 1, "\xff" },
	{ "a+b", (size_t)-1, 16, 3, "a+b" },
	{ "abcdef", 3, 16, 3, "abc" },           /* only n bytes are read */
	{ "ab%41", 4, 16, -1, NULL },            /* escape cut by n */
	{ "%zz", (size_t)-1, 16, -1, NULL },
	{ "%g0", (size_t)-1, 16, -1, NULL },
	{ "%0g", (size_t)-1, 16, -1, NULL },
	{ "%2", (size_t)-1, 16, -1, NULL },
	{ "%", (size_t)-1, 16, -1, NULL },
	{ "abc%", (size_t)-1, 16, -1, NULL },
	{ "%00", (size_t)-1, 16, -1, NULL },
	{ "a%00b", (size_t)-1, 16, -1, NULL },
	/* buffer too small: the NUL needs room too */
	{ "abc", (size_t)-1, 3, -1, NULL },
	{ "abc", (size_t)-1, 4, 3, "abc" },
	{ "%41%42%43", (size_t)-1, 3, -1, NULL },
	{ "%41%42%43", (size_t)-1, 4, 3, "ABC" },
	{ "a", (size_t)-1, 1, -1, NULL },
	{ "a", (size_t)-1, 0, -1, NULL },
	/* Regression test, once wrong in lib/router.c mg_url_decode() writes the terminating NUL into
	 * dst[0] even when dstlen is 0 (n = 0 never reaches the room check). */
	{ "", (size_t)-1, 0, -1, NULL },
};

START_TEST(url_decode_table)
{
	char dst[32];
	const char *src = decodes[_i].src;
	size_t n = decodes[_i].n == (size_t)-1 ? strlen(src) : decodes[_i].n;
	long got;

	memset(dst, '#', sizeof(dst));
	got = mg_url_decode(src, n, dst, decodes[_i].dstlen);
	ck_assert_msg(got == decodes[_i].want, "'%s' (n %zu, dstlen %zu): %ld, want %ld",
	    src, n, decodes[_i].dstlen, got, decodes[_i].want);
	if (got >= 0) {
		ck_assert_uint_eq(strlen(dst), (size_t)got);
		ck_assert_str_eq(dst, decodes[_i].out);
	}
	/* nothing is written past dstlen */
	ck_assert_msg(dst[decodes[_i].dstlen] == '#', "'%s': wrote past dstlen %zu", src, decodes[_i].dstlen);
}
END_TEST

static Suite *
router_suite(void)
{
	Suite *s = suite_create("router");
	TCase *tc;

	tc = tcase_create("match");
	tcase_add_loop_test(tc, match_table, 0, (int)(sizeof(routes) / sizeof(routes[0])));
	tcase_add_test(tc, match_model_id_length);
	suite_add_tcase(s, tc);

	tc = tcase_create("url_decode");
	tcase_add_loop_test(tc, url_decode_table, 0, (int)(sizeof(decodes) / sizeof(decodes[0])));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(router_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
