/* upstream.c -- The relay core: one libcurl handle per thread, reused so keep-alive
 * connections stay open; timeouts, caps and streaming callbacks.  Called
 * by the gateway, the catalog fetch and the CLI. */
#include "config.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "upstream.h"
#include "text.h"

struct mg_upstream {
	const struct mg_conf *conf;
	const char *base_url;         /* the upstream's, owned by the config */
	CURL *curl;
	CURLU *target;                /* the parsed URL of path, for curl */
	struct curl_slist *headers;
	char errbuf[CURL_ERROR_SIZE];
	char url[2048];               /* base URL + path */
	char path[256];               /* the path the URL was made for */
	int too_big;                  /* the write callback hit the cap */
	int aborted;                  /* a sink callback stopped the transfer */
	int streaming;                /* the 2xx answer goes to the sink */
	const struct mg_upstream_sink *sink;
	struct mg_upstream_reply *reply;
};

static struct mg_upstream *make(const struct mg_conf *c, const char *base_url, const char *key,
    int connect_timeout, int timeout);

static size_t
on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct mg_upstream *u = arg;
	size_t n = size * nmemb;

	if (u->sink != NULL && !u->streaming) {
		long status = 0;

		curl_easy_getinfo(u->curl, CURLINFO_RESPONSE_CODE, &status);
		if (status >= 200 && status <= 299) {
			u->streaming = 1;
			if (u->sink->on_start(u->sink->arg) != 0) {
				u->aborted = 1;
				return 0;
			}
		}
	}
	if (u->streaming) {
		if (u->sink->on_data(u->sink->arg, data, n) != 0) {
			u->aborted = 1;
			return 0;
		}
		return n;
	}
	if (mg_buf_add(&u->reply->body, data, n) != MG_OK) {
		u->too_big = 1;
		return 0;
	}
	return n;
}

/* Copies the value of header line h (len bytes) named name into dst. */
static void
take_header(const char *h, size_t len, const char *name, char *dst, size_t dlen)
{
	size_t nlen = strlen(name), vlen;
	const char *v;

	if (len <= nlen + 1 || strncasecmp(h, name, nlen) != 0 || h[nlen] != ':')
		return;
	v = h + nlen + 1;
	len -= nlen + 1;
	while (len > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		len--;
	}
	vlen = len;
	while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
		vlen--;
	if (vlen >= dlen)
		vlen = dlen - 1;
	memcpy(dst, v, vlen);
	dst[vlen] = '\0';
}

static size_t
on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct mg_upstream *u = arg;
	size_t n = size * nmemb;

	/* by the first letter: this runs for every header line */
	switch (n > 0 ? data[0] : '\0') {
	case 'H':
		/* a new status line (after a redirect or 100) starts a new set */
		if (n > 5 && strncmp(data, "HTTP/", 5) == 0) {
			u->reply->retry_after[0] = '\0';
			u->reply->content_type[0] = '\0';
		}
		break;
	case 'R':
	case 'r':
		take_header(data, n, "Retry-After", u->reply->retry_after, sizeof(u->reply->retry_after));
		break;
	case 'C':
	case 'c':
		take_header(data, n, "Content-Type", u->reply->content_type,
		    sizeof(u->reply->content_type));
		break;
	default:
		break;
	}
	return n;
}

static int
on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	struct mg_upstream *u = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	if (u->sink != NULL && u->sink->on_tick != NULL && u->sink->on_tick(u->sink->arg) != 0) {
		u->aborted = 1;
		return 1;
	}
	return 0;
}

static struct curl_slist *
add_header(struct curl_slist *list, const char *name, const char *value)
{
	char line[1200];
	struct curl_slist *n;

	if (value == NULL || value[0] == '\0')
		return list;
	snprintf(line, sizeof(line), "%s: %s", name, value);
	n = curl_slist_append(list, line);
	memset(line, 0, sizeof(line));
	if (n == NULL) {
		curl_slist_free_all(list);
		return NULL;
	}
	return n;
}

/* The content encodings this libcurl decodes, as it lists them. */
static const char *
encodings(char *out, size_t len)
{
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

	snprintf(out, len, "%s%s%s", v->features & CURL_VERSION_LIBZ ? "deflate, gzip" : "",
	    v->features & CURL_VERSION_BROTLI ? ", br" : "",
	    v->features & CURL_VERSION_ZSTD ? ", zstd" : "");
	return out[0] == ',' ? out + 2 : out;
}

