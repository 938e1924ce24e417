/* mcp.c -- The Model Context Protocol server: JSON-RPC 2.0 (initialize
 * with version negotiation, notifications/initialized, ping, tools/list,
 * tools/call) whose tools are the usage reports.  A tool's answer carries
 * the report's object as structuredContent, the same object the CLI
 * prints with --format json, and its table as text.  Transports: cli.c
 * (stdio) and mcpapi.c (POST /mcp). */
#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "mcp.h"

/* JSON-RPC 2.0 error codes. */
#define RPC_PARSE_ERROR -32700
#define RPC_INVALID_REQUEST -32600
#define RPC_METHOD_NOT_FOUND -32601
#define RPC_INVALID_PARAMS -32602
#define RPC_INTERNAL_ERROR -32603

/* The versions spoken, newest first. */
static const char *const versions[] = { "2025-11-25", "2025-06-18", "2025-03-26",
	"2024-11-05" };

/* A tool argument: its query field, its JSON Schema, what it means. */
struct arg {
	const char *name;
	const char *schema;
};

static const struct arg args[] = {
	{ "project", "{\"type\":\"string\",\"description\":\"A project's name. A project key "
	  "reads its own project only; with an admin key, every project when left out.\"}" },
	{ "key", "{\"type\":\"string\",\"description\":\"A key's prefix (mg-xxxxxxxx), as "
	  "listed by the operator.\"}" },
	{ "model", "{\"type\":\"string\",\"description\":\"A model id, e.g. "
	  "openai/gpt-4o-mini.\"}" },
	{ "since", "{\"type\":\"string\",\"description\":\"Start of the period (inclusive): "
	  "ISO 8601 (2026-11-05, 2026-11-05T14:30Z), today, yesterday, 7d, 24h, this-month, "
	  "last-month.\"}" },
	{ "until", "{\"type\":\"string\",\"description\":\"End of the period (exclusive), as "
	  "since; default now.\"}" },
	{ "tz", "{\"type\":\"string\",\"description\":\"IANA time zone of days, hours and "
	  "relative times, e.g. Europe/Paris; default the gateway's report.timezone.\"}" },
	{ "by", "{\"type\":\"array\",\"items\":{\"type\":\"string\",\"enum\":[\"project\","
	  "\"key\",\"model\",\"endpoint\",\"status\",\"day\",\"hour\"]},\"description\":"
	  "\"Dimensions to group the totals by; none: one line of totals.\"}" },
	{ "status", "{\"type\":\"string\",\"description\":\"2xx, 4xx, 5xx, pending, or an HTTP "
	  "status code.\"}" },
	{ "limit", "{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000,\"description\":"
	  "\"Requests per page; default 50.\"}" },
	{ "cursor", "{\"type\":\"string\",\"description\":\"next_cursor of the page before.\"}" },
};

/* A tool: a report, the arguments it takes (indexes into args, -1 ends),
 * whether only an operator or admin key may call it. */
struct tool {
	const char *name;
	const char *title;
	const char *description;
	enum mg_report report;
	int args[10];
	int admin_only;
};

static const struct tool tools[] = {
	{ "usage_summary", "Usage totals",
	  "Requests, errors, prompt/completion tokens, cost in USD (exact decimal strings), "
	  "latency and time-to-first-token percentiles over a period, grouped by any of "
	  "project, key, model, endpoint, status, day, hour, in a time zone. Default period: "
	  "this month.", MG_REPORT_USAGE, { 0, 1, 2, 3, 4, 5, 6, -1 }, 0 },
	{ "list_requests", "Latest requests",
	  "The latest requests, newest first: time, project, key, model, endpoint, status, "
	  "tokens, cost, latency; filtered, a page at a time (pass next_cursor as cursor).",
	  MG_REPORT_REQUESTS, { 0, 1, 2, 7, 3, 4, 5, 8, 9, -1 }, 0 },
	{ "get_quota", "Limits and what is left",
	  "Each project's limits (requests and tokens a minute, spend cap), this period's "
	  "spent and reserved USD, what remains, and when the period ends.",
	  MG_REPORT_QUOTA, { 0, -1 }, 0 },
	{ "list_models", "Models and prices",
	  "The models a project may use, with their prices in USD per million prompt and "
	  "completion tokens, grouped by provider (the part of the id before '/'). Switching "
	  "model is a change of the model string only.", MG_REPORT_MODELS, { 0, -1 }, 0 },
	{ "reconciliation_status", "Bill reconciliation",
	  "Per UTC day and model: the cost recorded, the adjustments made after checking each "
	  "generation with the upstream, what the upstream billed and the difference; rows by "
	  "reconciliation state, the reconciled-through watermark, generations the upstream "
	  "never knew. Default period: the last 7 days.", MG_REPORT_RECONCILE, { 3, 4, -1 }, 1 },
	{ "list_projects", "Projects",
	  "Every project: its limits (rpm, tpm, spend cap and period, allowed models), live "
	  "keys and when it was made.", MG_REPORT_PROJECTS, { -1 }, 1 },
};

