/* test_mcp.c -- the MCP server's messages with a report function that
 * records the query it is given: JSON-RPC faults, version negotiation,
 * the tools each scope sees, arguments into queries, a project key kept
 * to its project. */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "mcp.h"
#include "unit.h"

/* What the last report call was asked. */
static struct {
	int calls;
	enum mg_report r;
	char project[64], by[128], limit[16], since[64];
} seen;

static enum mg_err
fake_report(void *arg, enum mg_report r, const struct mg_report_query *q, json_object **out,
    char *err, size_t errlen)
{
	(void)arg;
	seen.calls++;
	seen.r = r;
	snprintf(seen.project, sizeof(seen.project), "%s", q->project ? q->project : "-");
	snprintf(seen.by, sizeof(seen.by), "%s", q->by ? q->by : "-");
	snprintf(seen.limit, sizeof(seen.limit), "%s", q->limit ? q->limit : "-");
	snprintf(seen.since, sizeof(seen.since), "%s", q->since ? q->since : "-");
	if (q->since != NULL && strcmp(q->since, "bad") == 0) {
		snprintf(err, errlen, "since \"bad\" is not a time");
		return MG_ERR_INVALID;
	}
	*out = json_tokener_parse("{\"object\":\"list\",\"data\":[]}");
	return MG_OK;
}

/* The answer to msg as a JSON object (NULL: no answer). */
static json_object *
ask(struct mg_mcp *m, const char *msg)
{
	char *out = NULL;
	json_object *o;

	ck_assert_int_eq(mg_mcp_handle(m, msg, strlen(msg), &out), MG_OK);
	if (out == NULL)
		return NULL;
	ck_assert_ptr_null(strchr(out, '\n'));
	o = json_tokener_parse(out);
	ck_assert_ptr_nonnull(o);
	free(out);
	return o;
}

static const char *
at(json_object *o, const char *path)
{
	char buf[128], *p, *save = NULL;
	json_object *v = o;

	snprintf(buf, sizeof(buf), "%s", path);
	for (p = strtok_r(buf, ".", &save); p != NULL && v != NULL; p = strtok_r(NULL, ".", &save)) {
		if (json_object_is_type(v, json_type_array))
			v = json_object_array_get_idx(v, (size_t)atoi(p));
		else if (!json_object_object_get_ex(v, p, &v))
			v = NULL;
	}
	return v != NULL ? json_object_get_string(v) : NULL;
}

static const struct {
	const char *msg;
	const char *code;      /* error.code, or NULL: a result */
} faults[] = {
	{ "not json", "-32700" },
	{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"", "-32700" },
	{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"} x", "-32700" },
	{ "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", "-32600" },
	{ "42", "-32600" },
	{ "{\"id\":1,\"method\":\"ping\"}", "-32600" },
	{ "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}", "-32600" },
	{ "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}", "-32600" },
	{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}", "-32600" },
	{ "{\"jsonrpc\":\"2.0\",\"id\":1}", "-32600" },
	{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"nope\"}", "-32601" },
	{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\"}", "-32602" },
	{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"x\"}}",
	  "-32602" },
	{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
	  "{\"name\":\"get_quota\",\"arguments\":[]}}", "-32602" },
	{ "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}", NULL },
};

START_TEST(json_rpc_faults)
{
	struct mg_mcp m;
	json_object *o;

	mg_mcp_init(&m, 1, NULL, fake_report, NULL);
	o = ask(&m, faults[_i].msg);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(at(o, "jsonrpc"), "2.0");
	if (faults[_i].code != NULL) {
		ck_assert_str_eq(at(o, "error.code"), faults[_i].code);
		ck_assert_ptr_nonnull(at(o, "error.message"));
	} else {
		ck_assert_str_eq(at(o, "result"), "{ }");
	}
	json_object_put(o);
}
END_TEST

