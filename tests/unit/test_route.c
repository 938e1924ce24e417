#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "route.h"
#include "unit.h"

#define KEY_A "MG_UNIT_ROUTE_KEY_A"
#define KEY_B "MG_UNIT_ROUTE_KEY_B"

/* --- patterns ----------------------------------------------------------- */

static const struct {
	const char *pattern, *model;
	int match;
} matches[] = {
	{ "*", "openai/gpt-4o-mini", 1 },
	{ "*", "x", 1 },
	{ "openai/*", "openai/gpt-4o-mini", 1 },
	{ "openai/*", "openai/", 1 },
	{ "openai/*", "openai", 0 },
	{ "openai/*", "mistral/large", 0 },
	{ "openai/*", "OPENAI/gpt", 0 },
	{ "local/llama", "local/llama", 1 },
	{ "local/llama", "local/llama2", 0 },
	{ "local/llama*", "local/llama2", 1 },
};

START_TEST(pattern_match)
{
	ck_assert_msg(mg_route_pattern_match(matches[_i].pattern, matches[_i].model) ==
	    matches[_i].match, "%s ~ %s", matches[_i].pattern, matches[_i].model);
}
END_TEST

static const struct {
	const char *a, *b;
	int covers;
} covers[] = {
	{ "*", "openai/*", 1 },
	{ "*", "exact", 1 },
	{ "openai/*", "openai/gpt*", 1 },
	{ "openai/*", "openai/gpt-4o", 1 },
	{ "openai/gpt*", "openai/*", 0 },
	{ "openai/*", "*", 0 },
	{ "openai/*", "mistral/*", 0 },
	{ "exact", "exact", 1 },
	{ "exact", "exact*", 0 },
	{ "exact", "other", 0 },
};

START_TEST(pattern_covers)
{
	ck_assert_msg(mg_route_pattern_covers(covers[_i].a, covers[_i].b) == covers[_i].covers,
	    "%s covers %s", covers[_i].a, covers[_i].b);
}
END_TEST

START_TEST(pattern_valid)
{
	ck_assert_int_eq(mg_route_pattern_valid("*"), 1);
	ck_assert_int_eq(mg_route_pattern_valid("openai/*"), 1);
	ck_assert_int_eq(mg_route_pattern_valid("a/b"), 1);
	ck_assert_int_eq(mg_route_pattern_valid(""), 0);
	ck_assert_int_eq(mg_route_pattern_valid("*/x"), 0);
	ck_assert_int_eq(mg_route_pattern_valid("a**"), 0);
	ck_assert_int_eq(mg_route_pattern_valid("a\nb"), 0);
}
END_TEST

/* --- the configuration ----------------------------------------------------- */

static char tmpdir[64];

static void
make_tmpdir(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/mg-test-route-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		abort();
}

static void
remove_tmpdir(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/t.conf", tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/key", tmpdir);
	unlink(path);
	rmdir(tmpdir);
}

/* Loads text as a configuration file: the result, err filled. */
static enum mg_err
load(struct mg_conf *c, const char *text, char *err, size_t errlen)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/t.conf", tmpdir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return mg_conf_load(c, path, err, errlen);
}

static const char three[] =
    "upstreams = (\n"
    "  { name = \"openai\"; base_url = \"http://127.0.0.1:1/v1/\"; key_env = \"" KEY_A "\";\n"
    "    models = [ \"openai/*\" ]; strip_prefix = true; prices = \"config\";\n"
    "    prompt_price = \"0.000001\"; completion_price = \"0.000002\";\n"
    "    fallbacks = [ \"router\" ]; timeout = 20; },\n"
    "  { name = \"local\"; base_url = \"http://127.0.0.1:2/v1\"; models = [ \"local/*\", \"tiny\" ];\n"
    "    strip_prefix = true; retries = 1; fallbacks = [ \"spare\" ]; },\n"
    "  { name = \"router\"; base_url = \"https://127.0.0.1:3/api/v1\"; key_env = \"" KEY_B "\";\n"
    "    models = [ \"*\" ]; connect_timeout = 3; },\n"
    "  { name = \"spare\"; base_url = \"http://127.0.0.1:4/v1\"; }\n"
    ");\n"
    "routing = { max_attempts = 4; backoff_ms = 10; failure_threshold = 2; cooldown = 5; };\n";

