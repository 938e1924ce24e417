/* sse.c -- An incremental text/event-stream parser, fed bytes split anywhere,
 * calling back once per event.  Called by the streaming relay. */
#include "config.h"

#include <string.h>

#include "sse.h"

void
mg_sse_init(struct mg_sse *p, size_t max_event)
{
	mg_buf_init(&p->line, max_event);
	mg_buf_init(&p->data, max_event);
	p->event[0] = '\0';
	p->has_data = 0;
	p->after_cr = 0;
}

void
mg_sse_free(struct mg_sse *p)
{
	if (p == NULL)
		return;
	mg_buf_free(&p->line);
	mg_buf_free(&p->data);
}

/* Handles one complete line; a blank line dispatches the event. */
static enum mg_err
end_line(struct mg_sse *p, mg_sse_cb cb, void *arg)
{
	const char *l = mg_buf_str(&p->line), *colon, *value;
	size_t n = p->line.len, flen, vlen;
	enum mg_err rc = MG_OK;

	if (n == 0) {
		if (p->has_data) {
			struct mg_sse_event ev = { mg_buf_str(&p->data), p->data.len, p->event };

			if (cb(arg, &ev) != 0)
				rc = MG_ERR_INVALID;
		}
		mg_buf_reset(&p->data);
		p->event[0] = '\0';
		p->has_data = 0;
		return rc;
	}
	if (l[0] == ':')
		goto done; /* a comment */
	colon = memchr(l, ':', n);
	flen = colon != NULL ? (size_t)(colon - l) : n;
	value = colon != NULL ? colon + 1 : l + n;
	vlen = n - (size_t)(value - l);
	if (vlen > 0 && value[0] == ' ') {
		value++;
		vlen--;
	}
	if (flen == 4 && memcmp(l, "data", 4) == 0) {
		if (p->has_data)
			rc = mg_buf_add(&p->data, "\n", 1);
		if (rc == MG_OK)
			rc = mg_buf_add(&p->data, value, vlen);
		p->has_data = 1;
	} else if (flen == 5 && memcmp(l, "event", 5) == 0) {
		if (vlen >= sizeof(p->event))
			vlen = sizeof(p->event) - 1;
		memcpy(p->event, value, vlen);
		p->event[vlen] = '\0';
	}
done:
	mg_buf_reset(&p->line);
	return rc;
}

enum mg_err
mg_sse_feed(struct mg_sse *p, const char *buf, size_t n, mg_sse_cb cb, void *arg)
{
	size_t i = 0;

	while (i < n) {
		char c = buf[i];
		enum mg_err rc;

		if (c == '\n' && p->after_cr) {
			/* the \n of a \r\n pair: the line ended at the \r */
			p->after_cr = 0;
			i++;
			continue;
		}
		p->after_cr = 0;
		if (c == '\r' || c == '\n') {
			p->after_cr = c == '\r';
			rc = end_line(p, cb, arg);
			if (rc != MG_OK)
				return rc;
			i++;
			continue;
		}
		/* copy the run of ordinary bytes at once; memchr finds its end
		 * (a \r can only come before the first \n) */
		{
			const char *lf = memchr(buf + i, '\n', n - i);
			const char *cr = memchr(buf + i, '\r', (size_t)((lf != NULL ? lf : buf + n) - (buf + i)));
			size_t j = (size_t)((cr != NULL ? cr : lf != NULL ? lf : buf + n) - buf);

			if (mg_buf_add(&p->line, buf + i, j - i) != MG_OK)
				return MG_ERR_TOO_BIG;
			i = j;
		}
	}
	return MG_OK;
}
