/* fuzz_mcp.c -- MCP messages (mcp.c), one session for the lines of the
 * input as `modelgate mcp` reads standard input; the first byte picks an
 * operator's session or a project key's.  Every answer is one line of
 * JSON, a JSON-RPC 2.0 object; the reports are made by report.c's calls
 * as the transports make them, and answered with an empty list. */
#include "config.h"

#include "fuzz.h"
#include "jscan.h"
#include "mcp.h"

static enum mg_err
report(void *arg, enum mg_report r, const struct mg_report_query *q, json_object **out,
    char *err, size_t errlen)
{
	struct mg_report_call call;
	enum mg_err rc;

	(void)arg;
	rc = mg_report_prepare(r, q, fuzz_conf(), &call, err, errlen);
	if (rc != MG_OK)
		return rc;
	*out = json_tokener_parse("{\"object\":\"list\",\"data\":[],\"timezone\":\"UTC\"}");
	return *out != NULL ? MG_OK : MG_ERR_NOMEM;
}

static void
check_answer(const char *a)
{
	struct mg_jscan s;
	struct mg_jscan_value v;
	json_object *o, *version;

	FUZZ_CHECK(strchr(a, '\n') == NULL);
	mg_jscan_init(&s, a, strlen(a));
	mg_jscan_value(&s, &v);
	mg_jscan_skip(&s, &v);
	mg_jscan_finish(&s);
	FUZZ_CHECK(mg_jscan_ok(&s) && v.type == MG_JSCAN_OBJECT);
	o = json_tokener_parse(a);
	FUZZ_CHECK(o != NULL);
	FUZZ_CHECK(json_object_object_get_ex(o, "jsonrpc", &version) &&
	    strcmp(json_object_get_string(version), "2.0") == 0);
	FUZZ_CHECK(json_object_object_get_ex(o, "result", NULL) !=
	    json_object_object_get_ex(o, "error", NULL));
	json_object_put(o);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int admin = fuzz_byte(&data, &size) & 1;
	char *text = fuzz_text(data, size), *line, *nl, *out;
	struct mg_mcp m;

	mg_mcp_init(&m, admin, admin ? NULL : "acme", report, NULL);
	for (line = text; line <= text + size; line = nl + 1) {
		nl = memchr(line, '\n', (size_t)(text + size - line));
		if (nl == NULL)
			nl = text + size;
		*nl = '\0';
		out = NULL;
		FUZZ_CHECK(mg_mcp_handle(&m, line, (size_t)(nl - line), &out) == MG_OK);
		if (out != NULL)
			check_answer(out);
		free(out);
	}
	free(text);
	return 0;
}