START_TEST(load_three)
{
	struct mg_conf c;
	char err[1024] = "";

	setenv(KEY_A, "sk-a", 1);
	setenv(KEY_B, "sk-b", 1);
	ck_assert_msg(load(&c, three, err, sizeof(err)) == MG_OK, "%s", err);
	ck_assert_int_eq(c.n_ups, 4);
	ck_assert_int_eq(c.ups_listed, 1);
	ck_assert_str_eq(c.ups[0].name, "openai");
	ck_assert_str_eq(c.ups[0].base_url, "http://127.0.0.1:1/v1");
	ck_assert_str_eq(c.ups[0].key, "sk-a");
	ck_assert_int_eq(c.ups[0].strip_prefix, 1);
	ck_assert_int_eq(c.ups[0].prices, MG_PRICES_CONFIG);
	ck_assert_str_eq(c.ups[0].prompt_price, "0.000001");
	ck_assert_int_eq(c.ups[0].timeout, 20);
	ck_assert_int_eq(c.ups[0].connect_timeout, 10);
	ck_assert_int_eq(c.ups[0].n_fallbacks, 1);
	ck_assert_int_eq(c.ups[0].fallbacks[0], 2);
	ck_assert_ptr_null(c.ups[1].key);
	ck_assert_int_eq(c.ups[1].n_patterns, 2);
	ck_assert_int_eq(c.ups[1].retries, 1);
	ck_assert_str_eq(c.ups[1].prompt_price, "0.00001");    /* quota's fallback */
	ck_assert_str_eq(c.ups[2].key, "sk-b");
	ck_assert_int_eq(c.ups[2].connect_timeout, 3);
	ck_assert_int_eq(c.ups[2].timeout, 600);
	ck_assert_int_eq(c.ups[3].n_patterns, 0);
	ck_assert_int_eq(c.route_max_attempts, 4);
	ck_assert_int_eq(c.route_backoff_ms, 10);
	ck_assert_int_eq(c.health_failures, 2);
	ck_assert_int_eq(c.health_cooldown, 5);
	mg_conf_free(&c);
	ck_assert_int_eq(c.n_ups, 0);
	unsetenv(KEY_A);
	unsetenv(KEY_B);
}
END_TEST

START_TEST(legacy_is_default)
{
	struct mg_conf c;
	char err[1024] = "";

	setenv(KEY_A, "sk-legacy", 1);
	ck_assert_msg(load(&c, "upstream = { base_url = \"http://127.0.0.1:9/api/v1\"; key_env = \""
	    KEY_A "\"; timeout = 30; };\n", err, sizeof(err)) == MG_OK, "%s", err);
	ck_assert_int_eq(c.n_ups, 1);
	ck_assert_int_eq(c.ups_listed, 0);
	ck_assert_str_eq(c.ups[0].name, "default");
	ck_assert_str_eq(c.ups[0].base_url, "http://127.0.0.1:9/api/v1");
	ck_assert_str_eq(c.ups[0].key, "sk-legacy");
	ck_assert_str_eq(c.ups[0].patterns[0], "*");
	ck_assert_int_eq(c.ups[0].strip_prefix, 0);
	ck_assert_int_eq(c.ups[0].timeout, 30);
	ck_assert_int_eq(mg_route_find(&c, "anything/at-all", NULL), 0);
	mg_conf_free(&c);
	unsetenv(KEY_A);
}
END_TEST