#define NTOOLS (sizeof(tools) / sizeof(tools[0]))

static const char output_schema[] =
    "{\"type\":\"object\",\"properties\":{\"object\":{\"type\":\"string\"},"
    "\"data\":{\"type\":\"array\"}},\"required\":[\"object\",\"data\"]}";

void
mg_mcp_init(struct mg_mcp *m, int admin, const char *project, mg_mcp_report_fn report,
    void *arg)
{
	memset(m, 0, sizeof(*m));
	m->admin = admin;
	m->project = admin ? NULL : project;
	m->report = report;
	m->arg = arg;
}

int
mg_mcp_version_known(const char *version)
{
	size_t i;

	for (i = 0; version != NULL && i < sizeof(versions) / sizeof(versions[0]); i++)
		if (strcmp(version, versions[i]) == 0)
			return 1;
	return 0;
}

/* {"jsonrpc":"2.0","id":id,"result":result}; takes result. */
static json_object *
answer(json_object *id, json_object *result)
{
	json_object *o = json_object_new_object();

	if (o == NULL) {
		json_object_put(result);
		return NULL;
	}
	json_object_object_add(o, "jsonrpc", json_object_new_string("2.0"));
	json_object_object_add(o, "id", id != NULL ? json_object_get(id) : NULL);
	json_object_object_add(o, "result", result);
	return o;
}

/* {"jsonrpc":"2.0","id":id,"error":{"code","message"}}. */
static json_object *
error_answer(json_object *id, int code, const char *message)
{
	json_object *o = json_object_new_object(), *e = json_object_new_object();

	if (o == NULL || e == NULL) {
		json_object_put(o);
		json_object_put(e);
		return NULL;
	}
	json_object_object_add(e, "code", json_object_new_int(code));
	json_object_object_add(e, "message", json_object_new_string(message));
	json_object_object_add(o, "jsonrpc", json_object_new_string("2.0"));
	json_object_object_add(o, "id", id != NULL ? json_object_get(id) : NULL);
	json_object_object_add(o, "error", e);
	return o;
}

static json_object *
initialize(struct mg_mcp *m, json_object *params)
{
	json_object *r = json_object_new_object(), *caps, *tcaps, *info, *v = NULL;
	const char *asked = NULL;

	if (r == NULL)
		return NULL;
	if (params != NULL && json_object_object_get_ex(params, "protocolVersion", &v) &&
	    json_object_is_type(v, json_type_string))
		asked = json_object_get_string(v);
	/* the version asked when spoken, else the latest: the client decides */
	json_object_object_add(r, "protocolVersion",
	    json_object_new_string(mg_mcp_version_known(asked) ? asked : MG_MCP_VERSION));
	caps = json_object_new_object();
	tcaps = json_object_new_object();
	info = json_object_new_object();
	json_object_object_add(tcaps, "listChanged", json_object_new_boolean(0));
	json_object_object_add(caps, "tools", tcaps);
	json_object_object_add(r, "capabilities", caps);
	json_object_object_add(info, "name", json_object_new_string(MG_MCP_NAME));
	json_object_object_add(info, "title", json_object_new_string("modelgate usage"));
	json_object_object_add(info, "version", json_object_new_string(PACKAGE_VERSION));
	json_object_object_add(r, "serverInfo", info);
	json_object_object_add(r, "instructions", json_object_new_string(m->admin ?
	    "Usage, limits, models and the bill reconciliation of every project of this "
	    "modelgate gateway. Costs are USD as exact decimal strings." :
	    "Usage, limits and models of one project of this modelgate gateway. Costs are "
	    "USD as exact decimal strings."));
	m->initialized = 1;
	return r;
}

