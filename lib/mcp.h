#ifndef MG_MCP_H
#define MG_MCP_H

#include <json-c/json.h>
#include <stddef.h>

#include "err.h"
#include "report.h"

/* The Model Context Protocol server of modelgate: JSON-RPC 2.0 messages
 * in, answers out, the same for every transport (`modelgate mcp` on
 * standard input and output, POST /mcp on the responders).  Its tools
 * are the reports of report.c, asked through the transport's own way to
 * the query layer; it holds no SQL and no connection. */

/* The latest protocol version spoken, and the server's name. */
#define MG_MCP_VERSION "2025-11-25"
#define MG_MCP_NAME "modelgate"

/* Runs report r of query q (scoped already) for the transport: its object
 * into *out (the caller puts it).  MG_ERR_INVALID with a message for the
 * user in err for bad input; another error when the database failed. */
typedef enum mg_err (*mg_mcp_report_fn)(void *arg, enum mg_report r,
    const struct mg_report_query *q, json_object **out, char *err, size_t errlen);

/* One client's session. */
struct mg_mcp {
	int admin;                /* 1: every project (an operator, an admin key) */
	const char *project;      /* else the one project the key reads */
	mg_mcp_report_fn report;
	void *arg;
	int initialized;          /* initialize answered */
};

/* A session for scope (admin, or the project) and a report function. */
void mg_mcp_init(struct mg_mcp *m, int admin, const char *project, mg_mcp_report_fn report,
    void *arg);

/* Handles one JSON-RPC message (len bytes of text, then a NUL): the
 * answer's text
 * (one line of JSON, malloc'd) into *out, or NULL when there is none to
 * give (a notification, a response).  MG_ERR_NOMEM only: every fault of
 * the message is a JSON-RPC error answer. */
enum mg_err mg_mcp_handle(struct mg_mcp *m, const char *msg, size_t len, char **out)
	__attribute__((warn_unused_result));

/* 1 when version is a protocol version this server speaks. */
int mg_mcp_version_known(const char *version);

#endif
