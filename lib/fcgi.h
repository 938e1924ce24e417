#ifndef MG_FCGI_H
#define MG_FCGI_H

#include <fcgiapp.h>
#include <stddef.h>

#include "buf.h"

/* FastCGI request input and output, over libfcgi's FCGX_Request. */

/* A request parameter (CGI variable), or NULL. */
const char *mg_fcgi_param(FCGX_Request *r, const char *name);

/* Reads the request body to its end into body (whose max is the cap),
 * whatever CONTENT_LENGTH says.  MG_ERR_TOO_BIG when the cap is passed
 * (the rest is read and dropped, so the server can take the answer);
 * MG_ERR_IO when the connection broke. */
enum mg_err mg_fcgi_read_body(FCGX_Request *r, struct mg_buf *body)
	__attribute__((warn_unused_result));

/* Writes a whole response: status line, Content-Type, the extra header
 * lines (each ending in \r\n, may be NULL), and len bytes of body.
 * MG_ERR_CLIENT_GONE when the write failed. */
enum mg_err mg_fcgi_reply(FCGX_Request *r, int status, const char *content_type,
    const char *extra_headers, const char *body, size_t len);

#endif