/* The tools this session may call, for tools/list. */
static json_object *
list_tools(const struct mg_mcp *m)
{
	json_object *r = json_object_new_object(), *list = json_object_new_array();
	size_t i;
	int j;

	if (r == NULL || list == NULL) {
		json_object_put(r);
		json_object_put(list);
		return NULL;
	}
	for (i = 0; i < NTOOLS; i++) {
		const struct tool *t = &tools[i];
		json_object *o, *in, *props, *ann;

		if (t->admin_only && !m->admin)
			continue;
		o = json_object_new_object();
		in = json_object_new_object();
		props = json_object_new_object();
		ann = json_object_new_object();
		json_object_object_add(o, "name", json_object_new_string(t->name));
		json_object_object_add(o, "title", json_object_new_string(t->title));
		json_object_object_add(o, "description", json_object_new_string(t->description));
		json_object_object_add(in, "type", json_object_new_string("object"));
		for (j = 0; t->args[j] >= 0; j++)
			json_object_object_add(props, args[t->args[j]].name,
			    json_tokener_parse(args[t->args[j]].schema));
		json_object_object_add(in, "properties", props);
		json_object_object_add(in, "additionalProperties", json_object_new_boolean(0));
		json_object_object_add(o, "inputSchema", in);
		json_object_object_add(o, "outputSchema", json_tokener_parse(output_schema));
		json_object_object_add(ann, "title", json_object_new_string(t->title));
		json_object_object_add(ann, "readOnlyHint", json_object_new_boolean(1));
		json_object_object_add(ann, "destructiveHint", json_object_new_boolean(0));
		json_object_object_add(ann, "idempotentHint", json_object_new_boolean(1));
		json_object_object_add(ann, "openWorldHint", json_object_new_boolean(0));
		json_object_object_add(o, "annotations", ann);
		json_object_array_add(list, o);
	}
	json_object_object_add(r, "tools", list);
	return r;
}

/* A tool result that is an error the model can act on. */
static json_object *
tool_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_object *
tool_error(const char *fmt, ...)
{
	char msg[MG_ERR_DETAIL_LEN + 128];
	json_object *r = json_object_new_object(), *content = json_object_new_array(), *c;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c = json_object_new_object();
	json_object_object_add(c, "type", json_object_new_string("text"));
	json_object_object_add(c, "text", json_object_new_string(msg));
	json_object_array_add(content, c);
	json_object_object_add(r, "content", content);
	json_object_object_add(r, "isError", json_object_new_boolean(1));
	return r;
}

/* The index into args of argument name for tool t, or -1. */
static int
tool_arg(const struct tool *t, const char *name)
{
	int j;

	for (j = 0; t->args[j] >= 0; j++)
		if (strcmp(args[t->args[j]].name, name) == 0)
			return t->args[j];
	return -1;
}