/* Refused files: the line named and a word of the reason. */
static const struct {
	const char *text;
	int line;
	const char *names;
} bad[] = {
	{ "upstreams = (\n{ name = \"a\"; base_url = \"http://x\"; models = [ \"*\" ]; },\n"
	  "{ name = \"b\"; base_url = \"http://y\";\n models = [ \"openai/*\" ]; }\n);\n", 4,
	  "overlaps" },
	{ "upstreams = (\n{ name = \"a\"; base_url = \"http://x\";\n models = [ \"p/*\", \"p/q\" ]; }\n);\n",
	  3, "overlaps" },
	{ "upstreams = (\n{ name = \"a\"; base_url = \"http://x\"; models = [ \"m\" ]; },\n"
	  "{ name = \"b\"; base_url = \"http://y\";\n models = [ \"m\" ]; }\n);\n", 4, "overlaps" },
	{ "upstreams = (\n{ name = \"a\"; base_url = \"http://x\";\n models = [ ]; }\n);\n", 3, "empty" },
	{ "upstreams = (\n{ name = \"a\"; base_url = \"http://x\";\n models = [ \"\" ]; }\n);\n", 3,
	  "not a pattern" },
	{ "upstreams = (\n{ name = \"a\"; base_url = \"http://x\";\n models = [ \"a*b\" ]; }\n);\n", 3,
	  "not a pattern" },
	{ "upstreams = ( );\n", 1, "1 to" },
	{ "upstreams = (\n{ base_url = \"http://x\"; models = [ \"*\" ]; }\n);\n", 2, "name" },
	{ "upstreams = (\n{ name = \"a b\"; base_url = \"http://x\"; models = [ \"*\" ]; }\n);\n", 2, "name" },
	{ "upstreams = (\n{ name = \"a\"; models = [ \"*\" ]; }\n);\n", 2, "base_url" },
	{ "upstreams = (\n{ name = \"a\";\n base_url = \"ftp://x\"; models = [ \"*\" ]; }\n);\n", 3,
	  "http" },
	/* found by fuzz_conf: no host, and the scheme's slashes were dropped */
	{ "upstreams = (\n{ name = \"a\";\n base_url = \"http://\"; models = [ \"*\" ]; }\n);\n", 3,
	  "host" },
	{ "upstreams = (\n{ name = \"a\";\n base_url = \"https:///\"; models = [ \"*\" ]; }\n);\n", 3,
	  "host" },
	{ "upstreams = (\n{ name = \"a\"; base_url = \"http://x\"; models = [ \"*\" ];\n colour = 1; }\n);\n",
	  3, "unknown" },
	{ "upstreams = (\n{ name = \"a\"; base_url = \"http://x\"; models = [ \"*\" ];\n"
	  " fallbacks = [ \"nobody\" ]; }\n);\n", 3, "names no upstream" },
	{ "upstreams = (\n{ name = \"a\"; base_url = \"http://x\"; models = [ \"*\" ];\n"
	  " fallbacks = [ \"a\" ]; }\n);\n", 3, "itself" },
	{ "upstreams = (\n{ name = \"a\"; base_url = \"http://x\"; models = [ \"*\" ]; },\n"
	  "{ name = \"a\"; base_url = \"http://y\"; }\n);\n", 3, "name" },
	{ "upstreams = (\n{ name = \"a\"; base_url = \"http://x\"; models = [ \"*\" ]; },\n"
	  "{ name = \"b\"; base_url = \"http://y\"; }\n);\n", 3, "serves no model" },
	{ "upstreams = (\n{ name = \"a\"; base_url = \"http://x\"; models = [ \"*\" ];\n"
	  " prices = \"config\"; prompt_price = \"0\"; }\n);\n", 2, "completion_price" },
	{ "upstreams = (\n{ name = \"a\"; base_url = \"http://x\"; models = [ \"*\" ];\n"
	  " prompt_price = \"-1\"; }\n);\n", 3, "decimal" },
	{ "upstreams = (\n{ name = \"a\"; base_url = \"http://x\"; models = [ \"*\" ];\n"
	  " prices = \"free\"; }\n);\n", 3, "config" },
	{ "upstreams = (\n{ name = \"a\"; base_url = \"http://x\"; models = [ \"*\" ];\n"
	  " timeout = 0; }\n);\n", 3, "between" },
	{ "upstreams = (\n{ name = \"a\"; base_url = \"http://x\"; models = [ \"*\" ];\n"
	  " strip_prefix = 1; }\n);\n", 3, "true or false" },
	{ "upstreams = (\n{ name = \"a\"; base_url = \"http://x\"; models = [ \"*\" ];\n"
	  " timeout = 2000; }\n);\nquota = { reap_after = 900; };\n", 5, "reap_after" },
	{ "upstreams = \"x\";\n", 1, "list" },
	{ "routing = {\n max_attempts = 7; };\n", 2, "max_attempts" },
};

