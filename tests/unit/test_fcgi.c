#include "config.h"

#include <check.h>
#include <fcgiapp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "exchange.h"
#include "fcgi.h"
#include "unit.h"

/* mg_fcgi_header_add on out (which starts as before, len bytes in all). */
static const struct {
	const char *before;
	size_t len;
	const char *name, *value;
	enum mg_err rc;
	const char *after;
} adds[] = {
	{ "", 64, "Allow", "POST", MG_OK, "Allow: POST\r\n" },
	{ "A: b\r\n", 64, "Retry-After", "5", MG_OK, "A: b\r\nRetry-After: 5\r\n" },
	{ "", 64, "x-should-retry", "", MG_OK, "x-should-retry: \r\n" },
	/* exactly full: "A: b\r\n" and the NUL */
	{ "", 7, "A", "b", MG_OK, "A: b\r\n" },
	{ "", 6, "A", "b", MG_ERR_TOO_BIG, "" },
	{ "", 3, "A", "b", MG_ERR_TOO_BIG, "" },
	{ "", 0, "A", "b", MG_ERR_TOO_BIG, "" },
	{ "X: y\r\n", 12, "A", "b", MG_ERR_TOO_BIG, "X: y\r\n" },
	/* CR or LF in a value or a name would start a header of its own */
	{ "", 64, "Location", "/x\r\nSet-Cookie: a=b", MG_ERR_INVALID, "" },
	{ "", 64, "Location", "/x\nSet-Cookie: a=b", MG_ERR_INVALID, "" },
	{ "", 64, "Location", "/x\r", MG_ERR_INVALID, "" },
	{ "X: y\r\n", 64, "A\r\nB", "c", MG_ERR_INVALID, "X: y\r\n" },
	{ "", 64, "A\n", "c", MG_ERR_INVALID, "" },
	/* a name is not empty and holds no colon */
	{ "", 64, "", "c", MG_ERR_INVALID, "" },
	{ "", 64, "A: b", "c", MG_ERR_INVALID, "" },
};

START_TEST(header_add_table)
{
	char out[128];

	ck_assert_uint_lt(strlen(adds[_i].before), sizeof(out));
	memset(out, '#', sizeof(out));
	memcpy(out, adds[_i].before, strlen(adds[_i].before) + 1);
	ck_assert_int_eq(mg_fcgi_header_add(out, adds[_i].len, adds[_i].name, adds[_i].value),
	    adds[_i].rc);
	ck_assert_str_eq(out, adds[_i].after);
	/* nothing written past len */
	ck_assert_int_eq(out[adds[_i].len > strlen(adds[_i].after) + 1 ? adds[_i].len :
	    strlen(adds[_i].after) + 1], '#');
}
END_TEST

START_TEST(header_addf_formats)
{
	char out[64] = "";

	ck_assert_int_eq(mg_fcgi_header_addf(out, sizeof(out), "Status", "%d %s", 429,
	    "Too Many Requests"), MG_OK);
	ck_assert_int_eq(mg_fcgi_header_addf(out, sizeof(out), "retry-after-ms", "%lld",
	    1500LL), MG_OK);
	ck_assert_str_eq(out, "Status: 429 Too Many Requests\r\nretry-after-ms: 1500\r\n");
}
END_TEST