/* Runs tool t with the arguments object a (NULL: none). */
static json_object *
call_tool(struct mg_mcp *m, const struct tool *t, json_object *a)
{
	char err[MG_ERR_DETAIL_LEN], texts[10][272];
	struct mg_report_query q;
	json_object *o = NULL, *r, *content, *c;
	enum mg_err rc;
	char *text;
	size_t textlen;
	int k = 0;

	memset(&q, 0, sizeof(q));
	if (t->admin_only && !m->admin)
		return tool_error("%s needs an admin key: it covers every project.", t->name);
	if (a != NULL) {
		json_object_object_foreach(a, name, v) {
			int i = tool_arg(t, name);
			const char **slot = i >= 0 ? mg_report_field(&q, t->report, name,
			    strlen(name)) : NULL;

			if (slot == NULL)
				return tool_error("%s takes no argument \"%.40s\".", t->name, name);
			if (strcmp(name, "by") == 0 && json_object_is_type(v, json_type_array)) {
				size_t n, at = 0;

				texts[k][0] = '\0';
				for (n = 0; n < json_object_array_length(v); n++) {
					json_object *e = json_object_array_get_idx(v, n);
					const char *s = json_object_get_string(e);

					if (!json_object_is_type(e, json_type_string) ||
					    at + strlen(s) + 2 > sizeof(texts[k]))
						return tool_error("by is a list of dimensions: project, "
						    "key, model, endpoint, status, day, hour.");
					at += (size_t)snprintf(texts[k] + at, sizeof(texts[k]) - at,
					    "%s%s", n > 0 ? "," : "", s);
				}
			} else if (strcmp(name, "limit") == 0 &&
			    json_object_is_type(v, json_type_int)) {
				snprintf(texts[k], sizeof(texts[k]), "%lld",
				    (long long)json_object_get_int64(v));
			} else if (json_object_is_type(v, json_type_string)) {
				if (strlen(json_object_get_string(v)) >= sizeof(texts[k]) - 1)
					return tool_error("%s is too long.", name);
				snprintf(texts[k], sizeof(texts[k]), "%s", json_object_get_string(v));
			} else if (json_object_is_type(v, json_type_null)) {
				continue;
			} else {
				return tool_error("%s must be %s.", name, strcmp(name, "limit") == 0 ?
				    "a whole number" : strcmp(name, "by") == 0 ?
				    "a list of dimensions" : "a string");
			}
			*slot = texts[k++];
		}
	}
	if (!m->admin) {
		if (q.project != NULL && strcmp(q.project, m->project) != 0)
			return tool_error("This key belongs to project \"%s\": it reads that "
			    "project's usage only.", m->project);
		q.project = m->project;
	}
	err[0] = '\0';
	rc = m->report(m->arg, t->report, &q, &o, err, sizeof(err));
	if (rc == MG_ERR_INVALID)
		return tool_error("%s", err);
	if (rc != MG_OK)
		return tool_error("The gateway could not answer (%s). Retry shortly.",
		    rc == MG_ERR_DB_DOWN ? "its database is unavailable" : "a database error");
	r = json_object_new_object();
	content = json_object_new_array();
	c = json_object_new_object();
	/* the report's table, as the CLI prints it */
	if (mg_format_report_text(t->report, o, MG_FORMAT_TABLE, &text, &textlen) != MG_OK)
		text = NULL;
	json_object_object_add(c, "type", json_object_new_string("text"));
	json_object_object_add(c, "text", json_object_new_string(text != NULL ? text : ""));
	free(text);
	json_object_array_add(content, c);
	json_object_object_add(r, "content", content);
	json_object_object_add(r, "structuredContent", o);
	json_object_object_add(r, "isError", json_object_new_boolean(0));
	return r;
}

/* tools/call: a result, or NULL with *code and *message for a protocol
 * error. */
static json_object *
tools_call(struct mg_mcp *m, json_object *params, int *code, const char **message)
{
	json_object *name = NULL, *a = NULL;
	size_t i;

	if (params == NULL || !json_object_is_type(params, json_type_object) ||
	    !json_object_object_get_ex(params, "name", &name) ||
	    !json_object_is_type(name, json_type_string)) {
		*code = RPC_INVALID_PARAMS;
		*message = "tools/call needs params.name, a tool's name";
		return NULL;
	}
	if (json_object_object_get_ex(params, "arguments", &a) && a != NULL &&
	    !json_object_is_type(a, json_type_object)) {
		*code = RPC_INVALID_PARAMS;
		*message = "params.arguments must be an object";
		return NULL;
	}
	for (i = 0; i < NTOOLS; i++)
		if (strcmp(tools[i].name, json_object_get_string(name)) == 0)
			return call_tool(m, &tools[i], a);
	*code = RPC_INVALID_PARAMS;
	*message = "Unknown tool: see tools/list";
	return NULL;
}