START_TEST(bad_files)
{
	struct mg_conf c;
	char err[1024] = "", where[32];
	enum mg_err rc = load(&c, bad[_i].text, err, sizeof(err));

	if (rc == MG_OK)
		mg_conf_free(&c);
	ck_assert_msg(rc == MG_ERR_CONFIG, "case %d loaded", _i);
	snprintf(where, sizeof(where), ".conf:%d:", bad[_i].line);
	ck_assert_msg(strstr(err, where) != NULL, "case %d: '%s' does not name line %d", _i, err,
	    bad[_i].line);
	ck_assert_msg(strstr(err, bad[_i].names) != NULL, "case %d: '%s' does not say '%s'", _i,
	    err, bad[_i].names);
	ck_assert_int_eq(c.n_ups, 0);
}
END_TEST

START_TEST(key_never_dumped)
{
	struct mg_conf c;
	char err[1024] = "", *text = NULL;
	size_t len = 0;
	FILE *f;

	setenv(KEY_A, "sk-secret-a", 1);
	setenv(KEY_B, "sk-secret-b", 1);
	ck_assert_msg(load(&c, three, err, sizeof(err)) == MG_OK, "%s", err);
	f = open_memstream(&text, &len);
	mg_conf_dump(&c, f);
	fclose(f);
	ck_assert_ptr_null(strstr(text, "sk-secret"));
	ck_assert_ptr_nonnull(strstr(text, "upstreams = ("));
	ck_assert_ptr_nonnull(strstr(text, "fallbacks = [\"router\"]"));
	free(text);
	mg_conf_free(&c);
	unsetenv(KEY_A);
	unsetenv(KEY_B);
}
END_TEST

/* --- routing ------------------------------------------------------------ */

START_TEST(find_and_strip)
{
	struct mg_conf c;
	char err[1024] = "", out[MG_MODEL_ID_MAX];
	int pattern = -1;

	ck_assert_msg(load(&c, three, err, sizeof(err)) == MG_OK, "%s", err);
	ck_assert_int_eq(mg_route_find(&c, "openai/gpt-4o-mini", &pattern), 0);
	ck_assert_int_eq(pattern, 0);
	ck_assert_int_eq(mg_route_find(&c, "local/llama", NULL), 1);
	ck_assert_int_eq(mg_route_find(&c, "tiny", &pattern), 1);
	ck_assert_int_eq(pattern, 1);
	ck_assert_int_eq(mg_route_find(&c, "mistral/large", NULL), 2);
	mg_route_model_for(&c, 0, "openai/gpt-4o-mini", out, sizeof(out));
	ck_assert_str_eq(out, "gpt-4o-mini");
	mg_route_model_for(&c, 1, "local/llama;fail=500", out, sizeof(out));
	ck_assert_str_eq(out, "llama;fail=500");
	/* an exact pattern: nothing to strip */
	mg_route_model_for(&c, 1, "tiny", out, sizeof(out));
	ck_assert_str_eq(out, "tiny");
	/* never stripped to nothing */
	mg_route_model_for(&c, 0, "openai/", out, sizeof(out));
	ck_assert_str_eq(out, "openai/");
	/* an upstream that does not strip, and a fallback whose patterns do
	 * not match: as the client named it */
	mg_route_model_for(&c, 2, "openai/gpt-4o-mini", out, sizeof(out));
	ck_assert_str_eq(out, "openai/gpt-4o-mini");
	mg_route_model_for(&c, 3, "local/llama", out, sizeof(out));
	ck_assert_str_eq(out, "local/llama");
	mg_conf_free(&c);
}
END_TEST

