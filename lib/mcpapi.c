/* mcpapi.c -- POST /mcp: the MCP server of mcp.c over Streamable HTTP,
 * one message a request, answered in JSON (no event stream, no session:
 * every request carries its key).  Called by gateway.c. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "fcgi.h"
#include "log.h"
#include "mcp.h"
#include "mcpapi.h"
#include "usageapi.h"

/* The query layer for mcp.c: the responder's store. */
static enum mg_err
report(void *arg, enum mg_report r, const struct mg_report_query *q, json_object **out,
    char *err, size_t errlen)
{
	struct mg_worker *w = arg;

	return mg_usageapi_run(w->gw, r, q, out, err, errlen);
}

/* A JSON-RPC error without an id, with HTTP status status. */
static void
rpc_error(struct mg_exchange *x, int status, int code, const char *message)
{
	char body[256];
	int n = snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":"
	    "{\"code\":%d,\"message\":\"%s\"}}", code, message);

	mg_exchange_send_json(x, status, body, (size_t)n);
}

void
mg_mcpapi_handle(struct mg_worker *w, struct mg_exchange *x)
{
	const char *version = mg_fcgi_param(x->fr, "HTTP_MCP_PROTOCOL_VERSION");
	struct mg_reader who;
	struct mg_mcp m;
	char *out = NULL;
	enum mg_err rc;

	if (mg_auth_reader(w, x, &who) < 0)
		return;
	if (version != NULL && !mg_mcp_version_known(version)) {
		rpc_error(x, 400, -32600, "Unsupported MCP-Protocol-Version: this server speaks "
		    "2025-11-25, 2025-06-18, 2025-03-26 and 2024-11-05");
		return;
	}
	mg_buf_reset(&w->body);
	rc = mg_fcgi_read_body(x->fr, &w->body);
	if (rc == MG_ERR_TOO_BIG) {
		rpc_error(x, 413, -32600, "The message is larger than this gateway accepts");
		return;
	}
	if (rc != MG_OK) {
		rpc_error(x, 400, -32700, "The message could not be read to its end");
		return;
	}
	mg_mcp_init(&m, who.admin, who.project, report, w);
	if (mg_mcp_handle(&m, mg_buf_str(&w->body), w->body.len, &out) != MG_OK) {
		free(out);
		rpc_error(x, 500, -32603, "The gateway ran out of memory");
		return;
	}
	if (out == NULL) {
		/* a notification or a response: accepted, nothing to say */
		mg_exchange_send_json(x, 202, "", 0);
		return;
	}
	mg_exchange_send_json(x, 200, out, strlen(out));
	free(out);
}