START_TEST(header_addf_refuses)
{
	char out[32] = "A: b\r\n";

	/* a formatted value with a line break */
	ck_assert_int_eq(mg_fcgi_header_addf(out, sizeof(out), "X", "%s", "1\r\nY: 2"),
	    MG_ERR_INVALID);
	ck_assert_str_eq(out, "A: b\r\n");
	/* one too long for the rest of out, and one that fits exactly */
	ck_assert_int_eq(mg_fcgi_header_addf(out, sizeof(out), "X", "%s",
	    "012345678901234567890"), MG_ERR_TOO_BIG);
	ck_assert_str_eq(out, "A: b\r\n");
	ck_assert_int_eq(mg_fcgi_header_addf(out, sizeof(out), "X", "%s",
	    "01234567890123456789"), MG_OK);
	ck_assert_str_eq(out, "A: b\r\nX: 01234567890123456789\r\n");
	ck_assert_uint_eq(strlen(out), sizeof(out) - 1);
	ck_assert_int_eq(mg_fcgi_header_addf(out, sizeof(out), "Y", "%d", 1), MG_ERR_TOO_BIG);
	ck_assert_int_eq(mg_fcgi_header_addf(out, sizeof(out), "", "%d", 1), MG_ERR_INVALID);
}
END_TEST

/* mg_fcgi_header_addll writes the line mg_fcgi_header_addf with "%lld"
 * does, refusals and undo included, for every size of out. */
START_TEST(header_addll_as_addf)
{
	static const long long values[] = {
		0, 1, -1, 9, 10, -10, 1500, 60000, 999999999999LL, LLONG_MAX, LLONG_MIN,
	};
	static const char *const names[] = { "retry-after-ms", "A", "", "A: b", "A\nB" };
	char fast[64], slow[64];
	size_t v, k, len;

	for (v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
		for (k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
			for (len = 0; len <= sizeof(fast); len++) {
				enum mg_err a, b;

				memset(fast, '#', sizeof(fast));
				/* a line before, when it fits */
				memcpy(fast, len >= 7 ? "X: y\r\n" : "", len >= 7 ? 7 : 1);
				memcpy(slow, fast, sizeof(slow));
				a = mg_fcgi_header_addll(fast, len, names[k], values[v]);
				b = mg_fcgi_header_addf(slow, len, names[k], "%lld", values[v]);
				ck_assert_msg(a == b, "%lld %s %zu: %d, not %d", values[v], names[k], len,
				    (int)a, (int)b);
				ck_assert_msg(strcmp(fast, slow) == 0, "%lld %s %zu", values[v], names[k], len);
				/* nothing written past len */
				ck_assert(len == 0 || len >= sizeof(fast) || fast[len] == '#');
			}
		}
	}
	ck_assert_int_eq(mg_fcgi_header_addll(fast, sizeof(fast), "retry-after-ms", -1500), MG_OK);
	ck_assert_str_eq(fast, "X: y\r\nretry-after-ms: -1500\r\n");
}
END_TEST

/* An exchange's request id: "req_" and 24 hex digits, the first 12 the
 * time in milliseconds, so that ids taken later sort later (the unique
 * index on usage rows grows at its right edge); its x-request-id line. */
static unsigned long long
realtime_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000;
}

START_TEST(request_id_ordered)
{
	struct mg_exchange a, b;
	unsigned long long ms0, ms1, ms;
	char line[64];
	int i;

	ms0 = realtime_ms();
	mg_exchange_begin(&a, NULL);
	ck_assert_uint_eq(strlen(a.request_id), MG_REQUEST_ID_LEN);
	ck_assert(strncmp(a.request_id, "req_", 4) == 0);
	for (i = 4; i < MG_REQUEST_ID_LEN; i++)
		ck_assert(strchr("0123456789abcdef", a.request_id[i]) != NULL);
	ck_assert_int_eq(sscanf(a.request_id + 4, "%12llx", &ms), 1);
	ms1 = realtime_ms();
	ck_assert(ms >= ms0 && ms <= ms1);
	snprintf(line, sizeof(line), "x-request-id: %s\r\n", a.request_id);
	ck_assert_str_eq(a.headers, line);
	/* a millisecond later: after it; within one: another id */
	while (realtime_ms() <= ms)
		;
	mg_exchange_begin(&b, NULL);
	ck_assert(strcmp(a.request_id, b.request_id) < 0);
	for (i = 0; i < 1000; i++) {
		mg_exchange_begin(&a, NULL);
		mg_exchange_begin(&b, NULL);
		ck_assert(strcmp(a.request_id, b.request_id) != 0);
		ck_assert(strncmp(a.request_id, b.request_id, 16) <= 0);
	}
}
END_TEST