/* The answer to the message o (an object), or NULL when there is none. */
static json_object *
dispatch(struct mg_mcp *m, json_object *o, int *nomem)
{
	json_object *id = NULL, *method = NULL, *params = NULL, *v = NULL, *result = NULL;
	const char *name, *message = "Invalid params";
	int has_id, code = 0;

	has_id = json_object_object_get_ex(o, "id", &id);
	if (has_id && id != NULL && !json_object_is_type(id, json_type_string) &&
	    !json_object_is_type(id, json_type_int))
		return error_answer(NULL, RPC_INVALID_REQUEST, "id must be a string or a number");
	if (!json_object_object_get_ex(o, "jsonrpc", &v) || !json_object_is_type(v,
	    json_type_string) || strcmp(json_object_get_string(v), "2.0") != 0)
		return error_answer(id, RPC_INVALID_REQUEST, "jsonrpc must be \"2.0\"");
	if (!json_object_object_get_ex(o, "method", &method)) {
		/* a response (to nothing this server asked): nothing to say */
		if (json_object_object_get_ex(o, "result", &v) ||
		    json_object_object_get_ex(o, "error", &v))
			return NULL;
		return error_answer(id, RPC_INVALID_REQUEST, "a request needs a method");
	}
	if (!json_object_is_type(method, json_type_string))
		return error_answer(id, RPC_INVALID_REQUEST, "method must be a string");
	json_object_object_get_ex(o, "params", &params);
	if (params != NULL && !json_object_is_type(params, json_type_object) &&
	    !json_object_is_type(params, json_type_array))
		return has_id ? error_answer(id, RPC_INVALID_REQUEST,
		    "params must be an object") : NULL;
	name = json_object_get_string(method);
	if (!has_id)
		return NULL;   /* notifications: initialized, cancelled, ... */
	if (strcmp(name, "initialize") == 0)
		result = initialize(m, params);
	else if (strcmp(name, "ping") == 0)
		result = json_object_new_object();
	else if (strcmp(name, "tools/list") == 0)
		result = list_tools(m);
	else if (strcmp(name, "tools/call") == 0) {
		result = tools_call(m, params, &code, &message);
		if (result == NULL && code != 0)
			return error_answer(id, code, message);
	} else
		return error_answer(id, RPC_METHOD_NOT_FOUND, "Method not found");
	if (result == NULL) {
		*nomem = 1;
		return error_answer(id, RPC_INTERNAL_ERROR, "out of memory");
	}
	return answer(id, result);
}

enum mg_err
mg_mcp_handle(struct mg_mcp *m, const char *msg, size_t len, char **out)
{
	json_tokener *tok = json_tokener_new();
	json_object *o = NULL, *a = NULL;
	size_t end = 0;
	int nomem = 0;

	*out = NULL;
	if (tok == NULL)
		return MG_ERR_NOMEM;
	/* with its NUL, so that the text ends there (a number too); a NUL
	 * inside is not JSON */
	if (len < (size_t)INT32_MAX && memchr(msg, '\0', len) == NULL)
		o = json_tokener_parse_ex(tok, msg, (int)len + 1);
	if (o != NULL && (end = json_tokener_get_parse_end(tok)) > len)
		end = len;
	if (o == NULL || json_tokener_get_error(tok) != json_tokener_success ||
	    msg[end + strspn(msg + end, " \t\r\n")] != '\0') {
		a = error_answer(NULL, RPC_PARSE_ERROR, "Parse error: not one JSON value");
	} else if (json_object_is_type(o, json_type_array)) {
		a = error_answer(NULL, RPC_INVALID_REQUEST, "batches are not taken: one message "
		    "at a time");
	} else if (!json_object_is_type(o, json_type_object)) {
		a = error_answer(NULL, RPC_INVALID_REQUEST, "a message is a JSON object");
	} else {
		a = dispatch(m, o, &nomem);
	}
	json_tokener_free(tok);
	if (a != NULL) {
		const char *s = json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN |
		    JSON_C_TO_STRING_NOSLASHESCAPE);

		*out = s != NULL ? strdup(s) : NULL;
		if (*out == NULL)
			nomem = 1;
	}
	json_object_put(a);
	json_object_put(o);
	return nomem ? MG_ERR_NOMEM : MG_OK;
}