START_TEST(plan_fallbacks)
{
	struct mg_conf c;
	char err[1024] = "";
	struct mg_route_candidate p[MG_ROUTE_ATTEMPTS_MAX];
	const char *one[] = { "openai/gpt-4o-mini" };
	const char *two[] = { "local/llama", "openai/gpt-4o" };
	const char *none[] = { "nothing" };
	int n;

	ck_assert_msg(load(&c, three, err, sizeof(err)) == MG_OK, "%s", err);
	n = mg_route_plan(&c, one, 1, p, MG_ROUTE_ATTEMPTS_MAX);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(p[0].upstream, 0);
	ck_assert_str_eq(p[0].sent, "gpt-4o-mini");
	ck_assert_int_eq(p[1].upstream, 2);
	ck_assert_str_eq(p[1].sent, "openai/gpt-4o-mini");
	ck_assert_str_eq(p[1].model, "openai/gpt-4o-mini");
	/* local twice (retries = 1), its fallback, then the second model's */
	n = mg_route_plan(&c, two, 2, p, MG_ROUTE_ATTEMPTS_MAX);
	ck_assert_int_eq(n, 5);
	ck_assert_int_eq(p[0].upstream, 1);
	ck_assert_int_eq(p[1].upstream, 1);
	ck_assert_str_eq(p[1].sent, "llama");
	ck_assert_int_eq(p[2].upstream, 3);
	ck_assert_str_eq(p[2].sent, "local/llama");
	ck_assert_int_eq(p[3].upstream, 0);
	ck_assert_str_eq(p[3].sent, "gpt-4o");
	ck_assert_int_eq(p[4].upstream, 2);
	/* the limit */
	ck_assert_int_eq(mg_route_plan(&c, two, 2, p, 3), 3);
	/* a model that no upstream serves; the second model is still planned
	 * when only the first is served */
	mg_conf_free(&c);
	ck_assert_msg(load(&c, "upstreams = ( { name = \"a\"; base_url = \"http://x\"; "
	    "models = [ \"a/*\" ]; } );\n", err, sizeof(err)) == MG_OK, "%s", err);
	ck_assert_int_eq(mg_route_plan(&c, none, 1, p, MG_ROUTE_ATTEMPTS_MAX), 0);
	two[0] = "a/x";
	ck_assert_int_eq(mg_route_plan(&c, two, 2, p, MG_ROUTE_ATTEMPTS_MAX), 1);
	/* the same pair twice is planned once */
	two[1] = "a/x";
	ck_assert_int_eq(mg_route_plan(&c, two, 2, p, MG_ROUTE_ATTEMPTS_MAX), 1);
	mg_conf_free(&c);
}
END_TEST

/* --- health ------------------------------------------------------------- */

/* Retries of one upstream and model are one route; another upstream or
 * model is not. */
START_TEST(plan_single)
{
	struct mg_route_candidate c[3];

	memset(c, 0, sizeof(c));
	snprintf(c[0].model, sizeof(c[0].model), "a/m");
	c[1] = c[0];
	ck_assert_int_eq(mg_route_plan_single(c, 0), 0);
	ck_assert_int_eq(mg_route_plan_single(c, 1), 1);
	ck_assert_int_eq(mg_route_plan_single(c, 2), 1);
	c[2] = c[0];
	c[2].upstream = 1;
	ck_assert_int_eq(mg_route_plan_single(c, 3), 0);
	c[2].upstream = 0;
	snprintf(c[2].model, sizeof(c[2].model), "a/n");
	ck_assert_int_eq(mg_route_plan_single(c, 3), 0);
}
END_TEST