/* A web server's side of one FastCGI request on a unix socket, and the
 * responder's side of it accepted with libfcgi, as the responders do. */
struct fcgi_pair {
	char dir[64], path[96];
	int listen_fd, client;
	FCGX_Request req;
};

static void
record(unsigned char *out, size_t *n, int type, const void *body, size_t len)
{
	unsigned char *h = out + *n;

	h[0] = 1;
	h[1] = (unsigned char)type;
	h[2] = 0;
	h[3] = 1;
	h[4] = (unsigned char)(len >> 8);
	h[5] = (unsigned char)len;
	h[6] = 0;
	h[7] = 0;
	memcpy(h + 8, body, len);
	*n += 8 + len;
}

static void
pair_open(struct fcgi_pair *p)
{
	static const unsigned char begin[8] = { 0, 1, 0, 0, 0, 0, 0, 0 };  /* responder, no keep-conn */
	static const unsigned char param[] = { 14, 4, 'R', 'E', 'Q', 'U', 'E', 'S', 'T', '_', 'M',
		'E', 'T', 'H', 'O', 'D', 'P', 'O', 'S', 'T' };
	struct sockaddr_un sa;
	unsigned char out[256];
	size_t n = 0;

	ck_assert_int_eq(FCGX_Init(), 0);
	strcpy(p->dir, "/tmp/mg-test-fcgi-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(p->dir));
	snprintf(p->path, sizeof(p->path), "%s/s", p->dir);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, p->path);
	p->listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(p->listen_fd, 0);
	ck_assert_int_eq(bind(p->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(p->listen_fd, 4), 0);
	p->client = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(p->client, 0);
	ck_assert_int_eq(connect(p->client, (struct sockaddr *)&sa, sizeof(sa)), 0);
	record(out, &n, 1, begin, sizeof(begin));              /* FCGI_BEGIN_REQUEST */
	record(out, &n, 4, param, sizeof(param));              /* FCGI_PARAMS */
	record(out, &n, 4, "", 0);
	record(out, &n, 5, "", 0);                             /* FCGI_STDIN, at its end */
	ck_assert_int_eq(write(p->client, out, n), (ssize_t)n);
	ck_assert_int_eq(FCGX_InitRequest(&p->req, p->listen_fd, 0), 0);
	ck_assert_int_eq(FCGX_Accept_r(&p->req), 0);
	ck_assert_str_eq(FCGX_GetParam("REQUEST_METHOD", p->req.envp), "POST");
	ck_assert_int_eq(FCGX_GetChar(p->req.in), EOF);
}

/* What the web server has been sent so far (without waiting), as the
 * records' types and their stdout bytes. */
static void
pair_read(struct fcgi_pair *p, char *types, size_t ntypes, char *stdout_text, size_t nout)
{
	unsigned char in[8192];
	ssize_t got;
	size_t n = 0, i = 0, t = 0, o = 0;

	while ((got = recv(p->client, in + n, sizeof(in) - n, MSG_DONTWAIT)) > 0)
		n += (size_t)got;
	while (i + 8 <= n && t + 1 < ntypes) {
		size_t len = (size_t)in[i + 4] << 8 | in[i + 5];

		ck_assert_uint_le(i + 8 + len + in[i + 6], n);
		types[t++] = (char)('0' + in[i + 1]);
		if (in[i + 1] == 6) {
			ck_assert_uint_lt(o + len, nout);
			memcpy(stdout_text + o, in + i + 8, len);
			o += len;
		}
		if (in[i + 1] == 3)  /* FCGI_END_REQUEST: app status 0, request complete */
			ck_assert(len == 8 && in[i + 8 + 3] == 0 && in[i + 8 + 4] == 0);
		i += 8 + len + in[i + 6];
	}
	ck_assert_uint_eq(i, n);
	types[t] = '\0';
	stdout_text[o] = '\0';
}

/* Finishes the request as the responders do, and checks that the web
 * server was sent nothing more: the connection is just closed. */
static void
pair_finish(struct fcgi_pair *p)
{
	char c;

	ck_assert_int_eq(FCGX_HasSeenEOF(p->req.in), EOF);
	FCGX_Detach(&p->req);
	FCGX_Finish_r(&p->req);
	ck_assert_int_eq(read(p->client, &c, 1), 0);
	FCGX_Free(&p->req, 1);
	close(p->client);
	close(p->listen_fd);
	unlink(p->path);
	rmdir(p->dir);
}

/* mg_fcgi_reply buffers the whole response; mg_fcgi_end sends it and
 * the end of the request, before the request is finished: the web server
 * has it all while the responder still writes its log line. */
START_TEST(reply_then_end)
{
	struct fcgi_pair p;
	char types[16], text[512];

	pair_open(&p);
	ck_assert_int_eq(mg_fcgi_reply(&p.req, 429, "application/json", "Retry-After: 5\r\n",
	    "{\"a\":1}", 7), MG_OK);
	pair_read(&p, types, sizeof(types), text, sizeof(text));
	ck_assert_str_eq(types, "");
	ck_assert_int_eq(mg_fcgi_end(&p.req), MG_OK);
	pair_read(&p, types, sizeof(types), text, sizeof(text));
	ck_assert_str_eq(types, "663");    /* stdout, its end, the end of the request */
	ck_assert_str_eq(text, "Status: 429 Too Many Requests\r\nContent-Type: application/json\r\n"
	    "Retry-After: 5\r\n\r\n{\"a\":1}");
	/* nothing can follow */
	ck_assert_int_lt(FCGX_PutStr("x", 1, p.req.out), 0);
	ck_assert_int_eq(mg_fcgi_end(&p.req), MG_OK);
	pair_finish(&p);
}
END_TEST

/* mg_fcgi_end after a stream's flushed events: what is still buffered,
 * the end of stdout and the end of the request, in one write. */
START_TEST(end_after_a_stream)
{
	struct fcgi_pair p;
	char types[16], text[512];

	pair_open(&p);
	ck_assert_int_eq(FCGX_PutStr("Status: 200 OK\r\n\r\ndata: 1\n\n", 27, p.req.out), 27);
	ck_assert_int_eq(FCGX_FFlush(p.req.out), 0);
	pair_read(&p, types, sizeof(types), text, sizeof(text));
	ck_assert_str_eq(types, "6");
	ck_assert_int_eq(FCGX_PutStr("data: [DONE]\n\n", 14, p.req.out), 14);
	ck_assert_int_eq(mg_fcgi_end(&p.req), MG_OK);
	pair_read(&p, types, sizeof(types), text, sizeof(text));
	ck_assert_str_eq(types, "663");
	ck_assert_str_eq(text, "data: [DONE]\n\n");
	pair_finish(&p);
}
END_TEST

static Suite *
fcgi_suite(void)
{
	Suite *s = suite_create("fcgi");
	TCase *tc = tcase_create("header_lines");

	tcase_add_loop_test(tc, header_add_table, 0, (int)(sizeof(adds) / sizeof(adds[0])));
	tcase_add_test(tc, header_addf_formats);
	tcase_add_test(tc, header_addf_refuses);
	tcase_add_test(tc, header_addll_as_addf);
	suite_add_tcase(s, tc);
	tc = tcase_create("request_id");
	tcase_add_test(tc, request_id_ordered);
	suite_add_tcase(s, tc);
	tc = tcase_create("response");
	tcase_add_test(tc, reply_then_end);
	tcase_add_test(tc, end_after_a_stream);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return mg_unit_run(fcgi_suite());
}