START_TEST(notifications_and_responses_unanswered)
{
	struct mg_mcp m;

	mg_mcp_init(&m, 1, NULL, fake_report, NULL);
	ck_assert_ptr_null(ask(&m, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"));
	ck_assert_ptr_null(ask(&m, "{\"jsonrpc\":\"2.0\",\"method\":\"anything/else\"}"));
	ck_assert_ptr_null(ask(&m, "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}"));
}
END_TEST

START_TEST(version_negotiation)
{
	static const char *const asked[] = { "2025-11-25", "2025-06-18", "2025-03-26",
		"2024-11-05", "1999-01-01", NULL };
	static const char *const got[] = { "2025-11-25", "2025-06-18", "2025-03-26",
		"2024-11-05", "2025-11-25", "2025-11-25" };
	char msg[256];
	struct mg_mcp m;
	json_object *o;
	int i;

	for (i = 0; i < 6; i++) {
		mg_mcp_init(&m, 0, "alpha", fake_report, NULL);
		snprintf(msg, sizeof(msg), "{\"jsonrpc\":\"2.0\",\"id\":\"x%d\",\"method\":"
		    "\"initialize\",\"params\":{%s%s%s\"capabilities\":{}}}", i,
		    asked[i] ? "\"protocolVersion\":\"" : "", asked[i] ? asked[i] : "",
		    asked[i] ? "\"," : "");
		o = ask(&m, msg);
		ck_assert_str_eq(at(o, "result.protocolVersion"), got[i]);
		ck_assert_str_eq(at(o, "result.serverInfo.name"), "modelgate");
		ck_assert_str_eq(at(o, "result.serverInfo.version"), PACKAGE_VERSION);
		ck_assert_ptr_nonnull(at(o, "result.capabilities.tools"));
		ck_assert_int_eq(atoi(at(o, "id") + 1), i);
		json_object_put(o);
	}
}
END_TEST

START_TEST(tools_by_scope)
{
	static const char list[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}";
	struct mg_mcp m;
	json_object *o, *tools;
	size_t i;

	mg_mcp_init(&m, 1, NULL, fake_report, NULL);
	o = ask(&m, list);
	json_object_object_get_ex(json_object_object_get(o, "result"), "tools", &tools);
	ck_assert_uint_eq(json_object_array_length(tools), 6);
	for (i = 0; i < 6; i++) {
		json_object *t = json_object_array_get_idx(tools, i);

		ck_assert_str_eq(at(t, "inputSchema.type"), "object");
		ck_assert_str_eq(at(t, "outputSchema.type"), "object");
		ck_assert_str_eq(at(t, "annotations.readOnlyHint"), "true");
	}
	ck_assert_str_eq(at(o, "result.tools.5.name"), "list_projects");
	json_object_put(o);
	mg_mcp_init(&m, 0, "alpha", fake_report, NULL);
	o = ask(&m, list);
	json_object_object_get_ex(json_object_object_get(o, "result"), "tools", &tools);
	ck_assert_uint_eq(json_object_array_length(tools), 4);
	json_object_put(o);
}
END_TEST

#define CALL(args) "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":" args "}"

START_TEST(call_arguments)
{
	struct mg_mcp m;
	json_object *o;

	mg_mcp_init(&m, 1, NULL, fake_report, NULL);
	memset(&seen, 0, sizeof(seen));
	o = ask(&m, CALL("{\"name\":\"usage_summary\",\"arguments\":{\"by\":[\"project\",\"model\"],"
	    "\"since\":\"7d\",\"tz\":null}}"));
	ck_assert_str_eq(at(o, "result.isError"), "false");
	ck_assert_str_eq(at(o, "result.structuredContent.object"), "list");
	ck_assert_str_eq(at(o, "result.content.0.type"), "text");
	ck_assert_int_eq(seen.r, MG_REPORT_USAGE);
	ck_assert_str_eq(seen.by, "project,model");
	ck_assert_str_eq(seen.since, "7d");
	ck_assert_str_eq(seen.project, "-");
	json_object_put(o);
	o = ask(&m, CALL("{\"name\":\"list_requests\",\"arguments\":{\"limit\":20}}"));
	ck_assert_str_eq(seen.limit, "20");
	json_object_put(o);
	/* refusals: no call made */
	seen.calls = 0;
	o = ask(&m, CALL("{\"name\":\"get_quota\",\"arguments\":{\"since\":\"7d\"}}"));
	ck_assert_str_eq(at(o, "result.isError"), "true");
	ck_assert_ptr_nonnull(strstr(at(o, "result.content.0.text"), "no argument \"since\""));
	json_object_put(o);
	o = ask(&m, CALL("{\"name\":\"usage_summary\",\"arguments\":{\"by\":[1]}}"));
	ck_assert_str_eq(at(o, "result.isError"), "true");
	json_object_put(o);
	o = ask(&m, CALL("{\"name\":\"usage_summary\",\"arguments\":{\"model\":5}}"));
	ck_assert_str_eq(at(o, "result.isError"), "true");
	json_object_put(o);
	ck_assert_int_eq(seen.calls, 0);
	/* the query layer's refusal, as a tool error */
	o = ask(&m, CALL("{\"name\":\"usage_summary\",\"arguments\":{\"since\":\"bad\"}}"));
	ck_assert_str_eq(at(o, "result.isError"), "true");
	ck_assert_str_eq(at(o, "result.content.0.text"), "since \"bad\" is not a time");
	json_object_put(o);
}
END_TEST

START_TEST(project_key_scope)
{
	struct mg_mcp m;
	json_object *o;

	mg_mcp_init(&m, 0, "alpha", fake_report, NULL);
	memset(&seen, 0, sizeof(seen));
	o = ask(&m, CALL("{\"name\":\"get_quota\"}"));
	ck_assert_str_eq(seen.project, "alpha");
	json_object_put(o);
	o = ask(&m, CALL("{\"name\":\"get_quota\",\"arguments\":{\"project\":\"alpha\"}}"));
	ck_assert_str_eq(at(o, "result.isError"), "false");
	json_object_put(o);
	seen.calls = 0;
	o = ask(&m, CALL("{\"name\":\"usage_summary\",\"arguments\":{\"project\":\"beta\"}}"));
	ck_assert_str_eq(at(o, "result.isError"), "true");
	json_object_put(o);
	o = ask(&m, CALL("{\"name\":\"list_projects\"}"));
	ck_assert_str_eq(at(o, "result.isError"), "true");
	json_object_put(o);
	o = ask(&m, CALL("{\"name\":\"reconciliation_status\"}"));
	ck_assert_str_eq(at(o, "result.isError"), "true");
	json_object_put(o);
	ck_assert_int_eq(seen.calls, 0);
}
END_TEST

static Suite *
mcp_suite(void)
{
	Suite *s = suite_create("mcp");
	TCase *tc = tcase_create("messages");

	tcase_add_loop_test(tc, json_rpc_faults, 0, (int)(sizeof(faults) / sizeof(faults[0])));
	tcase_add_test(tc, notifications_and_responses_unanswered);
	tcase_add_test(tc, version_negotiation);
	tcase_add_test(tc, tools_by_scope);
	tcase_add_test(tc, call_arguments);
	tcase_add_test(tc, project_key_scope);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return mg_unit_run(mcp_suite());
}