/* 1 when the environment names a proxy that curl would use. */
static int
proxy_in_environment(void)
{
	static const char *const names[] = { "http_proxy", "HTTP_PROXY", "https_proxy",
		"HTTPS_PROXY", "all_proxy", "ALL_PROXY" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *v = getenv(names[i]);

		if (v != NULL && v[0] != '\0')
			return 1;
	}
	return 0;
}

struct mg_upstream *
mg_upstream_new(const struct mg_conf *c)
{
	return mg_upstream_new_key(c, c->up_key);
}

struct mg_upstream *
mg_upstream_new_key(const struct mg_conf *c, const char *key)
{
	return make(c, c->up_base_url, key, c->up_connect_timeout, c->up_timeout);
}

struct mg_upstream *
mg_upstream_new_def(const struct mg_conf *c, const struct mg_updef *d)
{
	return make(c, d->base_url, d->key, d->connect_timeout, d->timeout);
}

static struct mg_upstream *
make(const struct mg_conf *c, const char *base_url, const char *key, int connect_timeout,
    int timeout)
{
	struct mg_upstream *u = calloc(1, sizeof(*u));
	char auth[1100], enc[64];

	if (u == NULL)
		return NULL;
	u->conf = c;
	u->base_url = base_url;
	u->curl = curl_easy_init();
	u->target = curl_url();
	if (u->curl == NULL || u->target == NULL)
		goto fail;
	/* curl makes these two afresh for every transfer; as our own lines
	 * they are made once, and go first, where curl puts its own.  The
	 * encodings are those curl decodes, listed as it lists them for
	 * CURLOPT_ACCEPT_ENCODING "". */
	u->headers = add_header(NULL, "User-Agent", PACKAGE_NAME "/" PACKAGE_VERSION);
	if (u->headers != NULL)
		u->headers = add_header(u->headers, "Accept-Encoding", encodings(enc, sizeof(enc)));
	if (u->headers != NULL)
		u->headers = curl_slist_append(u->headers, "Content-Type: application/json");
	if (u->headers == NULL)
		goto fail;
	u->headers = add_header(u->headers, "Accept", "application/json");
	if (u->headers != NULL)
		u->headers = curl_slist_append(u->headers, "Expect:");
	if (u->headers != NULL && key != NULL) {
		snprintf(auth, sizeof(auth), "Bearer %s", key);
		u->headers = add_header(u->headers, "Authorization", auth);
		memset(auth, 0, sizeof(auth));
	}
	if (u->headers != NULL)
		u->headers = add_header(u->headers, "HTTP-Referer", c->up_referer);
	if (u->headers != NULL)
		u->headers = add_header(u->headers, "X-Title", c->up_title);
	if (u->headers == NULL)
		goto fail;

	curl_easy_setopt(u->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(u->curl, CURLOPT_HTTPHEADER, u->headers);
	curl_easy_setopt(u->curl, CURLOPT_ERRORBUFFER, u->errbuf);
	curl_easy_setopt(u->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(u->curl, CURLOPT_WRITEDATA, u);
	curl_easy_setopt(u->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(u->curl, CURLOPT_HEADERDATA, u);
	curl_easy_setopt(u->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(u->curl, CURLOPT_XFERINFODATA, u);
	curl_easy_setopt(u->curl, CURLOPT_CONNECTTIMEOUT, (long)connect_timeout);
	curl_easy_setopt(u->curl, CURLOPT_TIMEOUT, (long)timeout);
	curl_easy_setopt(u->curl, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(u->curl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(u->curl, CURLOPT_FOLLOWLOCATION, 0L);
	/* decoded bodies only; the relay sends them on as they are */
	curl_easy_setopt(u->curl, CURLOPT_ACCEPT_ENCODING, "");
	if (!proxy_in_environment()) {
		/* none: spares curl five getenv calls per transfer */
		curl_easy_setopt(u->curl, CURLOPT_PROXY, "");
		curl_easy_setopt(u->curl, CURLOPT_NOPROXY, "");
	}
	return u;
fail:
	mg_upstream_free(u);
	return NULL;
}

void
mg_upstream_free(struct mg_upstream *u)
{
	if (u == NULL)
		return;
	if (u->curl != NULL)
		curl_easy_cleanup(u->curl);
	curl_url_cleanup(u->target);
	curl_slist_free_all(u->headers);
	free(u);
}

void
mg_upstream_reply_init(struct mg_upstream_reply *r, size_t max)
{
	memset(r, 0, sizeof(*r));
	mg_buf_init(&r->body, max);
}

void
mg_upstream_reply_free(struct mg_upstream_reply *r)
{
	if (r != NULL)
		mg_buf_free(&r->body);
}

void
mg_upstream_set_timeout(struct mg_upstream *u, long seconds)
{
	curl_easy_setopt(u->curl, CURLOPT_TIMEOUT, seconds);
}

void
mg_upstream_set_timeout_ms(struct mg_upstream *u, long ms)
{
	curl_easy_setopt(u->curl, CURLOPT_TIMEOUT_MS, ms);
}

const char *
mg_upstream_last_error(const struct mg_upstream *u)
{
	return u->errbuf;
}

static enum mg_err
map_curl_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
		return MG_ERR_UPSTREAM_CONNECT;
	case CURLE_OPERATION_TIMEDOUT:
		return MG_ERR_UPSTREAM_TIMEOUT;
	default:
		return MG_ERR_UPSTREAM;
	}
}

/* Points the handle at base URL + path.  The URL is parsed here once per
 * path, not by curl on every transfer (CURLOPT_CURLU); a URL that does not
 * parse goes to curl as text, to fail there as before. */
static enum mg_err
set_target(struct mg_upstream *u, const char *path)
{
	int n;

	if (strcmp(path, u->path) == 0 && u->path[0] != '\0')
		return MG_OK;
	u->path[0] = '\0';
	n = snprintf(u->url, sizeof(u->url), "%s%s", u->base_url, path);
	if (n < 0 || (size_t)n >= sizeof(u->url) || strlen(path) >= sizeof(u->path))
		return MG_ERR_INVALID;
	/* the flags curl parses a CURLOPT_URL with */
	if (curl_url_set(u->target, CURLUPART_URL, u->url,
	    CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK) {
		curl_easy_setopt(u->curl, CURLOPT_CURLU, u->target);
		memcpy(u->path, path, strlen(path) + 1);
	} else {
		curl_easy_setopt(u->curl, CURLOPT_CURLU, NULL);
	}
	/* the text too: curl reports it and retries a dead connection with it */
	curl_easy_setopt(u->curl, CURLOPT_URL, u->url);
	return MG_OK;
}

static enum mg_err
perform(struct mg_upstream *u, const char *path, const char *body, size_t len,
    const struct mg_upstream_sink *sink, struct mg_upstream_reply *r)
{
	CURLcode rc;

	if (set_target(u, path) != MG_OK)
		return MG_ERR_INVALID;
	u->reply = r;
	u->sink = sink;
	u->streaming = 0;
	u->aborted = 0;
	u->too_big = 0;
	u->errbuf[0] = '\0';
	r->status = 0;
	mg_buf_reset(&r->body);
	if (body != NULL) {
		curl_easy_setopt(u->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(u->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	} else {
		curl_easy_setopt(u->curl, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(u->curl, CURLOPT_NOPROGRESS, sink != NULL ? 0L : 1L);
	rc = curl_easy_perform(u->curl);
	curl_easy_getinfo(u->curl, CURLINFO_RESPONSE_CODE, &r->status);
	u->reply = NULL;
	u->sink = NULL;
	if (u->aborted)
		return MG_ERR_CLIENT_GONE;
	if (u->too_big)
		return MG_ERR_TOO_BIG;
	if (rc != CURLE_OK) {
		if (u->errbuf[0] == '\0')
			mg_text_copy(u->errbuf, sizeof(u->errbuf), curl_easy_strerror(rc));
		return map_curl_error(rc);
	}
	return MG_OK;
}

enum mg_err
mg_upstream_call(struct mg_upstream *u, const char *path, const char *body,
    size_t len, struct mg_upstream_reply *r)
{
	return perform(u, path, body, len, NULL, r);
}

enum mg_err
mg_upstream_call_stream(struct mg_upstream *u, const char *path, const char *body,
    size_t len, const struct mg_upstream_sink *sink, struct mg_upstream_reply *r)
{
	return perform(u, path, body, len, sink, r);
}