START_TEST(health_cooldown)
{
	struct mg_route_health h;
	long long wait;

	mg_route_health_reset();
	ck_assert_int_eq(mg_route_available(1, 1000, &wait), 1);
	mg_route_report(1, MG_ROUTE_STATUS, 1000, 3, 10);
	mg_route_report(1, MG_ROUTE_TIMEOUT, 1100, 3, 10);
	ck_assert_int_eq(mg_route_available(1, 1100, &wait), 1);
	/* a success clears the count */
	mg_route_report(1, MG_ROUTE_OK, 1200, 3, 10);
	mg_route_report(1, MG_ROUTE_CONNECT, 1300, 3, 10);
	mg_route_report(1, MG_ROUTE_CONNECT, 1400, 3, 10);
	ck_assert_int_eq(mg_route_available(1, 1400, &wait), 1);
	mg_route_report(1, MG_ROUTE_CONNECT, 1500, 3, 10);
	ck_assert_int_eq(mg_route_available(1, 1500, &wait), 0);
	ck_assert_int_eq(wait, 10000);
	mg_route_health(1, 2500, &h);
	ck_assert_int_eq(h.cooling, 1);
	ck_assert_int_eq(h.cooldown_left_ms, 9000);
	ck_assert_int_eq(h.failures, 3);
	ck_assert_uint_eq(h.calls[MG_ROUTE_CONNECT], 3);
	ck_assert_uint_eq(h.calls[MG_ROUTE_OK], 1);
	ck_assert_uint_eq(h.cooldowns, 1);
	/* other upstreams are not touched */
	ck_assert_int_eq(mg_route_available(0, 1500, &wait), 1);
	/* after the cooldown: tried again; one failure cools it again */
	ck_assert_int_eq(mg_route_available(1, 11500, &wait), 1);
	mg_route_report(1, MG_ROUTE_STATUS, 11600, 3, 10);
	ck_assert_int_eq(mg_route_available(1, 11600, &wait), 0);
	/* a success after the cooldown ends it for good */
	mg_route_report(1, MG_ROUTE_OK, 21700, 3, 10);
	mg_route_report(1, MG_ROUTE_STATUS, 21800, 3, 10);
	ck_assert_int_eq(mg_route_available(1, 21800, &wait), 1);
	ck_assert_str_eq(mg_route_outcome_name(MG_ROUTE_TIMEOUT), "timeout");
	/* out of range: ignored */
	mg_route_report(-1, MG_ROUTE_STATUS, 0, 1, 1);
	mg_route_report(MG_UPSTREAMS_MAX, MG_ROUTE_STATUS, 0, 1, 1);
	ck_assert_int_eq(mg_route_available(MG_UPSTREAMS_MAX, 0, &wait), 0);
}
END_TEST

static Suite *
route_suite(void)
{
	Suite *s = suite_create("route");
	TCase *tc;

	tc = tcase_create("patterns");
	tcase_add_loop_test(tc, pattern_match, 0, (int)(sizeof(matches) / sizeof(matches[0])));
	tcase_add_loop_test(tc, pattern_covers, 0, (int)(sizeof(covers) / sizeof(covers[0])));
	tcase_add_test(tc, pattern_valid);
	suite_add_tcase(s, tc);

	tc = tcase_create("config");
	tcase_add_unchecked_fixture(tc, make_tmpdir, remove_tmpdir);
	tcase_add_test(tc, load_three);
	tcase_add_test(tc, legacy_is_default);
	tcase_add_loop_test(tc, bad_files, 0, (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, key_never_dumped);
	tcase_add_test(tc, find_and_strip);
	tcase_add_test(tc, plan_fallbacks);
	suite_add_tcase(s, tc);

	tc = tcase_create("health");
	tcase_add_test(tc, plan_single);
	tcase_add_test(tc, health_cooldown);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return mg_unit_run(route_suite());
}
