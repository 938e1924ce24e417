#ifndef MG_MCPAPI_H
#define MG_MCPAPI_H

#include "exchange.h"
#include "gateway.h"

/* POST /mcp: one MCP message (Streamable HTTP, JSON answers) from the
 * holder of a key: a project key reads its own project, an admin key
 * every project (mcp.c).  Answers 200 with the JSON-RPC answer, 202 for a
 * notification, 401 for a bad key, 400 for a protocol version it does not
 * speak, 413 for a body over server.max_body_bytes. */
void mg_mcpapi_handle(struct mg_worker *w, struct mg_exchange *x);

#endif
