#ifndef MG_FCGI_H
#define MG_FCGI_H

#include <fcgiapp.h>
#include <stddef.h>

#include "buf.h"
#include "err.h"

/* FastCGI request input and output, over libfcgi's FCGX_Request. */

/* A request parameter (CGI variable), or NULL. */
const char *mg_fcgi_param(FCGX_Request *r, const char *name);

/* Reads the request body to its end into body (whose max is the cap),
 * whatever CONTENT_LENGTH says.  MG_ERR_TOO_BIG when the cap is passed
 * (the rest is read and dropped, so the server can take the answer);
 * MG_ERR_IO when the connection broke. */
enum mg_err mg_fcgi_read_body(FCGX_Request *r, struct mg_buf *body)
	__attribute__((warn_unused_result));

/* Appends the header line "name: value\r\n" to the NUL-terminated text
 * in out (len bytes in all): the one builder of response header lines.
 * MG_ERR_INVALID when name is empty or holds ':', or when name or value
 * holds CR or LF; MG_ERR_TOO_BIG when the line does not fit.  On error
 * out is as it was. */
enum mg_err mg_fcgi_header_add(char *out, size_t len, const char *name, const char *value)
	__attribute__((warn_unused_result));
/* The same with the value v in decimal ("%lld"), without printf. */
enum mg_err mg_fcgi_header_addll(char *out, size_t len, const char *name, long long v)
	__attribute__((warn_unused_result));
/* The same with the value formatted as by printf. */
enum mg_err mg_fcgi_header_addf(char *out, size_t len, const char *name, const char *fmt, ...)
	__attribute__((warn_unused_result, format(printf, 4, 5)));

/* Writes a whole response: the Status line, Content-Type, the extra
 * header lines (each ending in \r\n, may be NULL; built with
 * mg_fcgi_header_add), and len bytes of body, into r's buffer: it goes
 * out with mg_fcgi_end or FCGX_Finish_r.  MG_ERR_CLIENT_GONE when the write
 * failed; MG_ERR_INVALID (nothing written) when content_type is not one
 * line. */
enum mg_err mg_fcgi_reply(FCGX_Request *r, int status, const char *content_type,
    const char *extra_headers, const char *body, size_t len);
/* Ends the response of r: what is buffered, the end of its stdout and the
 * end of the request go to the web server at once, in one write, rather
 * than when the request is finished.  Nothing can be written to r
 * afterwards; calling it again does nothing; FCGX_Finish_r still closes
 * the connection.  MG_ERR_CLIENT_GONE when the write failed. */
enum mg_err mg_fcgi_end(FCGX_Request *r);

#endif
