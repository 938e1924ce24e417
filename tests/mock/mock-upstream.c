#include "config.h"

/*
 * mock-upstream: the project's own mock of an OpenRouter/OpenAI-compatible
 * upstream, used by the integration tests and the local demo.
 *
 * One event-loop thread (epoll, non-blocking sockets) serves every
 * connection, as a real provider's front end does: HTTP/1.1 with keep-alive
 * and pipelining, each answer written whole from a per-connection buffer.
 * A connection whose next step would block -- a scenario that sleeps, a
 * stream with delays between its tokens, a chunked or an Expect: 100-continue
 * body, a request larger than the read buffer -- is handed to a thread of
 * its own that serves it with blocking calls from then on.  Routes are
 * served under both /api/v1 and /v1; test introspection lives under /__mock.
 * Scenarios are chosen per request through options appended to the model
 * string, e.g. "openai/gpt-4o-mini;fail=500;sleep=2000".
 *
 * Billing follows OpenRouter's account APIs: every generation served is kept
 * for GET /generation (the last MOCK_GEN_STORE_SIZE) and added for good to a
 * ledger by UTC day, model and inference key, which GET /activity and
 * GET /credits (management key only) and GET /key report.
 *
 * Wire formats: /work/shared/reference/api-contract.md.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <json.h>
#include <openssl/evp.h>

/* ------------------------------------------------------------------------ */
/* Limits                                                                   */
/* ------------------------------------------------------------------------ */

#define MOCK_READ_BUF_SIZE    (64 * 1024)          /* per-connection read buffer */
#define MOCK_HEADER_MAX_BYTES (64 * 1024)          /* request line + headers */
#define MOCK_MAX_HEADERS      128
#define MOCK_BODY_MAX         ((size_t)64 * 1024 * 1024)
#define MOCK_IDLE_TIMEOUT_MS  120000               /* close silent connections */
#define MOCK_POLL_SLICE_MS    200                  /* how often waits check g_stop */
#define MOCK_SLEEP_SLICE_MS   50
#define MOCK_SEND_TIMEOUT_S   30
#define MOCK_LINGER_MS        1000                 /* drain time on close */
#define MOCK_LINGER_BYTES     (1024 * 1024)
#define MOCK_THREAD_STACK     (512 * 1024)
#define MOCK_LOOP_EVENTS      256                  /* epoll events per wait */
#define MOCK_LOOP_ACCEPTS     64                   /* accepts per wake-up */
#define MOCK_LOOP_SPARES      64                   /* closed connections kept for reuse */
#define MOCK_LOOP_OUT_HIGH    (1024 * 1024)        /* stop reading above this */
#define MOCK_LOOP_OUT_KEEP    (256 * 1024)         /* keep the buffer below this */
#define MOCK_LOOP_MAX_TOKENS  1000                 /* longer streams go to a thread */
#define MOCK_EMB_CACHE_SLOTS  64
#define MOCK_EMB_CACHE_DIM    4096                 /* larger vectors are not cached */
#define MOCK_GEN_STORE_SIZE   10000
#define MOCK_ECHO_MAX         200                  /* bytes of echoed text */
#define MOCK_JSON_DEPTH       64
#define MOCK_MAX_TOKENS       1000000
#define MOCK_MAX_DELAY_MS     3600000
#define MOCK_MAX_DIM          16384
#define MOCK_MAX_EMB_ITEMS    100000
#define MOCK_MAX_EMB_FLOATS   ((size_t)16 * 1024 * 1024)
#define MOCK_RESPONSE_MAX     ((size_t)512 * 1024 * 1024)
#define MOCK_ID_LEN           64
#define MOCK_COST_LEN         32
#define MOCK_KEY_HASH_LEN     64                   /* SHA-256 in hex */
#define MOCK_DAY_LEN          11                   /* "YYYY-MM-DD" and NUL */
#define MOCK_ACTIVITY_DAYS    30                   /* GET /activity's window */
#define MOCK_USD_MAX_NANO     ((uint64_t)1000000 * 1000000000u) /* $1M: --credits, a bill */
#define MOCK_BILL_MAX_TOKENS  ((int64_t)1000000000000)

/* Prices in units of 1e-9 USD per token. */
#define MOCK_NANO_PER_PROMPT_TOKEN     1000u   /* $1 / 1M tokens */
#define MOCK_NANO_PER_COMPLETION_TOKEN 2000u   /* $2 / 1M tokens */
#define MOCK_NANO_PER_EMBEDDING_TOKEN  100u    /* $0.1 / 1M tokens */

#define MOCK_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* ------------------------------------------------------------------------ */
/* Global state                                                             */
/* ------------------------------------------------------------------------ */

struct mock_config {
	const char *host;
	long port;
	long tokens;
	long delay_ms;
	long embedding_dim;
	const char *require_key;   /* NULL: no auth check */
	const char *pidfile;       /* NULL: none */
	long generation_delay_ms;  /* GET /generation: 404 this long after the end */
	long generation_api;       /* 0: GET /generation is a page not found, as on
	                            * upstreams without the API */
	const char *management_key; /* NULL: the management routes answer 403 */
	const char *credits;       /* total_credits of GET /credits, decimal USD */
	uint64_t credits_nano;     /* the same, parsed */
};

static struct mock_config g_cfg = {
	.host = "127.0.0.1",
	.port = 0,
	.tokens = 5,
	.delay_ms = 0,
	.embedding_dim = 8,
	.require_key = NULL,
	.pidfile = NULL,
	.generation_delay_ms = 0,
	.generation_api = 1,
	.management_key = NULL,
	.credits = "100",
	.credits_nano = (uint64_t)100 * 1000000000u,
};

static atomic_int g_stop;                 /* set once on SIGTERM/SIGINT */
static atomic_long g_active_conns;        /* connection threads alive (handed off) */
static atomic_ulong g_gen_counter;        /* suffix of generated ids */

static atomic_ulong g_stat_requests;      /* all API requests */
static atomic_ulong g_stat_chat;          /* POST chat/completions */
static atomic_ulong g_stat_embeddings;    /* POST embeddings */
static atomic_ulong g_stat_models;        /* GET models, embeddings/models */
static atomic_ulong g_stat_generations;   /* GET /generation lookups */
static atomic_long g_open_streams;        /* streams currently being sent */
static atomic_ulong g_stat_connections;   /* TCP connections accepted */

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static int64_t clock_ms(clockid_t clk)
{
	struct timespec ts;

	if (clock_gettime(clk, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Parses a whole decimal string into [min, max]; returns 0 or -1. */
static int parse_long_text(const char *s, long min, long max, long *out)
{
	char *end = NULL;
	long v;

	if (s == NULL || (*s != '-' && (*s < '0' || *s > '9')))
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Writes nano (1e-9 USD) as an exact decimal without exponent. */
static void format_usd_nano(uint64_t nano, char *out, size_t out_len)
{
	uint64_t whole = nano / 1000000000u;
	uint64_t frac = nano % 1000000000u;
	char digits[16];
	size_t n;

	if (frac == 0) {
		snprintf(out, out_len, "%" PRIu64, whole);
		return;
	}
	snprintf(digits, sizeof digits, "%09" PRIu64, frac);
	n = strlen(digits);
	while (n > 0 && digits[n - 1] == '0')
		n--;
	digits[n] = '\0';
	snprintf(out, out_len, "%" PRIu64 ".%s", whole, digits);
}

static uint64_t chat_cost_nano(long prompt, long completion)
{
	return (uint64_t)prompt * MOCK_NANO_PER_PROMPT_TOKEN +
	       (uint64_t)completion * MOCK_NANO_PER_COMPLETION_TOKEN;
}

/* Length of s[0..len) cut to at most max bytes without splitting a UTF-8
 * sequence. */
static size_t utf8_truncate(const char *s, size_t len, size_t max)
{
	size_t cut;

	if (len <= max)
		return len;
	cut = max;
	while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
		cut--;
	return cut;
}

static bool is_space_byte(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
	       ch == '\f' || ch == '\v';
}

static long count_words(const char *s, size_t len)
{
	long words = 0;
	bool in_word = false;
	size_t i;

	for (i = 0; i < len; i++) {
		bool space = is_space_byte(s[i]);

		if (!space && !in_word)
			words++;
		in_word = !space;
	}
	return words;
}

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME  0x100000001b3ULL

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= p[i];
		h *= FNV_PRIME;
	}
	return h;
}

static void make_generation_id(const char *prefix, char *out, size_t out_len)
{
	unsigned long n = atomic_fetch_add(&g_gen_counter, 1) + 1;

	snprintf(out, out_len, "%s%lld-%lu", prefix, (long long)time(NULL), n);
}

static int hex_value(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Parses a decimal USD amount ("12", "0.0123": digits, at most 9 of them
 * after the point, no sign or exponent) into nano-USD.  Returns 0, or -1 when
 * malformed or above max_nano. */
static int parse_usd_nano(const char *s, uint64_t max_nano, uint64_t *out)
{
	uint64_t whole = 0;
	uint64_t frac = 0;
	int digits = 0;
	int k;

	for (; *s >= '0' && *s <= '9'; s++) {
		if (++digits > 10)
			return -1;   /* keeps whole * 1e9 inside 64 bits */
		whole = whole * 10 + (uint64_t)(*s - '0');
	}
	if (digits == 0)
		return -1;
	if (*s == '.') {
		s++;
		for (k = 0; *s >= '0' && *s <= '9'; s++, k++) {
			if (k == 9)
				return -1;
			frac = frac * 10 + (uint64_t)(*s - '0');
		}
		if (k == 0)
			return -1;
		for (; k < 9; k++)
			frac *= 10;
	}
	if (*s != '\0' || whole * 1000000000u + frac > max_nano)
		return -1;
	*out = whole * 1000000000u + frac;
	return 0;
}

/* UTC days since 1970-01-01 of t (t >= 0). */
static int64_t utc_day(time_t t)
{
	return (int64_t)(t / 86400);
}

/* Writes day (UTC days since 1970-01-01, before year 10000) as "YYYY-MM-DD"
 * into out (MOCK_DAY_LEN bytes or more). */
static void format_utc_day(int64_t day, char *out, size_t out_len)
{
	time_t t = (time_t)(day * 86400);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(out, out_len, "%Y-%m-%d", &tm) == 0)
		snprintf(out, out_len, "1970-01-01");
}

/* Parses "YYYY-MM-DD", a real day from 1970-01-01 on, into UTC days since
 * 1970-01-01.  Returns 0, or -1 when malformed (2023-02-30, month 13 ...). */
static int parse_utc_day(const char *s, int64_t *out)
{
	static const char shape[] = "dddd-dd-dd";
	char again[MOCK_DAY_LEN];
	struct tm tm;
	time_t t;
	size_t i;

	if (strlen(s) != sizeof shape - 1)
		return -1;
	for (i = 0; shape[i] != '\0'; i++) {
		if (shape[i] == 'd' ? s[i] < '0' || s[i] > '9' : s[i] != shape[i])
			return -1;
	}
	memset(&tm, 0, sizeof tm);
	tm.tm_year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 +
		     (s[3] - '0') - 1900;
	tm.tm_mon = (s[5] - '0') * 10 + (s[6] - '0') - 1;
	tm.tm_mday = (s[8] - '0') * 10 + (s[9] - '0');
	if (tm.tm_year < 70)
		return -1;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	/* timegm normalizes an impossible day into another one */
	format_utc_day(utc_day(t), again, sizeof again);
	if (strcmp(again, s) != 0)
		return -1;
	*out = utc_day(t);
	return 0;
}

/* The first day of the UTC week (weeks start on Monday) and of the UTC month
 * that hold day. */
static void utc_period_starts(int64_t day, int64_t *week, int64_t *month)
{
	time_t t = (time_t)(day * 86400);
	struct tm tm;

	*week = day - (day + 3) % 7;   /* 1970-01-01 was a Thursday */
	*month = gmtime_r(&t, &tm) != NULL ? day - (tm.tm_mday - 1) : day;
}

/* The last token each thread hashed, and its hash: a client sends the same
 * key request after request. */
static __thread char t_hashed_token[128];
static __thread char t_hashed_hex[MOCK_KEY_HASH_LEN + 1];

/* Writes the SHA-256 of token (NULL: of the empty string) as lowercase hex
 * into out (MOCK_KEY_HASH_LEN + 1 bytes).  Returns 0 or -1. */
static int key_hash_hex(const char *token, char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	size_t len;
	unsigned int i;

	if (token == NULL)
		token = "";
	len = strlen(token);
	if (t_hashed_hex[0] != '\0' && strcmp(token, t_hashed_token) == 0) {
		memcpy(out, t_hashed_hex, sizeof t_hashed_hex);
		return 0;
	}
	if (EVP_Digest(token, len, md, &md_len, EVP_sha256(), NULL) != 1 ||
	    md_len * 2 != MOCK_KEY_HASH_LEN)
		return -1;
	for (i = 0; i < md_len; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[MOCK_KEY_HASH_LEN] = '\0';
	if (len < sizeof t_hashed_token) {
		memcpy(t_hashed_token, token, len + 1);
		memcpy(t_hashed_hex, out, sizeof t_hashed_hex);
	}
	return 0;
}

/* True when s is MOCK_KEY_HASH_LEN hex digits; lowercases them in place. */
static bool key_hash_normalize(char *s)
{
	size_t i;

	for (i = 0; i < MOCK_KEY_HASH_LEN; i++) {
		if (hex_value(s[i]) < 0)
			return false;
		if (s[i] >= 'A' && s[i] <= 'F')
			s[i] = (char)(s[i] - 'A' + 'a');
	}
	return s[i] == '\0';
}

/* ------------------------------------------------------------------------ */
/* Growable, capped string buffer                                           */
/* ------------------------------------------------------------------------ */

struct strbuf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;   /* hard cap on len */
};

static void sb_init(struct strbuf *sb, size_t max)
{
	sb->data = NULL;
	sb->len = 0;
	sb->cap = 0;
	sb->max = max;
}

static void sb_free(struct strbuf *sb)
{
	free(sb->data);
	sb->data = NULL;
	sb->len = 0;
	sb->cap = 0;
}

static int sb_reserve(struct strbuf *sb, size_t extra)
{
	size_t need;
	size_t ncap;
	char *p;

	if (extra > sb->max - sb->len)
		return -1;
	need = sb->len + extra + 1;
	if (need <= sb->cap)
		return 0;
	ncap = sb->cap ? sb->cap : 256;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2) {
			ncap = need;
			break;
		}
		ncap *= 2;
	}
	p = realloc(sb->data, ncap);
	if (p == NULL)
		return -1;
	sb->data = p;
	sb->cap = ncap;
	return 0;
}

static int sb_append(struct strbuf *sb, const void *data, size_t n)
{
	if (sb_reserve(sb, n) != 0)
		return -1;
	if (n > 0)
		memcpy(sb->data + sb->len, data, n);
	sb->len += n;
	sb->data[sb->len] = '\0';
	return 0;
}

static int sb_append_str(struct strbuf *sb, const char *s)
{
	return sb_append(sb, s, strlen(s));
}

static int sb_appendf(struct strbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int sb_appendf(struct strbuf *sb, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof tmp)
		return sb_append(sb, tmp, (size_t)n);
	if (sb_reserve(sb, (size_t)n) != 0)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	sb->len += (size_t)n;
	return 0;
}

/* Appends s as a JSON string literal, escaped as json-c escapes it (no
 * "\/"); bytes from 0x80 are copied as they are. */
static int sb_append_json_string(struct strbuf *sb, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;
	char *out;

	/* the worst case: every byte as \u00XX */
	if (len > (SIZE_MAX - 2) / 6 || sb_reserve(sb, len * 6 + 2) != 0)
		return -1;
	out = sb->data + sb->len;
	*out++ = '"';
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		switch (ch) {
		case '"':  *out++ = '\\'; *out++ = '"'; break;
		case '\\': *out++ = '\\'; *out++ = '\\'; break;
		case '\b': *out++ = '\\'; *out++ = 'b'; break;
		case '\f': *out++ = '\\'; *out++ = 'f'; break;
		case '\n': *out++ = '\\'; *out++ = 'n'; break;
		case '\r': *out++ = '\\'; *out++ = 'r'; break;
		case '\t': *out++ = '\\'; *out++ = 't'; break;
		default:
			if (ch < 0x20) {
				memcpy(out, "\\u00", 4);
				out[4] = hex[ch >> 4];
				out[5] = hex[ch & 15];
				out += 6;
			} else {
				*out++ = (char)ch;
			}
		}
	}
	*out++ = '"';
	sb->len = (size_t)(out - sb->data);
	sb->data[sb->len] = '\0';
	return 0;
}

static int sb_append_base64(struct strbuf *sb, const unsigned char *src, size_t n)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t out_len = (n + 2) / 3 * 4;
	char *out;
	size_t i;

	if (sb_reserve(sb, out_len) != 0)
		return -1;
	out = sb->data + sb->len;
	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];

		*out++ = alphabet[(v >> 18) & 63];
		*out++ = alphabet[(v >> 12) & 63];
		*out++ = alphabet[(v >> 6) & 63];
		*out++ = alphabet[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)src[i] << 16;

		*out++ = alphabet[(v >> 18) & 63];
		*out++ = alphabet[(v >> 12) & 63];
		*out++ = '=';
		*out++ = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;

		*out++ = alphabet[(v >> 18) & 63];
		*out++ = alphabet[(v >> 12) & 63];
		*out++ = alphabet[(v >> 6) & 63];
		*out++ = '=';
	}
	sb->len += out_len;
	sb->data[sb->len] = '\0';
	return 0;
}

/* ------------------------------------------------------------------------ */
/* json-c builder: every failure is remembered in b->ok                     */
/* ------------------------------------------------------------------------ */

struct jb {
	bool ok;
};

static struct json_object *jb_check(struct jb *b, struct json_object *o)
{
	if (o == NULL)
		b->ok = false;
	return o;
}

static struct json_object *jb_object(struct jb *b)
{
	return jb_check(b, json_object_new_object());
}

static struct json_object *jb_array(struct jb *b)
{
	return jb_check(b, json_object_new_array());
}

static struct json_object *jb_string(struct jb *b, const char *s)
{
	return jb_check(b, json_object_new_string(s));
}

static struct json_object *jb_string_len(struct jb *b, const char *s, size_t len)
{
	if (len > INT_MAX) {
		b->ok = false;
		return NULL;
	}
	return jb_check(b, json_object_new_string_len(s, (int)len));
}

static struct json_object *jb_int(struct jb *b, int64_t v)
{
	return jb_check(b, json_object_new_int64(v));
}

static struct json_object *jb_bool(struct jb *b, bool v)
{
	return jb_check(b, json_object_new_boolean(v ? 1 : 0));
}

/* A number whose JSON text is exactly `text` (e.g. an exact decimal cost). */
static struct json_object *jb_number_text(struct jb *b, const char *text)
{
	return jb_check(b, json_object_new_double_s(0.0, text));
}

static void jb_set(struct jb *b, struct json_object *obj, const char *key,
		   struct json_object *val)
{
	if (obj == NULL || val == NULL) {
		b->ok = false;
		json_object_put(val);
		return;
	}
	if (json_object_object_add(obj, key, val) != 0) {
		b->ok = false;
		json_object_put(val);
	}
}

static void jb_set_null(struct jb *b, struct json_object *obj, const char *key)
{
	if (obj == NULL || json_object_object_add(obj, key, NULL) != 0)
		b->ok = false;
}

static void jb_push(struct jb *b, struct json_object *arr, struct json_object *val)
{
	if (arr == NULL || val == NULL) {
		b->ok = false;
		json_object_put(val);
		return;
	}
	if (json_object_array_add(arr, val) != 0) {
		b->ok = false;
		json_object_put(val);
	}
}

/* The event loop's tokener, kept from one request to the next (a new one
 * is a few allocations, one of them large); NULL in other threads. */
static __thread struct json_tokener *t_tokener;

/* Parses a complete JSON document; NULL if invalid or trailing garbage. */
static struct json_object *json_parse_body(const char *body, size_t len)
{
	struct json_tokener *tok = t_tokener;
	struct json_object *obj;
	size_t end;

	if (len > INT_MAX)
		return NULL;
	if (tok != NULL)
		json_tokener_reset(tok);
	else
		tok = json_tokener_new_ex(MOCK_JSON_DEPTH);
	if (tok == NULL)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
	obj = json_tokener_parse_ex(tok, body, (int)len);
	if (obj == NULL || json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(obj);
		obj = NULL;
		goto out;
	}
	for (end = json_tokener_get_parse_end(tok); end < len; end++) {
		if (!is_space_byte(body[end])) {
			json_object_put(obj);
			obj = NULL;
			break;
		}
	}
out:
	if (tok != t_tokener)
		json_tokener_free(tok);
	return obj;
}

static struct json_object *json_get(struct json_object *obj, const char *key)
{
	struct json_object *val = NULL;

	if (obj == NULL || !json_object_is_type(obj, json_type_object))
		return NULL;
	if (!json_object_object_get_ex(obj, key, &val))
		return NULL;
	return val;
}

/* ------------------------------------------------------------------------ */
/* Billing ledger: every billed generation for the life of the process,     */
/* summed by UTC day, model and inference key                               */
/* ------------------------------------------------------------------------ */

#define LEDGER_NONE SIZE_MAX   /* end of a bucket's chain */

struct ledger_entry {
	int64_t day;                          /* UTC days since 1970-01-01 */
	char *model;                          /* owned; freed only by ledger_free */
	char key_hash[MOCK_KEY_HASH_LEN + 1]; /* SHA-256 hex of the inference key */
	uint64_t hash;                        /* of (day, model, key_hash) */
	size_t next;                          /* next entry of the bucket */
	uint64_t requests;
	uint64_t prompt_tokens;
	uint64_t completion_tokens;
	uint64_t cost_nano;                   /* 1e-9 USD */
};

/* Sums over some entries: one report row, or the totals. */
struct ledger_sums {
	uint64_t requests;
	uint64_t prompt_tokens;
	uint64_t completion_tokens;
	uint64_t cost_nano;
};

/* One row of a report: the sums of a day and model. */
struct ledger_row {
	int64_t day;
	const char *model;   /* the ledger's string, valid until ledger_free */
	struct ledger_sums sums;
};

enum ledger_status {
	LEDGER_OK = 0,       /* added */
	LEDGER_NO_MEMORY,    /* nothing added */
	LEDGER_OVERFLOW      /* nothing added: a total would pass INT64_MAX */
};

static struct ledger_entry *g_ledger;  /* g_ledger_len used of g_ledger_cap */
static size_t g_ledger_len;
static size_t g_ledger_cap;
static size_t *g_ledger_buckets;       /* g_ledger_cap heads (a power of two) */
static struct ledger_sums g_ledger_total;
static pthread_mutex_t g_ledger_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t ledger_hash(int64_t day, const char *model, const char *key_hash)
{
	unsigned char le[8];
	uint64_t h;
	int k;

	for (k = 0; k < 8; k++)
		le[k] = (unsigned char)((uint64_t)day >> (8 * k));
	h = fnv1a(FNV_OFFSET, le, sizeof le);
	h = fnv1a(h, (const unsigned char *)model, strlen(model) + 1);
	return fnv1a(h, (const unsigned char *)key_hash, MOCK_KEY_HASH_LEN);
}

/* Makes room for one more entry, doubling the entries and the buckets
 * together; call with the lock held.  Returns 0 or -1. */
static int ledger_reserve(void)
{
	struct ledger_entry *entries;
	size_t *buckets;
	size_t ncap;
	size_t i;

	if (g_ledger_len < g_ledger_cap)
		return 0;
	if (g_ledger_cap > SIZE_MAX / 2 / sizeof *entries)
		return -1;
	ncap = g_ledger_cap > 0 ? g_ledger_cap * 2 : 64;
	buckets = malloc(ncap * sizeof *buckets);
	if (buckets == NULL)
		return -1;
	entries = realloc(g_ledger, ncap * sizeof *entries);
	if (entries == NULL) {
		free(buckets);
		return -1;
	}
	for (i = 0; i < ncap; i++)
		buckets[i] = LEDGER_NONE;
	for (i = 0; i < g_ledger_len; i++) {
		size_t slot = (size_t)(entries[i].hash & (ncap - 1));

		entries[i].next = buckets[slot];
		buckets[slot] = i;
	}
	free(g_ledger_buckets);
	g_ledger = entries;
	g_ledger_buckets = buckets;
	g_ledger_cap = ncap;
	return 0;
}

static bool sum_fits(uint64_t total, uint64_t add)
{
	return add <= (uint64_t)INT64_MAX - total;
}

static void sums_add(struct ledger_sums *to, const struct ledger_sums *add)
{
	to->requests += add->requests;
	to->prompt_tokens += add->prompt_tokens;
	to->completion_tokens += add->completion_tokens;
	to->cost_nano += add->cost_nano;
}

/* Adds one billed request of model on day for the key whose hash is
 * key_hash.  Thread-safe.  Every total (and so every sum of entries) stays
 * within INT64_MAX, so reports can write them as JSON integers. */
static enum ledger_status ledger_add(int64_t day, const char *model, const char *key_hash,
				     uint64_t prompt, uint64_t completion, uint64_t cost_nano)
{
	struct ledger_sums add = { 1, prompt, completion, cost_nano };
	uint64_t h = ledger_hash(day, model, key_hash);
	enum ledger_status st = LEDGER_OVERFLOW;
	struct ledger_entry *e = NULL;
	size_t i;

	pthread_mutex_lock(&g_ledger_lock);
	if (!sum_fits(g_ledger_total.requests, add.requests) ||
	    !sum_fits(g_ledger_total.prompt_tokens, add.prompt_tokens) ||
	    !sum_fits(g_ledger_total.completion_tokens, add.completion_tokens) ||
	    !sum_fits(g_ledger_total.cost_nano, add.cost_nano))
		goto out;
	for (i = g_ledger_cap > 0 ? g_ledger_buckets[h & (g_ledger_cap - 1)] : LEDGER_NONE;
	     i != LEDGER_NONE; i = g_ledger[i].next) {
		if (g_ledger[i].hash == h && g_ledger[i].day == day &&
		    strcmp(g_ledger[i].model, model) == 0 &&
		    strcmp(g_ledger[i].key_hash, key_hash) == 0) {
			e = &g_ledger[i];
			break;
		}
	}
	if (e == NULL) {
		char *model_copy;
		size_t slot;

		st = LEDGER_NO_MEMORY;
		if (ledger_reserve() != 0)
			goto out;
		model_copy = strdup(model);
		if (model_copy == NULL)
			goto out;
		e = &g_ledger[g_ledger_len];
		memset(e, 0, sizeof *e);
		e->day = day;
		e->model = model_copy;
		snprintf(e->key_hash, sizeof e->key_hash, "%s", key_hash);
		e->hash = h;
		slot = (size_t)(h & (g_ledger_cap - 1));
		e->next = g_ledger_buckets[slot];
		g_ledger_buckets[slot] = g_ledger_len;
		g_ledger_len++;
	}
	e->requests += add.requests;
	e->prompt_tokens += add.prompt_tokens;
	e->completion_tokens += add.completion_tokens;
	e->cost_nano += add.cost_nano;
	sums_add(&g_ledger_total, &add);
	st = LEDGER_OK;
out:
	pthread_mutex_unlock(&g_ledger_lock);
	return st;
}

static int ledger_row_cmp(const void *a, const void *b)
{
	const struct ledger_row *x = a;
	const struct ledger_row *y = b;

	if (x->day != y->day)
		return x->day < y->day ? -1 : 1;
	return strcmp(x->model, y->model);
}

/* The sums of days [from, to] by day and model, over every key or only the
 * key whose hash is key_hash (non-NULL), sorted by day then model: a new
 * array in *rows (the caller frees it; NULL when empty) of *n_rows.
 * Thread-safe.  Returns 0 or -1 (out of memory). */
static int ledger_report(int64_t from, int64_t to, const char *key_hash,
			 struct ledger_row **rows, size_t *n_rows)
{
	struct ledger_row *out = NULL;
	size_t n = 0;
	size_t kept = 0;
	size_t i;
	int rc = -1;

	*rows = NULL;
	*n_rows = 0;
	pthread_mutex_lock(&g_ledger_lock);
	if (g_ledger_len > 0) {
		out = calloc(g_ledger_len, sizeof *out);
		if (out == NULL)
			goto out_unlock;
	}
	for (i = 0; i < g_ledger_len; i++) {
		const struct ledger_entry *e = &g_ledger[i];

		if (e->day < from || e->day > to ||
		    (key_hash != NULL && strcmp(e->key_hash, key_hash) != 0))
			continue;
		out[n].day = e->day;
		out[n].model = e->model;
		out[n].sums.requests = e->requests;
		out[n].sums.prompt_tokens = e->prompt_tokens;
		out[n].sums.completion_tokens = e->completion_tokens;
		out[n].sums.cost_nano = e->cost_nano;
		n++;
	}
	rc = 0;
out_unlock:
	pthread_mutex_unlock(&g_ledger_lock);
	if (rc != 0)
		return rc;
	if (n == 0) {
		free(out);
		return 0;
	}
	/* one row per (day, model): the keys' entries merged */
	qsort(out, n, sizeof *out, ledger_row_cmp);
	for (i = 1; i < n; i++) {
		if (ledger_row_cmp(&out[kept], &out[i]) == 0)
			sums_add(&out[kept].sums, &out[i].sums);
		else
			out[++kept] = out[i];
	}
	*rows = out;
	*n_rows = kept + 1;
	return 0;
}

/* What the key whose hash is key_hash was billed: over all time, and from
 * the days day_from[k] (k < n) on, up to and including the day to.
 * Thread-safe. */
static void ledger_key_costs(const char *key_hash, int64_t to, const int64_t *day_from,
			     size_t n, uint64_t *all_time, uint64_t *since)
{
	size_t i;
	size_t k;

	*all_time = 0;
	for (k = 0; k < n; k++)
		since[k] = 0;
	pthread_mutex_lock(&g_ledger_lock);
	for (i = 0; i < g_ledger_len; i++) {
		const struct ledger_entry *e = &g_ledger[i];

		if (strcmp(e->key_hash, key_hash) != 0)
			continue;
		*all_time += e->cost_nano;
		for (k = 0; k < n; k++) {
			if (e->day >= day_from[k] && e->day <= to)
				since[k] += e->cost_nano;
		}
	}
	pthread_mutex_unlock(&g_ledger_lock);
}

/* Everything billed, all keys, all time.  Thread-safe. */
static uint64_t ledger_total_cost(void)
{
	uint64_t cost;

	pthread_mutex_lock(&g_ledger_lock);
	cost = g_ledger_total.cost_nano;
	pthread_mutex_unlock(&g_ledger_lock);
	return cost;
}

/* At exit, once no connection thread runs. */
static void ledger_free(void)
{
	size_t i;

	pthread_mutex_lock(&g_ledger_lock);
	for (i = 0; i < g_ledger_len; i++)
		free(g_ledger[i].model);
	free(g_ledger);
	free(g_ledger_buckets);
	g_ledger = NULL;
	g_ledger_buckets = NULL;
	g_ledger_len = 0;
	g_ledger_cap = 0;
	pthread_mutex_unlock(&g_ledger_lock);
}

/* ------------------------------------------------------------------------ */
/* Generation store: the last MOCK_GEN_STORE_SIZE generations, by id        */
/* ------------------------------------------------------------------------ */

struct gen_record {
	bool used;
	char id[MOCK_ID_LEN];
	char *model;                 /* owned */
	char cost[MOCK_COST_LEN];    /* exact decimal USD */
	long prompt_tokens;
	long completion_tokens;
	bool streamed;
	time_t created;
	int64_t ready_ms;            /* CLOCK_MONOTONIC: /generation knows it from then */
};

static struct gen_record g_gens[MOCK_GEN_STORE_SIZE];
static size_t g_gen_next;
static pthread_mutex_t g_gen_lock = PTHREAD_MUTEX_INITIALIZER;

/* Bills a generation: keeps it for GET /generation and adds it to the
 * ledger under key_hash (the SHA-256 hex of the caller's key). */
static void gen_store_add(const char *id, const char *model, const char *key_hash,
			  long prompt, long completion, uint64_t cost_nano, bool streamed)
{
	time_t now = time(NULL);
	char *model_copy;
	char *old_model;
	struct gen_record *rec;

	if (ledger_add(utc_day(now), model, key_hash, (uint64_t)prompt, (uint64_t)completion,
		       cost_nano) != LEDGER_OK)
		fprintf(stderr, "mock-upstream: generation %s is missing from the ledger "
			"(out of memory or totals full)\n", id);
	model_copy = strdup(model);
	if (model_copy == NULL)
		return;   /* GET /generation simply forgets this generation */
	pthread_mutex_lock(&g_gen_lock);
	rec = &g_gens[g_gen_next];
	g_gen_next = (g_gen_next + 1) % MOCK_GEN_STORE_SIZE;
	old_model = rec->model;
	rec->used = true;
	snprintf(rec->id, sizeof rec->id, "%s", id);
	rec->model = model_copy;
	format_usd_nano(cost_nano, rec->cost, sizeof rec->cost);
	rec->prompt_tokens = prompt;
	rec->completion_tokens = completion;
	rec->streamed = streamed;
	rec->created = now;
	rec->ready_ms = clock_ms(CLOCK_MONOTONIC) + g_cfg.generation_delay_ms;
	pthread_mutex_unlock(&g_gen_lock);
	free(old_model);
}

/* Copies the record for id into *out (out->model is a new string the caller
 * frees); returns 0, or -1 when unknown or out of memory. */
static int gen_store_find(const char *id, struct gen_record *out)
{
	size_t i;
	int rc = -1;

	pthread_mutex_lock(&g_gen_lock);
	for (i = 0; i < MOCK_GEN_STORE_SIZE; i++) {
		size_t slot = (g_gen_next + MOCK_GEN_STORE_SIZE - 1 - i) % MOCK_GEN_STORE_SIZE;
		const struct gen_record *rec = &g_gens[slot];

		if (!rec->used)
			break;
		if (strcmp(rec->id, id) == 0) {
			*out = *rec;
			out->model = strdup(rec->model);
			rc = out->model != NULL ? 0 : -1;
			break;
		}
	}
	pthread_mutex_unlock(&g_gen_lock);
	return rc;
}

static void gen_store_free(void)
{
	size_t i;

	pthread_mutex_lock(&g_gen_lock);
	for (i = 0; i < MOCK_GEN_STORE_SIZE; i++) {
		free(g_gens[i].model);
		g_gens[i].model = NULL;
		g_gens[i].used = false;
	}
	pthread_mutex_unlock(&g_gen_lock);
}

/* ------------------------------------------------------------------------ */
/* Connections and requests                                                 */
/* ------------------------------------------------------------------------ */

struct mock_header {
	char *name;    /* lowercased, in conn->hbuf */
	char *value;   /* trimmed, in conn->hbuf */
};

struct mock_request {
	char *method;
	char *path;        /* without query */
	char *query;       /* after '?', "" if none */
	int minor_version; /* HTTP/1.x */
	struct mock_header headers[MOCK_MAX_HEADERS];
	size_t n_headers;
	char *body;        /* owned, NUL-terminated */
	size_t body_len;
	bool keep_alive;
	bool head;         /* HEAD request: send no body */
};

enum mock_route {
	ROUTE_CHAT,              /* POST chat/completions */
	ROUTE_EMBEDDINGS,        /* POST embeddings */
	ROUTE_MODELS,            /* GET models */
	ROUTE_EMBEDDING_MODELS,  /* GET embeddings/models */
	ROUTE_GENERATION,        /* GET generation?id= */
	ROUTE_KEY,               /* GET key: inference or management key */
	ROUTE_ACTIVITY,          /* GET activity: management key only */
	ROUTE_CREDITS            /* GET credits: management key only */
};

/* An API request once routed and authenticated: what route_call() serves. */
struct mock_call {
	enum mock_route route;
	bool management;                         /* it carries the management key */
	char key_hash[MOCK_KEY_HASH_LEN + 1];    /* SHA-256 hex of its bearer token */
};

enum conn_state {
	CONN_READING = 0,   /* serving requests */
	CONN_FLUSHING,      /* writing the last answer, then closing */
	CONN_LINGERING      /* write side shut; reading until the peer closes */
};

struct mock_conn {
	int fd;
	char rbuf[MOCK_READ_BUF_SIZE];
	size_t rstart;                     /* unconsumed bytes: rbuf[rstart..rend) */
	size_t rend;
	char hbuf[MOCK_HEADER_MAX_BYTES];  /* copies of this request's head lines */
	size_t hlen;
	struct mock_call call;             /* the API request being served */
	/* in the event loop: */
	bool in_loop;                      /* answers go to out, never block */
	bool deferred;                     /* a handler needs to block: hand off */
	bool held;                         /* held_req waits for the thread */
	struct mock_request held_req;      /* the deferred request (owns its body) */
	struct strbuf out;                 /* answers not written yet: out[out_sent..) */
	size_t out_sent;
	enum conn_state state;
	bool linger;                       /* shut down and drain before closing */
	bool want_out;                     /* waiting for EPOLLOUT */
	bool watched;                      /* in the loop's epoll set */
	int64_t active_ms;                 /* last progress, CLOCK_MONOTONIC */
	size_t drained;                    /* bytes discarded while lingering */
	struct mock_conn *prev;            /* the loop's list of connections */
	struct mock_conn *next;
};

enum read_status {
	READ_OK = 0,            /* a whole request was read */
	READ_CLOSED,            /* EOF, I/O error, timeout or shutdown: just close */
	READ_BAD,               /* malformed: answer 400 and close */
	READ_TOO_LARGE,         /* body over MOCK_BODY_MAX: answer 413 and close */
	READ_HEADERS_TOO_LARGE  /* head over limits: answer 431 and close */
};

enum line_status {
	LINE_OK = 0,     /* a line was returned */
	LINE_EOF,        /* peer closed with nothing pending */
	LINE_ERROR,      /* I/O error, timeout, shutdown, or EOF mid-line */
	LINE_TOO_LONG    /* the line does not fit the read buffer */
};

static void request_init(struct mock_request *r)
{
	memset(r, 0, sizeof *r);
}

static void request_free(struct mock_request *r)
{
	free(r->body);
	r->body = NULL;
}

static const char *request_header(const struct mock_request *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->n_headers; i++) {
		if (strcmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	}
	return NULL;
}

/* Waits until fd is readable; -1 on shutdown, idle timeout or error. */
static int wait_readable(int fd)
{
	long waited = 0;

	while (!atomic_load(&g_stop)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int rc = poll(&p, 1, MOCK_POLL_SLICE_MS);

		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR)
			return -1;
		if (rc == 0) {
			waited += MOCK_POLL_SLICE_MS;
			if (waited >= MOCK_IDLE_TIMEOUT_MS)
				return -1;
		}
	}
	return -1;
}

/* Reads more bytes into the read buffer; returns >0, 0 on EOF, -1 on error. */
static ssize_t conn_fill(struct mock_conn *c)
{
	ssize_t n;

	if (c->rstart > 0) {
		memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
		c->rend -= c->rstart;
		c->rstart = 0;
	}
	if (c->rend >= sizeof c->rbuf)
		return -1;
	/* the loop parses only requests it holds whole */
	if (c->in_loop || wait_readable(c->fd) != 0)
		return -1;
	do {
		n = recv(c->fd, c->rbuf + c->rend, sizeof c->rbuf - c->rend, 0);
	} while (n < 0 && errno == EINTR);
	if (n > 0)
		c->rend += (size_t)n;
	return n < 0 ? -1 : n;
}

/* Returns the next line (CRLF or LF stripped, NUL-terminated in place).  The
 * pointer is valid only until the next read on the connection. */
static enum line_status conn_read_line(struct mock_conn *c, char **line, size_t *len)
{
	for (;;) {
		char *start = c->rbuf + c->rstart;
		size_t avail = c->rend - c->rstart;
		char *nl = memchr(start, '\n', avail);
		ssize_t n;

		if (nl != NULL) {
			size_t l = (size_t)(nl - start);

			c->rstart += l + 1;
			if (l > 0 && start[l - 1] == '\r')
				l--;
			start[l] = '\0';
			*line = start;
			*len = l;
			return LINE_OK;
		}
		if (avail >= sizeof c->rbuf - 1)
			return LINE_TOO_LONG;
		n = conn_fill(c);
		if (n == 0)
			return c->rend == c->rstart ? LINE_EOF : LINE_ERROR;
		if (n < 0)
			return LINE_ERROR;
	}
}

/* Copies exactly n body bytes to dst, first from the buffer, then from the
 * socket.  Returns 0 or -1. */
static int conn_read_exact(struct mock_conn *c, char *dst, size_t n)
{
	size_t avail = c->rend - c->rstart;
	size_t take = avail < n ? avail : n;

	if (take > 0) {
		memcpy(dst, c->rbuf + c->rstart, take);
		c->rstart += take;
		dst += take;
		n -= take;
	}
	while (n > 0) {
		ssize_t got;

		if (c->in_loop || wait_readable(c->fd) != 0)
			return -1;
		got = recv(c->fd, dst, n, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return -1;
		dst += got;
		n -= (size_t)got;
	}
	return 0;
}

/* Copies a head line into the per-request header store. */
static char *conn_keep_line(struct mock_conn *c, const char *line, size_t len)
{
	char *dst;

	if (len + 1 > sizeof c->hbuf - c->hlen)
		return NULL;
	dst = c->hbuf + c->hlen;
	memcpy(dst, line, len);
	dst[len] = '\0';
	c->hlen += len + 1;
	return dst;
}

static bool is_tchar(unsigned char ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
		return true;
	return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool line_is_clean(const char *line, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];

		if (ch == '\0' || ch == '\r' || ch == '\n')
			return false;
	}
	return true;
}

static int parse_request_line(char *s, struct mock_request *r)
{
	char *sp1 = strchr(s, ' ');
	char *sp2;
	char *target;
	char *version;
	char *q;
	size_t i;

	if (sp1 == NULL)
		return -1;
	*sp1 = '\0';
	target = sp1 + 1;
	sp2 = strchr(target, ' ');
	if (sp2 == NULL)
		return -1;
	*sp2 = '\0';
	version = sp2 + 1;

	if (s[0] == '\0' || strlen(s) > 32)
		return -1;
	for (i = 0; s[i] != '\0'; i++) {
		if (!is_tchar((unsigned char)s[i]))
			return -1;
	}
	for (i = 0; target[i] != '\0'; i++) {
		unsigned char ch = (unsigned char)target[i];

		if (ch <= 0x20 || ch == 0x7f)
			return -1;
	}
	if (strcmp(version, "HTTP/1.1") == 0)
		r->minor_version = 1;
	else if (strcmp(version, "HTTP/1.0") == 0)
		r->minor_version = 0;
	else
		return -1;

	/* absolute-form: keep only the path and query */
	if (strncasecmp(target, "http://", 7) == 0 || strncasecmp(target, "https://", 8) == 0) {
		char *slash = strchr(strstr(target, "//") + 2, '/');

		if (slash == NULL)
			return -1;
		target = slash;
	}
	if (target[0] != '/')
		return -1;
	q = strchr(target, '?');
	if (q != NULL) {
		*q = '\0';
		r->query = q + 1;
	} else {
		r->query = target + strlen(target);
	}
	r->method = s;
	r->path = target;
	r->head = strcmp(s, "HEAD") == 0;
	return 0;
}

static int parse_header_line(char *s, struct mock_header *h)
{
	char *colon;
	char *value;
	char *end;
	char *p;

	if (s[0] == ' ' || s[0] == '\t')
		return -1;   /* obsolete line folding */
	colon = strchr(s, ':');
	if (colon == NULL || colon == s)
		return -1;
	for (p = s; p < colon; p++) {
		if (!is_tchar((unsigned char)*p))
			return -1;
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	}
	*colon = '\0';
	value = colon + 1;
	while (*value == ' ' || *value == '\t')
		value++;
	end = value + strlen(value);
	while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*end = '\0';
	h->name = s;
	h->value = value;
	return 0;
}

static enum read_status read_head(struct mock_conn *c, struct mock_request *r)
{
	enum line_status ls;
	char *line = NULL;
	size_t len = 0;
	char *copy;
	int blank = 0;

	c->hlen = 0;
	for (;;) {
		ls = conn_read_line(c, &line, &len);
		if (ls == LINE_EOF || ls == LINE_ERROR)
			return READ_CLOSED;
		if (ls == LINE_TOO_LONG)
			return READ_HEADERS_TOO_LARGE;
		if (len > 0)
			break;
		if (++blank > 8)
			return READ_BAD;
	}
	if (!line_is_clean(line, len))
		return READ_BAD;
	copy = conn_keep_line(c, line, len);
	if (copy == NULL)
		return READ_HEADERS_TOO_LARGE;
	if (parse_request_line(copy, r) != 0)
		return READ_BAD;

	for (;;) {
		ls = conn_read_line(c, &line, &len);
		if (ls == LINE_EOF || ls == LINE_ERROR)
			return READ_CLOSED;
		if (ls == LINE_TOO_LONG)
			return READ_HEADERS_TOO_LARGE;
		if (len == 0)
			return READ_OK;
		if (!line_is_clean(line, len))
			return READ_BAD;
		if (r->n_headers >= MOCK_MAX_HEADERS)
			return READ_HEADERS_TOO_LARGE;
		copy = conn_keep_line(c, line, len);
		if (copy == NULL)
			return READ_HEADERS_TOO_LARGE;
		if (parse_header_line(copy, &r->headers[r->n_headers]) != 0)
			return READ_BAD;
		r->n_headers++;
	}
}

/* Sets *has_close / *has_keep_alive from a Connection header value. */
static void scan_connection_tokens(const char *v, bool *has_close, bool *has_keep_alive)
{
	while (*v != '\0') {
		const char *start;
		size_t len;

		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		start = v;
		while (*v != '\0' && *v != ',')
			v++;
		len = (size_t)(v - start);
		while (len > 0 && (start[len - 1] == ' ' || start[len - 1] == '\t'))
			len--;
		if (len == 5 && strncasecmp(start, "close", 5) == 0)
			*has_close = true;
		else if (len == 10 && strncasecmp(start, "keep-alive", 10) == 0)
			*has_keep_alive = true;
	}
}

static int parse_content_length(const char *v, uint64_t *out)
{
	char *end = NULL;
	unsigned long long n;
	size_t i;

	if (v[0] == '\0' || strlen(v) > 19)
		return -1;
	for (i = 0; v[i] != '\0'; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
	}
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0')
		return -1;
	*out = (uint64_t)n;
	return 0;
}

static enum read_status read_chunked_body(struct mock_conn *c, struct mock_request *r)
{
	char *body = NULL;
	size_t len = 0;
	size_t cap = 0;
	enum read_status st = READ_OK;
	char *line = NULL;
	size_t line_len = 0;
	enum line_status ls;
	int trailers = 0;

	for (;;) {
		size_t size = 0;
		size_t i = 0;
		int digits = 0;

		ls = conn_read_line(c, &line, &line_len);
		if (ls == LINE_TOO_LONG) {
			st = READ_BAD;
			goto out;
		}
		if (ls != LINE_OK) {
			st = READ_CLOSED;
			goto out;
		}
		for (; i < line_len && hex_value(line[i]) >= 0; i++) {
			if (size > (SIZE_MAX >> 4) || ++digits > 16) {
				st = READ_TOO_LARGE;
				goto out;
			}
			size = size * 16 + (size_t)hex_value(line[i]);
		}
		while (i < line_len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (digits == 0 || (i < line_len && line[i] != ';')) {
			st = READ_BAD;
			goto out;
		}
		if (size == 0)
			break;
		if (size > MOCK_BODY_MAX - len) {
			st = READ_TOO_LARGE;
			goto out;
		}
		if (len + size + 1 > cap) {
			size_t ncap = cap ? cap : 4096;
			char *p;

			while (ncap < len + size + 1)
				ncap *= 2;
			if (ncap > MOCK_BODY_MAX + 1)
				ncap = MOCK_BODY_MAX + 1;
			p = realloc(body, ncap);
			if (p == NULL) {
				st = READ_TOO_LARGE;
				goto out;
			}
			body = p;
			cap = ncap;
		}
		if (conn_read_exact(c, body + len, size) != 0) {
			st = READ_CLOSED;
			goto out;
		}
		len += size;
		ls = conn_read_line(c, &line, &line_len);
		if (ls != LINE_OK) {
			st = ls == LINE_TOO_LONG ? READ_BAD : READ_CLOSED;
			goto out;
		}
		if (line_len != 0) {
			st = READ_BAD;
			goto out;
		}
	}
	/* trailer section, ignored */
	for (;;) {
		ls = conn_read_line(c, &line, &line_len);
		if (ls != LINE_OK) {
			st = ls == LINE_TOO_LONG ? READ_HEADERS_TOO_LARGE : READ_CLOSED;
			goto out;
		}
		if (line_len == 0)
			break;
		if (++trailers > MOCK_MAX_HEADERS) {
			st = READ_HEADERS_TOO_LARGE;
			goto out;
		}
	}
	if (body == NULL) {
		body = malloc(1);
		if (body == NULL) {
			st = READ_CLOSED;
			goto out;
		}
	}
	body[len] = '\0';
	r->body = body;
	r->body_len = len;
	body = NULL;
out:
	free(body);
	return st;
}

/* Sends iov whole: in the event loop, appends it to the connection's output
 * buffer (the loop writes it); in a connection thread, blocks until it is
 * written.  Returns 0 or -1. */
static int conn_send_iov(struct mock_conn *c, struct iovec *iov, int iovcnt)
{
	int fd = c->fd;
	int i;

	if (c->in_loop) {
		for (i = 0; i < iovcnt; i++) {
			if (sb_append(&c->out, iov[i].iov_base, iov[i].iov_len) != 0)
				return -1;
		}
		return 0;
	}
	while (iovcnt > 0) {
		struct msghdr msg;
		ssize_t n;
		size_t left;

		memset(&msg, 0, sizeof msg);
		msg.msg_iov = iov;
		msg.msg_iovlen = (size_t)iovcnt;
		n = sendmsg(fd, &msg, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		left = (size_t)n;
		while (iovcnt > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (char *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
	return 0;
}

static int conn_send(struct mock_conn *c, const void *data, size_t len)
{
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };

	return conn_send_iov(c, &iov, 1);
}

static enum read_status read_body(struct mock_conn *c, struct mock_request *r)
{
	bool chunked = false;
	bool have_length = false;
	bool expect_continue = false;
	bool conn_close = false;
	bool conn_keep = false;
	uint64_t length = 0;
	size_t i;

	for (i = 0; i < r->n_headers; i++) {
		const struct mock_header *h = &r->headers[i];

		if (strcmp(h->name, "content-length") == 0) {
			uint64_t v;

			if (parse_content_length(h->value, &v) != 0)
				return READ_BAD;
			if (have_length && v != length)
				return READ_BAD;
			have_length = true;
			length = v;
		} else if (strcmp(h->name, "transfer-encoding") == 0) {
			if (strcasecmp(h->value, "chunked") != 0)
				return READ_BAD;
			chunked = true;
		} else if (strcmp(h->name, "connection") == 0) {
			scan_connection_tokens(h->value, &conn_close, &conn_keep);
		} else if (strcmp(h->name, "expect") == 0) {
			if (strcasecmp(h->value, "100-continue") == 0)
				expect_continue = true;
		}
	}
	r->keep_alive = r->minor_version >= 1 ? !conn_close : (conn_keep && !conn_close);
	if (chunked && (have_length || r->minor_version == 0))
		return READ_BAD;
	if (have_length && length > MOCK_BODY_MAX)
		return READ_TOO_LARGE;
	if (expect_continue && r->minor_version >= 1 && (chunked || length > 0)) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

		if (conn_send(c, cont, sizeof cont - 1) != 0)
			return READ_CLOSED;
	}
	if (chunked)
		return read_chunked_body(c, r);

	r->body = malloc((size_t)length + 1);
	if (r->body == NULL)
		return READ_TOO_LARGE;
	if (conn_read_exact(c, r->body, (size_t)length) != 0)
		return READ_CLOSED;
	r->body[length] = '\0';
	r->body_len = (size_t)length;
	return READ_OK;
}

static enum read_status read_request(struct mock_conn *c, struct mock_request *r)
{
	enum read_status st = read_head(c, r);

	if (st != READ_OK)
		return st;
	return read_body(c, r);
}

/* ------------------------------------------------------------------------ */
/* Responses                                                                */
/* ------------------------------------------------------------------------ */

static const char *status_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 524: return "A Timeout Occurred";
	case 529: return "Site Overloaded";
	default: return status >= 500 ? "Server Error" : "Client Error";
	}
}

/* Sends a complete response.  extra: more header lines, each ending in CRLF,
 * or NULL.  Returns 0 or -1. */
static int send_response(struct mock_conn *c, const struct mock_request *r, int status,
			 const char *content_type, const char *extra,
			 const char *body, size_t body_len, bool keep)
{
	char head[2048];
	struct iovec iov[2];
	int n;

	n = snprintf(head, sizeof head,
		     "HTTP/1.1 %d %s\r\n"
		     "Server: mock-upstream\r\n"
		     "Content-Type: %s\r\n"
		     "Content-Length: %zu\r\n"
		     "%s"
		     "Connection: %s\r\n"
		     "\r\n",
		     status, status_reason(status), content_type, body_len,
		     extra != NULL ? extra : "", keep ? "keep-alive" : "close");
	if (n < 0 || (size_t)n >= sizeof head)
		return -1;
	iov[0].iov_base = head;
	iov[0].iov_len = (size_t)n;
	iov[1].iov_base = (void *)body;
	iov[1].iov_len = r->head ? 0 : body_len;
	return conn_send_iov(c, iov, 2);
}

static int send_oom(struct mock_conn *c, const struct mock_request *r)
{
	static const char body[] = "{\"error\":{\"code\":500,\"message\":\"mock out of memory\"}}";

	send_response(c, r, 500, "application/json", NULL, body, sizeof body - 1, false);
	return -1;
}

static int send_json(struct mock_conn *c, const struct mock_request *r, int status,
		     struct json_object *obj, const char *extra, bool keep)
{
	size_t len = 0;
	const char *text = json_object_to_json_string_length(obj, MOCK_JSON_FLAGS, &len);

	if (text == NULL)
		return send_oom(c, r);
	return send_response(c, r, status, "application/json", extra, text, len, keep);
}

/* Sends {"error":{"code":status,"message":msg[,"metadata":{...}]}}. */
static int send_error(struct mock_conn *c, const struct mock_request *r, int status,
		      const char *message, bool provider_metadata, const char *extra, bool keep)
{
	struct jb b = { .ok = true };
	struct json_object *root = jb_object(&b);
	struct json_object *err = jb_object(&b);
	int rc;

	jb_set(&b, err, "code", jb_int(&b, status));
	jb_set(&b, err, "message", jb_string(&b, message));
	if (provider_metadata) {
		struct json_object *meta = jb_object(&b);

		jb_set(&b, meta, "provider_name", jb_string(&b, "Mock"));
		jb_set(&b, err, "metadata", meta);
	}
	jb_set(&b, root, "error", err);
	rc = b.ok ? send_json(c, r, status, root, extra, keep) : send_oom(c, r);
	json_object_put(root);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Scenario options in the model string                                     */
/* ------------------------------------------------------------------------ */

struct mock_options {
	long fail;            /* 0: none, else the status to answer */
	long sleep_ms;        /* delay before any response byte */
	bool cut_before;      /* close without answering */
	long cut_after;       /* -1: none; close a stream after K tokens */
	long midfail_after;   /* -1: none; in-band error after K tokens */
	long tokens;          /* -1: --tokens */
	long delay_ms;        /* -1: --delay-ms */
	bool bad_json;        /* answer 200 with a non-JSON body */
	long dim;             /* -1: dimensions / --embedding-dim */
	bool ignore_base64;   /* embeddings: always float arrays */
	long billed_pct;      /* what GET /generation bills, in % of the inline cost */
	bool no_cost;         /* the answer's usage carries no cost */
};

static void options_init(struct mock_options *o)
{
	o->fail = 0;
	o->sleep_ms = 0;
	o->cut_before = false;
	o->cut_after = -1;
	o->midfail_after = -1;
	o->tokens = -1;
	o->delay_ms = -1;
	o->bad_json = false;
	o->dim = -1;
	o->ignore_base64 = false;
	o->billed_pct = 100;
	o->no_cost = false;
}

static int option_apply(const char *seg, size_t len, struct mock_options *o,
			char *err, size_t err_len)
{
	char buf[128];
	char *eq;
	const char *key;
	const char *val;
	long v = 0;

	if (len >= sizeof buf) {
		snprintf(err, err_len, "mock option too long");
		return -1;
	}
	memcpy(buf, seg, len);
	buf[len] = '\0';
	eq = strchr(buf, '=');
	if (eq == NULL) {
		snprintf(err, err_len, "mock option '%s' is not key=value", buf);
		return -1;
	}
	*eq = '\0';
	key = buf;
	val = eq + 1;

	if (strcmp(key, "cut") == 0 && strcmp(val, "before") == 0) {
		o->cut_before = true;
		return 0;
	}
	if (strcmp(key, "fail") == 0) {
		if (parse_long_text(val, 400, 599, &v) == 0) {
			o->fail = v;
			return 0;
		}
	} else if (strcmp(key, "sleep") == 0) {
		if (parse_long_text(val, 0, MOCK_MAX_DELAY_MS, &v) == 0) {
			o->sleep_ms = v;
			return 0;
		}
	} else if (strcmp(key, "cut") == 0) {
		if (parse_long_text(val, 0, MOCK_MAX_TOKENS, &v) == 0) {
			o->cut_after = v;
			return 0;
		}
	} else if (strcmp(key, "midfail") == 0) {
		if (parse_long_text(val, 0, MOCK_MAX_TOKENS, &v) == 0) {
			o->midfail_after = v;
			return 0;
		}
	} else if (strcmp(key, "tokens") == 0) {
		if (parse_long_text(val, 0, MOCK_MAX_TOKENS, &v) == 0) {
			o->tokens = v;
			return 0;
		}
	} else if (strcmp(key, "delay") == 0) {
		if (parse_long_text(val, 0, MOCK_MAX_DELAY_MS, &v) == 0) {
			o->delay_ms = v;
			return 0;
		}
	} else if (strcmp(key, "badjson") == 0) {
		if (parse_long_text(val, 0, 1, &v) == 0) {
			o->bad_json = v == 1;
			return 0;
		}
	} else if (strcmp(key, "dim") == 0) {
		if (parse_long_text(val, 1, MOCK_MAX_DIM, &v) == 0) {
			o->dim = v;
			return 0;
		}
	} else if (strcmp(key, "billed") == 0) {
		if (parse_long_text(val, 0, 100000, &v) == 0) {
			o->billed_pct = v;
			return 0;
		}
	} else if (strcmp(key, "nocost") == 0) {
		if (parse_long_text(val, 0, 1, &v) == 0) {
			o->no_cost = v == 1;
			return 0;
		}
	} else if (strcmp(key, "ignore_base64") == 0) {
		if (parse_long_text(val, 0, 1, &v) == 0) {
			o->ignore_base64 = v == 1;
			return 0;
		}
	} else {
		snprintf(err, err_len, "unknown mock option '%s'", key);
		return -1;
	}
	snprintf(err, err_len, "invalid value for mock option '%s'", key);
	return -1;
}

/* Scenario options set by POST /__mock/scenario (same syntax as after the
 * model id, e.g. "fail=500;sleep=100"): applied to every later API request
 * after its own, until an empty body clears them. */
static pthread_mutex_t g_scenario_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_scenario[128];

static int scenario_apply(struct mock_options *o, char *err, size_t err_len)
{
	char copy[sizeof g_scenario];
	char *p;

	pthread_mutex_lock(&g_scenario_lock);
	memcpy(copy, g_scenario, sizeof copy);
	pthread_mutex_unlock(&g_scenario_lock);
	for (p = copy; *p != '\0';) {
		size_t len = strcspn(p, ";");

		if (len > 0 && option_apply(p, len, o, err, err_len) != 0)
			return -1;
		p += len;
		if (*p == ';')
			p++;
	}
	return 0;
}

/* Splits "id;k=v;..." into a new model id string and options.  Returns 0, or
 * -1 with a message in err. */
static int options_parse(const char *spec, char **model_out, struct mock_options *o,
			 char *err, size_t err_len)
{
	const char *semi = strchr(spec, ';');
	size_t id_len = semi != NULL ? (size_t)(semi - spec) : strlen(spec);
	const char *p = semi;

	options_init(o);
	*model_out = NULL;
	if (id_len == 0) {
		snprintf(err, err_len, "model must not be empty");
		return -1;
	}
	while (p != NULL) {
		const char *next;
		size_t seg_len;

		p++;
		next = strchr(p, ';');
		seg_len = next != NULL ? (size_t)(next - p) : strlen(p);
		if (seg_len > 0 && option_apply(p, seg_len, o, err, err_len) != 0)
			return -1;
		p = next;
	}
	if (scenario_apply(o, err, err_len) != 0)
		return -1;
	*model_out = strndup(spec, id_len);
	if (*model_out == NULL) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	return 0;
}

/* Called before a handler's first step that blocks (a sleep, a stream with
 * delays): true in the event loop, which then hands the connection and this
 * request to a thread that runs the handler again from the start, so the
 * handler must have sent and recorded nothing yet; false in a connection
 * thread, which may block. */
static bool conn_defer(struct mock_conn *c)
{
	if (!c->in_loop)
		return false;
	c->deferred = true;
	return true;
}

/* Sleeps ms milliseconds; -1 early if the server stops or the peer hangs up. */
static int mock_sleep(int fd, long ms)
{
	int64_t deadline = clock_ms(CLOCK_MONOTONIC) + ms;

	for (;;) {
		int64_t left;
		struct pollfd p = { .fd = fd, .events = POLLRDHUP };
		int rc;

		if (atomic_load(&g_stop))
			return -1;
		left = deadline - clock_ms(CLOCK_MONOTONIC);
		if (left <= 0)
			return 0;
		rc = poll(&p, 1, (int)(left < MOCK_SLEEP_SLICE_MS ? left : MOCK_SLEEP_SLICE_MS));
		if (rc > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0)
			return -1;
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

/* The scenario steps shared by chat and embeddings: sleep, cut=before and
 * fail=.  Returns true when the request is fully handled; *keep then says
 * whether the connection may be reused. */
static bool scenario_preamble(struct mock_conn *c, const struct mock_request *r,
			      const struct mock_options *o, bool *keep)
{
	char extra[256];
	const char *message;
	char msg_buf[64];

	if (o->sleep_ms > 0 && conn_defer(c))
		return true;
	if (o->sleep_ms > 0 && mock_sleep(c->fd, o->sleep_ms) != 0) {
		*keep = false;
		return true;
	}
	if (o->cut_before) {
		*keep = false;
		return true;
	}
	if (o->fail == 0)
		return false;

	extra[0] = '\0';
	if (o->fail == 429) {
		snprintf(extra, sizeof extra,
			 "Retry-After: 1\r\n"
			 "X-RateLimit-Limit: 10\r\n"
			 "X-RateLimit-Remaining: 0\r\n"
			 "X-RateLimit-Reset: %lld\r\n",
			 (long long)(clock_ms(CLOCK_REALTIME) + 1000));
	} else if (o->fail == 503) {
		snprintf(extra, sizeof extra, "Retry-After: 1\r\n");
	}
	if (o->fail == 401) {
		message = "No auth credentials found";
	} else if (o->fail == 402) {
		message = "Insufficient credits";
	} else {
		snprintf(msg_buf, sizeof msg_buf, "mock failure %ld", o->fail);
		message = msg_buf;
	}
	if (send_error(c, r, (int)o->fail, message, true, extra, *keep) != 0)
		*keep = false;
	return true;
}

/* ------------------------------------------------------------------------ */
/* Chat completions                                                         */
/* ------------------------------------------------------------------------ */

struct chat_ctx {
	struct mock_conn *c;
	const struct mock_request *r;
	char id[MOCK_ID_LEN];
	const char *model;
	const char *billed_model; /* the model string as the client sent it */
	time_t created;
	long prompt_tokens;
	long billed_pct;       /* see mock_options */
	bool no_cost;
	const char *key_hash;  /* SHA-256 hex of the caller's key: billed to it */
	struct strbuf ev;      /* a stream's event being written ... */
	size_t ev_head;        /* ... after the head every event repeats */
};

/* Adds the byte length of a message content (string or text parts) to *bytes
 * and, if echo is non-NULL, copies its text into echo (up to echo_cap - 1
 * bytes, *echo_len counts what was copied). */
static void chat_content_scan(struct json_object *content, size_t *bytes,
			      char *echo, size_t echo_cap, size_t *echo_len)
{
	size_t i;
	size_t n;

	if (content == NULL)
		return;
	if (json_object_is_type(content, json_type_string)) {
		const char *s = json_object_get_string(content);
		size_t len = (size_t)json_object_get_string_len(content);

		*bytes += len;
		if (echo != NULL) {
			size_t take = echo_cap - 1 - *echo_len;

			if (take > len)
				take = len;
			memcpy(echo + *echo_len, s, take);
			*echo_len += take;
		}
		return;
	}
	if (!json_object_is_type(content, json_type_array))
		return;
	n = json_object_array_length(content);
	for (i = 0; i < n; i++) {
		struct json_object *text = json_get(json_object_array_get_idx(content, i), "text");

		if (text != NULL && json_object_is_type(text, json_type_string))
			chat_content_scan(text, bytes, echo, echo_cap, echo_len);
	}
}

/* The answer's fields every chat.completion[.chunk] begins with:
 * {"id":...,"provider":"Mock","model":...,"object":object,"created":... */
static int chat_head(struct strbuf *sb, const struct chat_ctx *x, const char *object)
{
	if (sb_appendf(sb, "{\"id\":\"%s\",\"provider\":\"Mock\",\"model\":", x->id) != 0 ||
	    sb_append_json_string(sb, x->model, strlen(x->model)) != 0)
		return -1;
	return sb_appendf(sb, ",\"object\":\"%s\",\"created\":%lld", object,
			  (long long)x->created);
}

/* {"prompt_tokens":..,"completion_tokens":..,"total_tokens":..[,"cost":..] */
static int chat_usage_head(struct strbuf *sb, const struct chat_ctx *x, long completion)
{
	char cost[MOCK_COST_LEN];

	if (sb_appendf(sb, "{\"prompt_tokens\":%ld,\"completion_tokens\":%ld,\"total_tokens\":%ld",
		       x->prompt_tokens, completion, x->prompt_tokens + completion) != 0)
		return -1;
	if (x->no_cost)
		return 0;
	format_usd_nano(chat_cost_nano(x->prompt_tokens, completion), cost, sizeof cost);
	return sb_appendf(sb, ",\"cost\":%s", cost);
}

/* Sends one HTTP chunk holding prefix + data + suffix, with a single send. */
static int stream_send_chunk(struct mock_conn *c, const char *prefix,
			     const char *data, size_t len, const char *suffix)
{
	size_t plen = strlen(prefix);
	size_t slen = strlen(suffix);
	char size_line[32];
	struct iovec iov[5];
	int n;

	n = snprintf(size_line, sizeof size_line, "%zx\r\n", plen + len + slen);
	if (n < 0 || (size_t)n >= sizeof size_line)
		return -1;
	iov[0].iov_base = size_line;
	iov[0].iov_len = (size_t)n;
	iov[1].iov_base = (void *)prefix;
	iov[1].iov_len = plen;
	iov[2].iov_base = (void *)data;
	iov[2].iov_len = len;
	iov[3].iov_base = (void *)suffix;
	iov[3].iov_len = slen;
	iov[4].iov_base = (void *)"\r\n";
	iov[4].iov_len = 2;
	return conn_send_iov(c, iov, 5);
}

/* Sends "data: <obj>\n\n" as one chunk and releases obj. */
static int stream_send_event(struct mock_conn *c, struct json_object *obj, bool built_ok)
{
	const char *text;
	size_t len = 0;
	int rc = -1;

	if (built_ok) {
		text = json_object_to_json_string_length(obj, MOCK_JSON_FLAGS, &len);
		if (text != NULL)
			rc = stream_send_chunk(c, "data: ", text, len, "\n\n");
	}
	json_object_put(obj);
	return rc;
}

/* Sends x->ev's head followed by tail (JSON text, the event's last fields
 * and its closing brace) as one event. */
static int stream_send_tail(struct chat_ctx *x, const char *tail)
{
	x->ev.len = x->ev_head;
	if (sb_append_str(&x->ev, tail) != 0)
		return -1;
	return stream_send_chunk(x->c, "data: ", x->ev.data, x->ev.len, "\n\n");
}

static int stream_send_role(struct chat_ctx *x)
{
	return stream_send_tail(x, ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
				"\"content\":\"\"},\"finish_reason\":null,"
				"\"native_finish_reason\":null,\"logprobs\":null}]}");
}

static int stream_send_token(struct chat_ctx *x, long k)
{
	char tail[192];

	snprintf(tail, sizeof tail,
		 ",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok%ld \"},"
		 "\"finish_reason\":null,\"native_finish_reason\":null,\"logprobs\":null}]}", k);
	return stream_send_tail(x, tail);
}

static int stream_send_finish(struct chat_ctx *x)
{
	return stream_send_tail(x, ",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\","
				"\"native_finish_reason\":\"stop\",\"logprobs\":null}]}");
}

static int stream_send_usage(struct chat_ctx *x, long completion)
{
	x->ev.len = x->ev_head;
	if (sb_append_str(&x->ev, ",\"choices\":[],\"usage\":") != 0 ||
	    chat_usage_head(&x->ev, x, completion) != 0 || sb_append_str(&x->ev, "}}") != 0)
		return -1;
	return stream_send_chunk(x->c, "data: ", x->ev.data, x->ev.len, "\n\n");
}

/* The OpenRouter in-band error chunk (api-contract.md 5.4). */
static int stream_send_midfail(struct chat_ctx *x)
{
	struct jb b = { .ok = true };
	struct json_object *o = jb_object(&b);
	struct json_object *err = jb_object(&b);
	struct json_object *meta = jb_object(&b);
	struct json_object *choices = jb_array(&b);
	struct json_object *ch = jb_object(&b);
	struct json_object *delta = jb_object(&b);

	jb_set(&b, o, "id", jb_string(&b, x->id));
	jb_set(&b, o, "object", jb_string(&b, "chat.completion.chunk"));
	jb_set(&b, o, "created", jb_int(&b, (int64_t)x->created));
	jb_set(&b, o, "model", jb_string(&b, x->model));
	jb_set(&b, o, "provider", jb_string(&b, "Mock"));
	jb_set(&b, err, "code", jb_int(&b, 502));
	jb_set(&b, err, "message", jb_string(&b, "Provider returned error"));
	jb_set(&b, meta, "error_type", jb_string(&b, "provider_unavailable"));
	jb_set(&b, err, "metadata", meta);
	jb_set(&b, o, "error", err);
	jb_set(&b, ch, "index", jb_int(&b, 0));
	jb_set(&b, delta, "content", jb_string(&b, ""));
	jb_set(&b, ch, "delta", delta);
	jb_set(&b, ch, "finish_reason", jb_string(&b, "error"));
	jb_push(&b, choices, ch);
	jb_set(&b, o, "choices", choices);
	return stream_send_event(x->c, o, b.ok);
}

static void chat_record(const struct chat_ctx *x, long completion, bool streamed)
{
	gen_store_add(x->id, x->billed_model, x->key_hash, x->prompt_tokens, completion,
		      chat_cost_nano(x->prompt_tokens, completion) * (uint64_t)x->billed_pct / 100u,
		      streamed);
}

/* Everything after the stream's response head.  Returns 0 when the stream was
 * finished properly, -1 otherwise. */
static int stream_body(struct chat_ctx *x, const struct mock_options *o)
{
	static const char processing[] = ": OPENROUTER PROCESSING\n\n";
	static const char done[] = "data: [DONE]\n\n";
	long tokens = o->tokens >= 0 ? o->tokens : g_cfg.tokens;
	long delay = o->delay_ms >= 0 ? o->delay_ms : g_cfg.delay_ms;
	long cut_at = o->cut_after < 0 ? -1 : (o->cut_after < tokens ? o->cut_after : tokens);
	long fail_at = o->midfail_after < 0 ? -1 :
		       (o->midfail_after < tokens ? o->midfail_after : tokens);
	bool recorded = false;
	long emitted = 0;
	int rc = -1;

	if (stream_send_chunk(x->c, "", processing, sizeof processing - 1, "") != 0 ||
	    stream_send_chunk(x->c, "", processing, sizeof processing - 1, "") != 0 ||
	    stream_send_role(x) != 0)
		goto out_emitted0;

	for (emitted = 0;; emitted++) {
		if (emitted == cut_at) {
			chat_record(x, emitted, true);
			return -1;    /* caller closes: no final chunk, no [DONE] */
		}
		if (emitted == fail_at) {
			chat_record(x, emitted, true);
			if (stream_send_midfail(x) == 0)
				(void)conn_send(x->c, "0\r\n\r\n", 5);
			return -1;
		}
		if (emitted == tokens)
			break;
		if (emitted > 0 && delay > 0 && mock_sleep(x->c->fd, delay) != 0)
			goto out;
		if (stream_send_token(x, emitted + 1) != 0)
			goto out;
	}
	if (stream_send_finish(x) != 0)
		goto out;
	chat_record(x, tokens, true);
	recorded = true;
	if (stream_send_usage(x, tokens) != 0 ||
	    stream_send_chunk(x->c, "", done, sizeof done - 1, "") != 0 ||
	    conn_send(x->c, "0\r\n\r\n", 5) != 0)
		goto out;
	rc = 0;
out:
	if (!recorded)
		chat_record(x, emitted, true);   /* the client went away */
	return rc;
out_emitted0:
	chat_record(x, 0, true);
	return -1;
}

/* True when the stream of these options waits between its tokens, or is
 * too long to build whole in the event loop's buffer. */
static bool stream_blocks(const struct mock_options *o)
{
	long tokens = o->tokens >= 0 ? o->tokens : g_cfg.tokens;
	long delay = o->delay_ms >= 0 ? o->delay_ms : g_cfg.delay_ms;

	return delay > 0 || tokens > MOCK_LOOP_MAX_TOKENS;
}

/* Streams the answer.  Like a real provider, the connection is kept for
 * the next request when the stream ended whole and the client keeps
 * connections; a stream that was cut or failed midway closes it. */
static bool chat_stream(struct chat_ctx *x, const struct mock_options *o)
{
	bool keep = x->r->keep_alive;
	char head[512];
	int n, rc;

	n = snprintf(head, sizeof head,
		     "HTTP/1.1 200 OK\r\n"
		     "Server: mock-upstream\r\n"
		     "Content-Type: text/event-stream\r\n"
		     "Cache-Control: no-cache\r\n"
		     "X-Generation-Id: %s\r\n"
		     "Transfer-Encoding: chunked\r\n"
		     "Connection: %s\r\n"
		     "\r\n", x->id, keep ? "keep-alive" : "close");
	if (n < 0 || (size_t)n >= sizeof head)
		return false;
	if (conn_send(x->c, head, (size_t)n) != 0)
		return false;
	sb_init(&x->ev, MOCK_HEADER_MAX_BYTES);
	if (chat_head(&x->ev, x, "chat.completion.chunk") != 0) {
		sb_free(&x->ev);
		return false;
	}
	x->ev_head = x->ev.len;
	atomic_fetch_add(&g_open_streams, 1);
	rc = stream_body(x, o);
	atomic_fetch_sub(&g_open_streams, 1);
	sb_free(&x->ev);
	return rc == 0 && keep;
}

static bool chat_plain(struct chat_ctx *x, const char *reply, size_t reply_len, bool keep)
{
	long completion = count_words(reply, reply_len);
	struct strbuf sb;
	char extra[128];

	snprintf(extra, sizeof extra, "X-Generation-Id: %s\r\n", x->id);
	sb_init(&sb, MOCK_HEADER_MAX_BYTES);
	if (chat_head(&sb, x, "chat.completion") != 0 ||
	    sb_append_str(&sb, ",\"choices\":[{\"index\":0,\"logprobs\":null,"
			  "\"finish_reason\":\"stop\",\"native_finish_reason\":\"stop\","
			  "\"message\":{\"role\":\"assistant\",\"content\":") != 0 ||
	    sb_append_json_string(&sb, reply, reply_len) != 0 ||
	    sb_append_str(&sb, ",\"refusal\":null}}],\"usage\":") != 0 ||
	    chat_usage_head(&sb, x, completion) != 0 ||
	    sb_append_str(&sb, ",\"is_byok\":false,\"prompt_tokens_details\":{\"cached_tokens\":0},"
			  "\"completion_tokens_details\":{\"reasoning_tokens\":0}}}") != 0) {
		sb_free(&sb);
		send_oom(x->c, x->r);
		return false;
	}
	chat_record(x, completion, false);
	if (send_response(x->c, x->r, 200, "application/json", extra, sb.data, sb.len, keep) != 0)
		keep = false;
	sb_free(&sb);
	return keep;
}

/* key_hash: the SHA-256 hex of the caller's key, which the generation is
 * billed to. */
static bool handle_chat(struct mock_conn *c, const struct mock_request *r,
			const char *key_hash)
{
	bool keep = r->keep_alive;
	struct json_object *root = json_parse_body(r->body, r->body_len);
	struct json_object *model;
	struct json_object *messages;
	struct json_object *stream;
	struct mock_options opt;
	struct chat_ctx x;
	bool streamed;
	char *model_id = NULL;
	char err[256];
	char echo[MOCK_ECHO_MAX + 8];
	char reply[MOCK_ECHO_MAX + 32];
	static const char reply_prefix[] = "mock reply: ";
	size_t echo_len = 0;
	size_t prompt_bytes = 0;
	size_t reply_len;
	size_t n_messages;
	size_t i;

	if (root == NULL || !json_object_is_type(root, json_type_object)) {
		if (send_error(c, r, 400, "Invalid JSON in request body", false, NULL, keep) != 0)
			keep = false;
		goto out;
	}
	model = json_get(root, "model");
	messages = json_get(root, "messages");
	if (model == NULL || !json_object_is_type(model, json_type_string)) {
		if (send_error(c, r, 400, "model must be a string", false, NULL, keep) != 0)
			keep = false;
		goto out;
	}
	if (messages == NULL || !json_object_is_type(messages, json_type_array) ||
	    json_object_array_length(messages) == 0) {
		if (send_error(c, r, 400, "messages must be a non-empty array", false, NULL, keep) != 0)
			keep = false;
		goto out;
	}
	n_messages = json_object_array_length(messages);
	for (i = 0; i < n_messages; i++) {
		if (!json_object_is_type(json_object_array_get_idx(messages, i), json_type_object)) {
			if (send_error(c, r, 400, "each message must be an object", false, NULL, keep) != 0)
				keep = false;
			goto out;
		}
	}
	if (options_parse(json_object_get_string(model), &model_id, &opt, err, sizeof err) != 0) {
		if (send_error(c, r, 400, err, false, NULL, keep) != 0)
			keep = false;
		goto out;
	}
	if (scenario_preamble(c, r, &opt, &keep))
		goto out;
	stream = json_get(root, "stream");
	streamed = stream != NULL && json_object_is_type(stream, json_type_boolean) &&
		   json_object_get_boolean(stream);
	if (streamed && stream_blocks(&opt) && conn_defer(c))
		goto out;
	if (opt.bad_json) {
		static const char bad[] = "this is not json";

		if (send_response(c, r, 200, "application/json", NULL, bad, sizeof bad - 1, keep) != 0)
			keep = false;
		goto out;
	}

	for (i = 0; i < n_messages; i++) {
		struct json_object *msg = json_object_array_get_idx(messages, i);
		bool last = i + 1 == n_messages;

		chat_content_scan(json_get(msg, "content"), &prompt_bytes,
				  last ? echo : NULL, sizeof echo, &echo_len);
	}
	echo_len = utf8_truncate(echo, echo_len, MOCK_ECHO_MAX);
	memcpy(reply, reply_prefix, sizeof reply_prefix - 1);
	memcpy(reply + sizeof reply_prefix - 1, echo, echo_len);
	reply_len = sizeof reply_prefix - 1 + echo_len;
	reply[reply_len] = '\0';

	memset(&x, 0, sizeof x);
	x.c = c;
	x.r = r;
	x.model = model_id;
	/* billed, like a real upstream's model, under the name the client
	 * used: the scenario options are part of it */
	x.billed_model = json_object_get_string(model);
	x.created = time(NULL);
	x.prompt_tokens = (long)((prompt_bytes + 3) / 4);
	if (x.prompt_tokens < 1)
		x.prompt_tokens = 1;
	make_generation_id("gen-", x.id, sizeof x.id);
	x.billed_pct = opt.billed_pct;
	x.no_cost = opt.no_cost;
	x.key_hash = key_hash;

	if (streamed)
		keep = chat_stream(&x, &opt);
	else
		keep = chat_plain(&x, reply, reply_len, keep);
out:
	free(model_id);
	json_object_put(root);
	return keep;
}

/* ------------------------------------------------------------------------ */
/* Embeddings                                                               */
/* ------------------------------------------------------------------------ */

struct emb_item {
	const char *text;            /* string input, or NULL */
	size_t len;
	struct json_object *tokens;  /* token array input, or NULL */
};

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t emb_item_hash(const struct emb_item *it)
{
	uint64_t h = FNV_OFFSET;
	size_t i;
	size_t n;

	if (it->text != NULL)
		return fnv1a(h, (const unsigned char *)it->text, it->len);
	n = json_object_array_length(it->tokens);
	for (i = 0; i < n; i++) {
		uint64_t v = (uint64_t)json_object_get_int64(json_object_array_get_idx(it->tokens, i));
		unsigned char le[8];
		int k;

		for (k = 0; k < 8; k++)
			le[k] = (unsigned char)(v >> (8 * k));
		h = fnv1a(h, le, sizeof le);
	}
	return h;
}

/* Component j of the vector: a multiple of 2^-23 in [-1, 1), exact in float32. */
static float emb_component(uint64_t item_hash, uint32_t j)
{
	unsigned char le[4];
	uint64_t h;
	int32_t m;

	le[0] = (unsigned char)j;
	le[1] = (unsigned char)(j >> 8);
	le[2] = (unsigned char)(j >> 16);
	le[3] = (unsigned char)(j >> 24);
	h = mix64(fnv1a(item_hash, le, sizeof le));
	m = (int32_t)(h >> 40) - (1 << 23);
	return (float)m / 8388608.0f;
}

static bool json_is_token_array(struct json_object *a)
{
	size_t i;
	size_t n;

	if (!json_object_is_type(a, json_type_array))
		return false;
	n = json_object_array_length(a);
	if (n == 0)
		return false;
	for (i = 0; i < n; i++) {
		if (!json_object_is_type(json_object_array_get_idx(a, i), json_type_int))
			return false;
	}
	return true;
}

/* Collects the input items (a new array in *items) and the prompt token count.
 * Returns 0, or -1 with a message in *err. */
static int emb_collect(struct json_object *input, struct emb_item **items, size_t *n_items,
		       long *prompt_tokens, const char **err)
{
	struct emb_item *arr = NULL;
	size_t n;
	size_t i;
	uint64_t bytes = 0;
	uint64_t tokens = 0;
	struct json_object *first;

	*items = NULL;
	*n_items = 0;
	*err = "input must be a non-empty string, array of strings, or token array(s)";
	if (input == NULL)
		return -1;
	if (json_object_is_type(input, json_type_string)) {
		if (json_object_get_string_len(input) == 0)
			return -1;
		arr = calloc(1, sizeof *arr);
		if (arr == NULL) {
			*err = "out of memory";
			return -1;
		}
		arr[0].text = json_object_get_string(input);
		arr[0].len = (size_t)json_object_get_string_len(input);
		*items = arr;
		*n_items = 1;
		*prompt_tokens = (long)((arr[0].len + 3) / 4);
		if (*prompt_tokens < 1)
			*prompt_tokens = 1;
		return 0;
	}
	if (!json_object_is_type(input, json_type_array))
		return -1;
	n = json_object_array_length(input);
	if (n == 0 || n > MOCK_MAX_EMB_ITEMS)
		return -1;
	first = json_object_array_get_idx(input, 0);
	if (json_object_is_type(first, json_type_int)) {
		if (!json_is_token_array(input))
			return -1;
		n = 1;   /* one token array */
	}
	arr = calloc(n, sizeof *arr);
	if (arr == NULL) {
		*err = "out of memory";
		return -1;
	}
	if (json_object_is_type(first, json_type_int)) {
		arr[0].tokens = input;
		tokens = json_object_array_length(input);
	} else if (json_object_is_type(first, json_type_string)) {
		for (i = 0; i < n; i++) {
			struct json_object *s = json_object_array_get_idx(input, i);

			if (!json_object_is_type(s, json_type_string) ||
			    json_object_get_string_len(s) == 0)
				goto fail;
			arr[i].text = json_object_get_string(s);
			arr[i].len = (size_t)json_object_get_string_len(s);
			bytes += arr[i].len;
		}
	} else {
		for (i = 0; i < n; i++) {
			struct json_object *t = json_object_array_get_idx(input, i);

			if (!json_is_token_array(t))
				goto fail;
			arr[i].tokens = t;
			tokens += json_object_array_length(t);
		}
	}
	*items = arr;
	*n_items = n;
	*prompt_tokens = bytes > 0 ? (long)((bytes + 3) / 4) : (long)tokens;
	if (*prompt_tokens < 1)
		*prompt_tokens = 1;
	return 0;
fail:
	free(arr);
	return -1;
}

/* The text of the vectors served last, by item hash, size and encoding:
 * a client asks for the same input again and again, and writing 1536
 * numbers costs far more than the rest of the answer. */
struct emb_cache_slot {
	uint64_t hash;
	long dim;
	bool base64;
	char *text;    /* owned; NULL: empty slot */
	size_t len;
};

static struct emb_cache_slot g_emb_cache[MOCK_EMB_CACHE_SLOTS];
static pthread_mutex_t g_emb_lock = PTHREAD_MUTEX_INITIALIZER;

static struct emb_cache_slot *emb_cache_slot(uint64_t hash, long dim, bool base64)
{
	return &g_emb_cache[mix64(hash ^ (uint64_t)dim ^ (base64 ? 1u : 0u)) % MOCK_EMB_CACHE_SLOTS];
}

/* Appends the cached text of the vector; returns 0, or 1 when it is not
 * cached, -1 when the buffer is full. */
static int emb_cache_append(struct strbuf *sb, uint64_t hash, long dim, bool base64)
{
	struct emb_cache_slot *slot = emb_cache_slot(hash, dim, base64);
	int rc = 1;

	pthread_mutex_lock(&g_emb_lock);
	if (slot->text != NULL && slot->hash == hash && slot->dim == dim && slot->base64 == base64)
		rc = sb_append(sb, slot->text, slot->len);
	pthread_mutex_unlock(&g_emb_lock);
	return rc;
}

static void emb_cache_put(uint64_t hash, long dim, bool base64, const char *text, size_t len)
{
	struct emb_cache_slot *slot = emb_cache_slot(hash, dim, base64);
	char *copy = malloc(len);
	char *old;

	if (copy == NULL)
		return;
	memcpy(copy, text, len);
	pthread_mutex_lock(&g_emb_lock);
	old = slot->text;
	slot->hash = hash;
	slot->dim = dim;
	slot->base64 = base64;
	slot->text = copy;
	slot->len = len;
	pthread_mutex_unlock(&g_emb_lock);
	free(old);
}

static void emb_cache_free(void)
{
	size_t i;

	pthread_mutex_lock(&g_emb_lock);
	for (i = 0; i < MOCK_EMB_CACHE_SLOTS; i++) {
		free(g_emb_cache[i].text);
		g_emb_cache[i].text = NULL;
	}
	pthread_mutex_unlock(&g_emb_lock);
}

/* Writes the vector of the item: a quoted base64 string or an array. */
static int emb_write_vector(struct strbuf *sb, uint64_t h, long dim, bool base64,
			    unsigned char *scratch)
{
	uint32_t j;

	if (base64) {
		for (j = 0; j < (uint32_t)dim; j++) {
			float f = emb_component(h, j);
			uint32_t bits;

			memcpy(&bits, &f, sizeof bits);
			scratch[4 * j] = (unsigned char)bits;
			scratch[4 * j + 1] = (unsigned char)(bits >> 8);
			scratch[4 * j + 2] = (unsigned char)(bits >> 16);
			scratch[4 * j + 3] = (unsigned char)(bits >> 24);
		}
		if (sb_append_str(sb, "\"") != 0 ||
		    sb_append_base64(sb, scratch, (size_t)dim * 4) != 0)
			return -1;
		return sb_append_str(sb, "\"");
	}
	if (sb_append_str(sb, "[") != 0)
		return -1;
	for (j = 0; j < (uint32_t)dim; j++) {
		if (sb_appendf(sb, "%s%.9g", j > 0 ? "," : "", (double)emb_component(h, j)) != 0)
			return -1;
	}
	return sb_append_str(sb, "]");
}

static int emb_write_item(struct strbuf *sb, const struct emb_item *it, size_t idx,
			  long dim, bool base64, unsigned char *scratch)
{
	uint64_t h = emb_item_hash(it);
	bool cacheable = dim <= MOCK_EMB_CACHE_DIM;
	size_t start;
	int rc = 1;

	if (sb_appendf(sb, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":",
		       idx > 0 ? "," : "", idx) != 0)
		return -1;
	if (cacheable)
		rc = emb_cache_append(sb, h, dim, base64);
	if (rc < 0)
		return -1;
	if (rc > 0) {
		start = sb->len;
		if (emb_write_vector(sb, h, dim, base64, scratch) != 0)
			return -1;
		if (cacheable)
			emb_cache_put(h, dim, base64, sb->data + start, sb->len - start);
	}
	return sb_append_str(sb, "}");
}

static int emb_build(struct strbuf *sb, const struct emb_item *items, size_t n_items,
		     long dim, bool base64, const char *model, const char *id,
		     long prompt_tokens)
{
	unsigned char *scratch = NULL;
	char cost[MOCK_COST_LEN];
	size_t i;
	int rc = -1;

	if (base64) {
		scratch = malloc((size_t)dim * 4);
		if (scratch == NULL)
			return -1;
	}
	if (sb_append_str(sb, "{\"object\":\"list\",\"data\":[") != 0)
		goto out;
	for (i = 0; i < n_items; i++) {
		if (emb_write_item(sb, &items[i], i, dim, base64, scratch) != 0)
			goto out;
	}
	format_usd_nano((uint64_t)prompt_tokens * MOCK_NANO_PER_EMBEDDING_TOKEN, cost, sizeof cost);
	if (sb_append_str(sb, "],\"model\":") != 0 ||
	    sb_append_json_string(sb, model, strlen(model)) != 0 ||
	    sb_appendf(sb, ",\"id\":\"%s\",\"usage\":{\"prompt_tokens\":%ld,"
		       "\"total_tokens\":%ld,\"cost\":%s}}",
		       id, prompt_tokens, prompt_tokens, cost) != 0)
		goto out;
	rc = 0;
out:
	free(scratch);
	return rc;
}

/* Picks the vector size: dim= option, then "dimensions", then --embedding-dim.
 * Returns the size or -1 when "dimensions" is invalid. */
static long emb_dimension(struct json_object *root, const struct mock_options *o)
{
	struct json_object *d = json_get(root, "dimensions");
	int64_t v;

	if (o->dim > 0)
		return o->dim;
	if (d == NULL || json_object_is_type(d, json_type_null))
		return g_cfg.embedding_dim;
	if (!json_object_is_type(d, json_type_int))
		return -1;
	v = json_object_get_int64(d);
	if (v < 1 || v > MOCK_MAX_DIM)
		return -1;
	return (long)v;
}

/* key_hash: as for handle_chat. */
static bool handle_embeddings(struct mock_conn *c, const struct mock_request *r,
			      const char *key_hash)
{
	bool keep = r->keep_alive;
	struct json_object *root = json_parse_body(r->body, r->body_len);
	struct json_object *model;
	struct json_object *fmt;
	struct emb_item *items = NULL;
	size_t n_items = 0;
	struct mock_options opt;
	struct strbuf sb;
	char *model_id = NULL;
	char err[256];
	const char *emsg = NULL;
	char id[MOCK_ID_LEN];
	char extra[128];
	long prompt_tokens = 0;
	long dim;
	bool base64 = false;

	sb_init(&sb, MOCK_RESPONSE_MAX);
	if (root == NULL || !json_object_is_type(root, json_type_object)) {
		emsg = "Invalid JSON in request body";
		goto bad;
	}
	model = json_get(root, "model");
	if (model == NULL || !json_object_is_type(model, json_type_string)) {
		emsg = "model must be a string";
		goto bad;
	}
	if (options_parse(json_object_get_string(model), &model_id, &opt, err, sizeof err) != 0) {
		emsg = err;
		goto bad;
	}
	if (scenario_preamble(c, r, &opt, &keep))
		goto out;
	if (emb_collect(json_get(root, "input"), &items, &n_items, &prompt_tokens, &emsg) != 0)
		goto bad;
	fmt = json_get(root, "encoding_format");
	if (fmt != NULL && !json_object_is_type(fmt, json_type_null)) {
		const char *f = json_object_is_type(fmt, json_type_string) ?
				json_object_get_string(fmt) : "";

		if (strcmp(f, "base64") == 0) {
			base64 = !opt.ignore_base64;
		} else if (strcmp(f, "float") != 0) {
			emsg = "encoding_format must be \"float\" or \"base64\"";
			goto bad;
		}
	}
	dim = emb_dimension(root, &opt);
	if (dim < 1) {
		emsg = "dimensions must be an integer between 1 and 16384";
		goto bad;
	}
	if (n_items > MOCK_MAX_EMB_FLOATS / (size_t)dim) {
		emsg = "input too large for the mock";
		goto bad;
	}
	make_generation_id("gen-emb-", id, sizeof id);
	if (emb_build(&sb, items, n_items, dim, base64, model_id, id, prompt_tokens) != 0) {
		send_oom(c, r);
		keep = false;
		goto out;
	}
	gen_store_add(id, json_object_get_string(model), key_hash, prompt_tokens, 0,
		      (uint64_t)prompt_tokens * MOCK_NANO_PER_EMBEDDING_TOKEN *
		      (uint64_t)opt.billed_pct / 100u, false);
	snprintf(extra, sizeof extra, "X-Generation-Id: %s\r\n", id);
	if (send_response(c, r, 200, "application/json", extra, sb.data, sb.len, keep) != 0)
		keep = false;
	goto out;
bad:
	if (send_error(c, r, 400, emsg, false, NULL, keep) != 0)
		keep = false;
out:
	sb_free(&sb);
	free(items);
	free(model_id);
	json_object_put(root);
	return keep;
}

/* ------------------------------------------------------------------------ */
/* Models, generation                                                       */
/* ------------------------------------------------------------------------ */

struct mock_model {
	const char *id;
	const char *name;
	const char *description;
	int64_t created;
	int64_t context_length;
	const char *prompt_price;      /* USD per token, decimal string */
	const char *completion_price;
	int64_t max_completion_tokens; /* 0: null */
	bool is_moderated;
	const char *tokenizer;
	bool embedding;
};

static const struct mock_model k_chat_models[] = {
	{ "openai/gpt-4o-mini", "OpenAI: GPT-4o-mini",
	  "Mock listing of GPT-4o mini, served by mock-upstream.",
	  1721260800, 128000, "0.00000015", "0.0000006", 16384, true, "GPT", false },
	{ "anthropic/claude-sonnet-4", "Anthropic: Claude Sonnet 4",
	  "Mock listing of Claude Sonnet 4, served by mock-upstream.",
	  1747930371, 200000, "0.000003", "0.000015", 64000, false, "Claude", false },
	{ "mock/echo", "Mock: Echo",
	  "Deterministic echo model; its prices match the mock's usage cost.",
	  1700000000, 32768, "0.000001", "0.000002", 4096, false, "Other", false },
};

static const struct mock_model k_embedding_models[] = {
	{ "openai/text-embedding-3-small", "OpenAI: Text Embedding 3 Small",
	  "Mock listing of text-embedding-3-small, served by mock-upstream.",
	  1706140800, 8192, "0.00000002", "0", 0, false, "GPT", true },
};

static struct json_object *string_array(struct jb *b, const char *const *items, size_t n)
{
	struct json_object *arr = jb_array(b);
	size_t i;

	for (i = 0; i < n; i++)
		jb_push(b, arr, jb_string(b, items[i]));
	return arr;
}

static struct json_object *model_to_json(struct jb *b, const struct mock_model *m)
{
	static const char *const chat_params[] = {
		"max_tokens", "temperature", "top_p", "stop", "seed", "frequency_penalty",
		"presence_penalty", "response_format", "tools", "tool_choice",
	};
	static const char *const emb_params[] = { "dimensions", "encoding_format" };
	static const char *const text[] = { "text" };
	static const char *const embeddings[] = { "embeddings" };
	struct json_object *o = jb_object(b);
	struct json_object *arch = jb_object(b);
	struct json_object *pricing = jb_object(b);
	struct json_object *top = jb_object(b);
	struct json_object *links = jb_object(b);
	char details[256];

	snprintf(details, sizeof details, "/api/v1/models/%s/endpoints", m->id);
	jb_set(b, o, "id", jb_string(b, m->id));
	jb_set(b, o, "canonical_slug", jb_string(b, m->id));
	jb_set(b, o, "name", jb_string(b, m->name));
	jb_set(b, o, "created", jb_int(b, m->created));
	jb_set(b, o, "description", jb_string(b, m->description));
	jb_set(b, o, "context_length", jb_int(b, m->context_length));
	jb_set(b, arch, "modality", jb_string(b, m->embedding ? "text->embeddings" : "text->text"));
	jb_set(b, arch, "input_modalities", string_array(b, text, 1));
	jb_set(b, arch, "output_modalities",
	       m->embedding ? string_array(b, embeddings, 1) : string_array(b, text, 1));
	jb_set(b, arch, "tokenizer", jb_string(b, m->tokenizer));
	jb_set_null(b, arch, "instruct_type");
	jb_set(b, o, "architecture", arch);
	jb_set(b, pricing, "prompt", jb_string(b, m->prompt_price));
	jb_set(b, pricing, "completion", jb_string(b, m->completion_price));
	jb_set(b, pricing, "request", jb_string(b, "0"));
	jb_set(b, pricing, "image", jb_string(b, "0"));
	jb_set(b, o, "pricing", pricing);
	jb_set(b, top, "context_length", jb_int(b, m->context_length));
	if (m->max_completion_tokens > 0)
		jb_set(b, top, "max_completion_tokens", jb_int(b, m->max_completion_tokens));
	else
		jb_set_null(b, top, "max_completion_tokens");
	jb_set(b, top, "is_moderated", jb_bool(b, m->is_moderated));
	jb_set(b, o, "top_provider", top);
	jb_set_null(b, o, "per_request_limits");
	if (m->embedding)
		jb_set(b, o, "supported_parameters",
		       string_array(b, emb_params, sizeof emb_params / sizeof emb_params[0]));
	else
		jb_set(b, o, "supported_parameters",
		       string_array(b, chat_params, sizeof chat_params / sizeof chat_params[0]));
	jb_set_null(b, o, "default_parameters");
	jb_set_null(b, o, "supported_voices");
	jb_set(b, links, "details", jb_string(b, details));
	jb_set(b, o, "links", links);
	return o;
}

static bool handle_models(struct mock_conn *c, const struct mock_request *r,
			  const struct mock_model *models, size_t n)
{
	struct jb b = { .ok = true };
	struct json_object *root = jb_object(&b);
	struct json_object *data = jb_array(&b);
	bool keep = r->keep_alive;
	size_t i;

	for (i = 0; i < n; i++)
		jb_push(&b, data, model_to_json(&b, &models[i]));
	jb_set(&b, root, "data", data);
	if (!b.ok) {
		send_oom(c, r);
		keep = false;
	} else if (send_json(c, r, 200, root, NULL, keep) != 0) {
		keep = false;
	}
	json_object_put(root);
	return keep;
}

/* Finds key in a query string and percent-decodes its value into out.
 * Returns 0, -1 when key is not there, -2 when its value does not fit. */
static int query_param(const char *query, const char *key, char *out, size_t out_len)
{
	size_t key_len = strlen(key);
	const char *p = query;

	while (p != NULL && *p != '\0') {
		const char *amp = strchr(p, '&');
		const char *end = amp != NULL ? amp : p + strlen(p);

		if ((size_t)(end - p) > key_len && strncmp(p, key, key_len) == 0 && p[key_len] == '=') {
			const char *v = p + key_len + 1;
			size_t n = 0;

			while (v < end) {
				char ch = *v;

				if (ch == '%' && end - v >= 3 && hex_value(v[1]) >= 0 && hex_value(v[2]) >= 0) {
					ch = (char)(hex_value(v[1]) * 16 + hex_value(v[2]));
					v += 3;
				} else {
					if (ch == '+')
						ch = ' ';
					v++;
				}
				if (n + 1 >= out_len)
					return -2;
				out[n++] = ch;
			}
			out[n] = '\0';
			return 0;
		}
		p = amp != NULL ? amp + 1 : NULL;
	}
	return -1;
}

static bool handle_generation(struct mock_conn *c, const struct mock_request *r)
{
	struct jb b = { .ok = true };
	struct gen_record rec;
	struct json_object *root;
	struct json_object *data;
	bool keep = r->keep_alive;
	char id[MOCK_ID_LEN * 2];
	char created_at[64];
	struct tm tm;

	if (query_param(r->query, "id", id, sizeof id) != 0 || id[0] == '\0') {
		if (send_error(c, r, 400, "id query parameter is required", false, NULL, keep) != 0)
			keep = false;
		return keep;
	}
	if (gen_store_find(id, &rec) != 0) {
		if (send_error(c, r, 404, "Generation not found", false, NULL, keep) != 0)
			keep = false;
		return keep;
	}
	if (clock_ms(CLOCK_MONOTONIC) < rec.ready_ms) {
		/* OpenRouter, too, does not know a generation for a while after it ends */
		free(rec.model);
		if (send_error(c, r, 404, "Generation not found", false, NULL, keep) != 0)
			keep = false;
		return keep;
	}
	if (gmtime_r(&rec.created, &tm) == NULL ||
	    strftime(created_at, sizeof created_at, "%Y-%m-%dT%H:%M:%S+00:00", &tm) == 0)
		snprintf(created_at, sizeof created_at, "1970-01-01T00:00:00+00:00");

	root = jb_object(&b);
	data = jb_object(&b);
	jb_set(&b, data, "id", jb_string(&b, rec.id));
	jb_set(&b, data, "model", jb_string(&b, rec.model));
	jb_set(&b, data, "provider_name", jb_string(&b, "Mock"));
	jb_set(&b, data, "total_cost", jb_number_text(&b, rec.cost));
	jb_set(&b, data, "usage", jb_number_text(&b, rec.cost));
	jb_set(&b, data, "is_byok", jb_bool(&b, false));
	jb_set(&b, data, "tokens_prompt", jb_int(&b, rec.prompt_tokens));
	jb_set(&b, data, "tokens_completion", jb_int(&b, rec.completion_tokens));
	jb_set(&b, data, "native_tokens_prompt", jb_int(&b, rec.prompt_tokens));
	jb_set(&b, data, "native_tokens_completion", jb_int(&b, rec.completion_tokens));
	jb_set(&b, data, "streamed", jb_bool(&b, rec.streamed));
	jb_set(&b, data, "created_at", jb_string(&b, created_at));
	jb_set(&b, root, "data", data);
	if (!b.ok) {
		send_oom(c, r);
		keep = false;
	} else if (send_json(c, r, 200, root, NULL, keep) != 0) {
		keep = false;
	}
	json_object_put(root);
	free(rec.model);
	return keep;
}

/* ------------------------------------------------------------------------ */
/* Account APIs: activity, credits (management key only), key               */
/* ------------------------------------------------------------------------ */

static const char k_management_only[] = "Only management keys can perform this operation";

/* send_error() at the end of a handler: returns whether to keep the
 * connection. */
static bool reply_error(struct mock_conn *c, const struct mock_request *r, int status,
			const char *message)
{
	return send_error(c, r, status, message, false, NULL, r->keep_alive) == 0 &&
	       r->keep_alive;
}

/* Sends root with 200 (a 500 when b->ok is false: something was not built)
 * and releases it; returns whether to keep the connection. */
static bool reply_json(struct mock_conn *c, const struct mock_request *r, struct jb *b,
		       struct json_object *root)
{
	bool keep = r->keep_alive;

	if (!b->ok) {
		send_oom(c, r);
		keep = false;
	} else if (send_json(c, r, 200, root, NULL, keep) != 0) {
		keep = false;
	}
	json_object_put(root);
	return keep;
}

/* An exact USD amount as a JSON number. */
static struct json_object *jb_usd(struct jb *b, uint64_t nano)
{
	char text[MOCK_COST_LEN];

	format_usd_nano(nano, text, sizeof text);
	return jb_number_text(b, text);
}

/* GET /activity[?date=YYYY-MM-DD][&api_key_hash=HEX]: the ledger by day and
 * model, as OpenRouter's activity (which, unlike the mock, leaves today
 * out).  The caller has checked the management key. */
static bool handle_activity(struct mock_conn *c, const struct mock_request *r)
{
	struct jb b = { .ok = true };
	struct json_object *root;
	struct json_object *data;
	struct ledger_row *rows = NULL;
	size_t n_rows = 0;
	char day_text[MOCK_DAY_LEN + 1];
	char hash[MOCK_KEY_HASH_LEN + 2];
	const char *only_key = NULL;
	int64_t today = utc_day(time(NULL));
	int64_t from = today - (MOCK_ACTIVITY_DAYS - 1);
	int64_t to = today;
	int64_t day;
	size_t i;
	int q;

	q = query_param(r->query, "date", day_text, sizeof day_text);
	if (q != -1) {
		if (q != 0 || parse_utc_day(day_text, &day) != 0 ||
		    day < today - MOCK_ACTIVITY_DAYS || day > today)
			return reply_error(c, r, 400,
					   "date must be a UTC day YYYY-MM-DD from 30 days ago "
					   "to today");
		from = day;
		to = day;
	}
	q = query_param(r->query, "api_key_hash", hash, sizeof hash);
	if (q != -1) {
		if (q != 0 || !key_hash_normalize(hash))
			return reply_error(c, r, 400,
					   "api_key_hash must be a SHA-256 in hex (64 digits)");
		only_key = hash;
	}
	if (ledger_report(from, to, only_key, &rows, &n_rows) != 0) {
		send_oom(c, r);
		return false;
	}
	root = jb_object(&b);
	data = jb_array(&b);
	for (i = 0; i < n_rows && b.ok; i++) {
		const struct ledger_row *row = &rows[i];
		struct json_object *item = jb_object(&b);
		struct strbuf sb;

		sb_init(&sb, MOCK_RESPONSE_MAX);
		if (sb_append_str(&sb, "mock/") != 0 || sb_append_str(&sb, row->model) != 0)
			b.ok = false;
		format_utc_day(row->day, day_text, sizeof day_text);
		jb_set(&b, item, "date", jb_string(&b, day_text));
		jb_set(&b, item, "model", jb_string(&b, row->model));
		jb_set(&b, item, "model_permaslug", jb_string(&b, row->model));
		jb_set(&b, item, "endpoint_id", b.ok ? jb_string_len(&b, sb.data, sb.len) : NULL);
		jb_set(&b, item, "provider_name", jb_string(&b, "Mock"));
		jb_set(&b, item, "usage", jb_usd(&b, row->sums.cost_nano));
		jb_set(&b, item, "byok_usage_inference", jb_int(&b, 0));
		jb_set(&b, item, "requests", jb_int(&b, (int64_t)row->sums.requests));
		jb_set(&b, item, "prompt_tokens", jb_int(&b, (int64_t)row->sums.prompt_tokens));
		jb_set(&b, item, "completion_tokens",
		       jb_int(&b, (int64_t)row->sums.completion_tokens));
		jb_set(&b, item, "reasoning_tokens", jb_int(&b, 0));
		jb_push(&b, data, item);
		sb_free(&sb);
	}
	free(rows);
	jb_set(&b, root, "data", data);
	return reply_json(c, r, &b, root);
}

/* GET /credits: the account's credits and everything billed.  The caller
 * has checked the management key. */
static bool handle_credits(struct mock_conn *c, const struct mock_request *r)
{
	struct jb b = { .ok = true };
	struct json_object *root = jb_object(&b);
	struct json_object *data = jb_object(&b);

	jb_set(&b, data, "total_credits", jb_usd(&b, g_cfg.credits_nano));
	jb_set(&b, data, "total_usage", jb_usd(&b, ledger_total_cost()));
	jb_set(&b, root, "data", data);
	return reply_json(c, r, &b, root);
}

/* GET /key: what the calling key was billed, all time and in this UTC day,
 * week (from Monday) and month.  key_hash: the SHA-256 hex of the calling
 * inference key, or NULL for the management key (billed nothing). */
static bool handle_key(struct mock_conn *c, const struct mock_request *r,
		       const char *key_hash)
{
	struct jb b = { .ok = true };
	struct json_object *root = jb_object(&b);
	struct json_object *data = jb_object(&b);
	int64_t today = utc_day(time(NULL));
	int64_t from[3];   /* day, week, month */
	uint64_t since[3] = { 0, 0, 0 };
	uint64_t all_time = 0;

	from[0] = today;
	utc_period_starts(today, &from[1], &from[2]);
	if (key_hash != NULL)
		ledger_key_costs(key_hash, today, from, 3, &all_time, since);
	jb_set(&b, data, "label", jb_string(&b, "mock"));
	jb_set_null(&b, data, "limit");
	jb_set_null(&b, data, "limit_remaining");
	jb_set_null(&b, data, "limit_reset");
	jb_set(&b, data, "usage", jb_usd(&b, all_time));
	jb_set(&b, data, "usage_daily", jb_usd(&b, since[0]));
	jb_set(&b, data, "usage_weekly", jb_usd(&b, since[1]));
	jb_set(&b, data, "usage_monthly", jb_usd(&b, since[2]));
	jb_set(&b, data, "byok_usage", jb_int(&b, 0));
	jb_set(&b, data, "is_free_tier", jb_bool(&b, false));
	jb_set(&b, data, "is_management_key", jb_bool(&b, key_hash == NULL));
	jb_set(&b, root, "data", data);
	return reply_json(c, r, &b, root);
}

/* ------------------------------------------------------------------------ */
/* Test introspection: /__mock/stats, /__mock/last, /__mock/reset,          */
/* /__mock/bill                                                             */
/* ------------------------------------------------------------------------ */

/* The last API request as it came: its method, path, query, each header's
 * name and value (NUL-terminated strings, one after the other), then its
 * body; turned into JSON only when GET /__mock/last asks. */
struct last_request {
	size_t n_headers;
	size_t body_len;
	char text[];
};

static pthread_mutex_t g_last_lock = PTHREAD_MUTEX_INITIALIZER;
static struct last_request *g_last;   /* owned; NULL until the first API request */

/* Adds name: value to the headers object, joining repeats with ", ". */
static void last_add_header(struct jb *b, struct json_object *headers,
			    const char *name, const char *value)
{
	struct json_object *old = json_get(headers, name);
	struct strbuf sb;

	if (old == NULL) {
		jb_set(b, headers, name, jb_string(b, value));
		return;
	}
	sb_init(&sb, MOCK_HEADER_MAX_BYTES * 2);
	if (sb_append_str(&sb, json_object_get_string(old)) != 0 ||
	    sb_append_str(&sb, ", ") != 0 || sb_append_str(&sb, value) != 0)
		b->ok = false;
	else
		jb_set(b, headers, name, jb_string_len(b, sb.data, sb.len));
	sb_free(&sb);
}

/* Appends s and its NUL at *p. */
static void last_put(char **p, const char *s)
{
	size_t n = strlen(s) + 1;

	memcpy(*p, s, n);
	*p += n;
}

/* Keeps a copy of r for GET /__mock/last (a copy a request: no JSON here,
 * on the path of every request). */
static void last_record(const struct mock_request *r)
{
	struct last_request *last;
	struct last_request *old;
	size_t size = strlen(r->method) + strlen(r->path) + strlen(r->query) + 3 + r->body_len + 1;
	char *p;
	size_t i;

	for (i = 0; i < r->n_headers; i++)
		size += strlen(r->headers[i].name) + strlen(r->headers[i].value) + 2;
	last = malloc(sizeof *last + size);
	if (last == NULL)
		return;
	last->n_headers = r->n_headers;
	last->body_len = r->body_len;
	p = last->text;
	last_put(&p, r->method);
	last_put(&p, r->path);
	last_put(&p, r->query);
	for (i = 0; i < r->n_headers; i++) {
		last_put(&p, r->headers[i].name);
		last_put(&p, r->headers[i].value);
	}
	if (r->body_len > 0)
		memcpy(p, r->body, r->body_len);
	p[r->body_len] = '\0';
	pthread_mutex_lock(&g_last_lock);
	old = g_last;
	g_last = last;
	pthread_mutex_unlock(&g_last_lock);
	free(old);
}

/* {"method":..,"path":..,"query":..,"headers":{..},"body":..} of the last
 * request, a new string of *len bytes (the caller frees it), or NULL with
 * *none set when there was none yet, or *none clear when out of memory. */
static char *last_json(size_t *len, bool *none)
{
	struct jb b = { .ok = true };
	struct json_object *root;
	struct json_object *headers;
	const char *text = NULL;
	const char *p;
	char *copy = NULL;
	size_t i;

	pthread_mutex_lock(&g_last_lock);
	*none = g_last == NULL;
	if (*none) {
		pthread_mutex_unlock(&g_last_lock);
		return NULL;
	}
	root = jb_object(&b);
	headers = jb_object(&b);
	p = g_last->text;
	jb_set(&b, root, "method", jb_string(&b, p));
	p += strlen(p) + 1;
	jb_set(&b, root, "path", jb_string(&b, p));
	p += strlen(p) + 1;
	jb_set(&b, root, "query", jb_string(&b, p));
	p += strlen(p) + 1;
	for (i = 0; i < g_last->n_headers; i++) {
		const char *name = p;
		const char *value = name + strlen(name) + 1;

		last_add_header(&b, headers, name, value);
		p = value + strlen(value) + 1;
	}
	jb_set(&b, root, "headers", headers);
	jb_set(&b, root, "body", jb_string_len(&b, p, g_last->body_len));
	pthread_mutex_unlock(&g_last_lock);
	if (b.ok)
		text = json_object_to_json_string_length(root, MOCK_JSON_FLAGS, len);
	if (text != NULL)
		copy = strndup(text, *len);
	json_object_put(root);
	return copy;
}

static void last_free(void)
{
	pthread_mutex_lock(&g_last_lock);
	free(g_last);
	g_last = NULL;
	pthread_mutex_unlock(&g_last_lock);
}

static bool admin_last(struct mock_conn *c, const struct mock_request *r)
{
	size_t len = 0;
	bool none = false;
	char *copy = last_json(&len, &none);
	bool keep = r->keep_alive;

	if (copy == NULL && none) {
		if (send_error(c, r, 404, "no API request received yet", false, NULL, keep) != 0)
			keep = false;
		return keep;
	}
	if (copy == NULL) {
		send_oom(c, r);
		return false;
	}
	if (send_response(c, r, 200, "application/json", NULL, copy, len, keep) != 0)
		keep = false;
	free(copy);
	return keep;
}

static bool admin_stats(struct mock_conn *c, const struct mock_request *r)
{
	char body[256];
	int n;

	n = snprintf(body, sizeof body,
		     "{\"requests\":%lu,\"chat\":%lu,\"embeddings\":%lu,\"models\":%lu,"
		     "\"generations\":%lu,\"open_streams\":%ld,\"connections\":%lu}",
		     atomic_load(&g_stat_requests), atomic_load(&g_stat_chat),
		     atomic_load(&g_stat_embeddings), atomic_load(&g_stat_models),
		     atomic_load(&g_stat_generations), atomic_load(&g_open_streams),
		     atomic_load(&g_stat_connections));
	if (n < 0 || (size_t)n >= sizeof body)
		return send_oom(c, r) == 0;
	if (send_response(c, r, 200, "application/json", NULL, body, (size_t)n, r->keep_alive) != 0)
		return false;
	return r->keep_alive;
}

/* Clears the counters and the last request; the generations and the billing
 * ledger stay, as an account's bills do. */
static bool admin_reset(struct mock_conn *c, const struct mock_request *r)
{
	static const char body[] = "{\"ok\":true}";

	atomic_store(&g_stat_requests, 0);
	atomic_store(&g_stat_chat, 0);
	atomic_store(&g_stat_embeddings, 0);
	atomic_store(&g_stat_models, 0);
	atomic_store(&g_stat_generations, 0);
	atomic_store(&g_stat_connections, 0);
	last_free();
	if (send_response(c, r, 200, "application/json", NULL, body, sizeof body - 1,
			  r->keep_alive) != 0)
		return false;
	return r->keep_alive;
}

/* POST /__mock/scenario with options as the body ("fail=500"); empty: none. */
static bool admin_scenario(struct mock_conn *c, const struct mock_request *r)
{
	static const char body[] = "{\"ok\":true}";
	struct mock_options o;
	char err[256], text[sizeof g_scenario];
	size_t len = r->body_len;
	bool keep = r->keep_alive;

	if (len >= sizeof text) {
		if (send_error(c, r, 400, "scenario too long", false, NULL, keep) != 0)
			keep = false;
		return keep;
	}
	memcpy(text, r->body != NULL ? r->body : "", len);
	text[len] = '\0';
	pthread_mutex_lock(&g_scenario_lock);
	memcpy(g_scenario, text, len + 1);
	pthread_mutex_unlock(&g_scenario_lock);
	options_init(&o);
	if (scenario_apply(&o, err, sizeof err) != 0) {
		pthread_mutex_lock(&g_scenario_lock);
		g_scenario[0] = '\0';
		pthread_mutex_unlock(&g_scenario_lock);
		if (send_error(c, r, 400, err, false, NULL, keep) != 0)
			keep = false;
		return keep;
	}
	if (send_response(c, r, 200, "application/json", NULL, body, sizeof body - 1, keep) != 0)
		return false;
	return keep;
}

/* A non-negative integer field of at most max; NULL (absent) is 0.  Returns 0
 * or -1. */
static int bill_count(struct json_object *v, int64_t max, uint64_t *out)
{
	int64_t n;

	*out = 0;
	if (v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return -1;
	errno = 0;
	n = json_object_get_int64(v);
	if (errno != 0 || n < 0 || n > max)
		return -1;
	*out = (uint64_t)n;
	return 0;
}

/* POST /__mock/bill {"model":"m","cost":"0.0123","prompt_tokens":N,
 * "completion_tokens":N,"key":"sk-...","date":"YYYY-MM-DD"}: adds a billed
 * request to the ledger only (traffic that bypassed the gateway, or an
 * earlier day).  model and cost are required; the tokens default to 0, key
 * to none (billed to the hash of ""), date to today.  Answers
 * {"ok":true,"date":...,"api_key_hash":...}. */
static bool admin_bill(struct mock_conn *c, const struct mock_request *r)
{
	static const char *const fields[] = {
		"model", "cost", "prompt_tokens", "completion_tokens", "key", "date",
	};
	struct json_object *root = json_parse_body(r->body, r->body_len);
	struct json_object *model;
	struct json_object *cost;
	struct json_object *key;
	struct json_object *date;
	struct json_object *ans = NULL;
	struct jb b = { .ok = true };
	const char *emsg = NULL;
	char hash[MOCK_KEY_HASH_LEN + 1];
	char day_text[MOCK_DAY_LEN];
	char field_msg[128];
	uint64_t cost_nano = 0;
	uint64_t prompt = 0;
	uint64_t completion = 0;
	int64_t day = utc_day(time(NULL));
	bool keep = r->keep_alive;

	if (root == NULL || !json_object_is_type(root, json_type_object)) {
		emsg = "the body must be a JSON object";
		goto bad;
	}
	json_object_object_foreach(root, name, val) {
		size_t k;

		(void)val;
		for (k = 0; k < sizeof fields / sizeof fields[0]; k++) {
			if (strcmp(name, fields[k]) == 0)
				break;
		}
		if (k == sizeof fields / sizeof fields[0]) {
			snprintf(field_msg, sizeof field_msg, "unknown field '%.64s'", name);
			emsg = field_msg;
			goto bad;
		}
	}
	model = json_get(root, "model");
	if (model == NULL || !json_object_is_type(model, json_type_string) ||
	    json_object_get_string_len(model) == 0) {
		emsg = "model must be a non-empty string";
		goto bad;
	}
	cost = json_get(root, "cost");
	if (cost == NULL ||
	    !(json_object_is_type(cost, json_type_string) ||
	      json_object_is_type(cost, json_type_int) ||
	      json_object_is_type(cost, json_type_double)) ||
	    parse_usd_nano(json_object_get_string(cost), MOCK_USD_MAX_NANO, &cost_nano) != 0) {
		emsg = "cost must be a decimal USD amount (at most 9 decimals, up to 1000000)";
		goto bad;
	}
	if (bill_count(json_get(root, "prompt_tokens"), MOCK_BILL_MAX_TOKENS, &prompt) != 0 ||
	    bill_count(json_get(root, "completion_tokens"), MOCK_BILL_MAX_TOKENS,
		       &completion) != 0) {
		emsg = "prompt_tokens and completion_tokens must be integers from 0 to 1e12";
		goto bad;
	}
	key = json_get(root, "key");
	if (key != NULL && !json_object_is_type(key, json_type_null) &&
	    !json_object_is_type(key, json_type_string)) {
		emsg = "key must be a string";
		goto bad;
	}
	date = json_get(root, "date");
	if (date != NULL && !json_object_is_type(date, json_type_null) &&
	    (!json_object_is_type(date, json_type_string) ||
	     parse_utc_day(json_object_get_string(date), &day) != 0)) {
		emsg = "date must be a UTC day YYYY-MM-DD";
		goto bad;
	}
	if (key_hash_hex(json_object_is_type(key, json_type_string) ?
			 json_object_get_string(key) : NULL, hash) != 0) {
		send_oom(c, r);
		keep = false;
		goto out;
	}
	switch (ledger_add(day, json_object_get_string(model), hash, prompt, completion,
			   cost_nano)) {
	case LEDGER_OK:
		break;
	case LEDGER_NO_MEMORY:
		send_oom(c, r);
		keep = false;
		goto out;
	case LEDGER_OVERFLOW:
		emsg = "the ledger's totals would overflow";
		goto bad;
	}
	format_utc_day(day, day_text, sizeof day_text);
	ans = jb_object(&b);
	jb_set(&b, ans, "ok", jb_bool(&b, true));
	jb_set(&b, ans, "date", jb_string(&b, day_text));
	jb_set(&b, ans, "api_key_hash", jb_string(&b, hash));
	keep = reply_json(c, r, &b, ans);
	goto out;
bad:
	keep = reply_error(c, r, 400, emsg);
out:
	json_object_put(root);
	return keep;
}

static bool handle_admin(struct mock_conn *c, const struct mock_request *r)
{
	static const struct {
		const char *path;
		const char *method;
		bool (*fn)(struct mock_conn *, const struct mock_request *);
	} admin_routes[] = {
		{ "/__mock/stats", "GET", admin_stats },
		{ "/__mock/last", "GET", admin_last },
		{ "/__mock/reset", "POST", admin_reset },
		{ "/__mock/bill", "POST", admin_bill },
		{ "/__mock/scenario", "POST", admin_scenario },
	};
	bool keep = r->keep_alive;
	size_t i;

	for (i = 0; i < sizeof admin_routes / sizeof admin_routes[0]; i++) {
		char allow[64];

		if (strcmp(r->path, admin_routes[i].path) != 0)
			continue;
		if (strcmp(r->method, admin_routes[i].method) == 0)
			return admin_routes[i].fn(c, r);
		snprintf(allow, sizeof allow, "Allow: %s\r\n", admin_routes[i].method);
		if (send_error(c, r, 405, "Method Not Allowed", false, allow, keep) != 0)
			keep = false;
		return keep;
	}
	if (send_error(c, r, 404, "Not Found", false, NULL, keep) != 0)
		keep = false;
	return keep;
}

/* ------------------------------------------------------------------------ */
/* Routing                                                                  */
/* ------------------------------------------------------------------------ */

static const struct {
	const char *path;        /* after the /api/v1 or /v1 prefix */
	const char *method;
	enum mock_route route;
} k_routes[] = {
	{ "/chat/completions", "POST", ROUTE_CHAT },
	{ "/embeddings", "POST", ROUTE_EMBEDDINGS },
	{ "/models", "GET", ROUTE_MODELS },
	{ "/embeddings/models", "GET", ROUTE_EMBEDDING_MODELS },
	{ "/generation", "GET", ROUTE_GENERATION },
	{ "/key", "GET", ROUTE_KEY },
	{ "/activity", "GET", ROUTE_ACTIVITY },
	{ "/credits", "GET", ROUTE_CREDITS },
};

static const char *strip_api_prefix(const char *path)
{
	if (strncmp(path, "/api/v1/", 8) == 0)
		return path + 7;
	if (strncmp(path, "/v1/", 4) == 0)
		return path + 3;
	return NULL;
}

/* The token of "Authorization: Bearer <token>", or NULL. */
static const char *request_bearer(const struct mock_request *r)
{
	const char *auth = request_header(r, "authorization");
	const char *token;

	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
		return NULL;
	token = auth + 7;
	while (*token == ' ')
		token++;
	return token;
}

/* True if the request carries "Authorization: Bearer <--management-key>". */
static bool is_management_request(const struct mock_request *r)
{
	const char *token = request_bearer(r);

	return g_cfg.management_key != NULL && token != NULL &&
	       strcmp(token, g_cfg.management_key) == 0;
}

/* 0 if the request carries "Authorization: Bearer <--require-key>". */
static int check_auth(const struct mock_request *r, const char **message)
{
	const char *token = request_bearer(r);

	if (g_cfg.require_key == NULL)
		return 0;
	if (token == NULL) {
		*message = "No auth credentials found";
		return -1;
	}
	if (strcmp(token, g_cfg.require_key) != 0) {
		*message = "User not found.";
		return -1;
	}
	return 0;
}

/* Serves the API request routed and authenticated in c->call.  Returns
 * whether to keep the connection; with c->deferred set (in the event loop),
 * it served nothing and a thread calls it again. */
static bool route_call(struct mock_conn *c, const struct mock_request *r)
{
	const char *key_hash = c->call.key_hash;
	bool management = c->call.management;

	switch (c->call.route) {
	case ROUTE_CHAT:
		return handle_chat(c, r, key_hash);
	case ROUTE_EMBEDDINGS:
		return handle_embeddings(c, r, key_hash);
	case ROUTE_MODELS:
		return handle_models(c, r, k_chat_models,
				     sizeof k_chat_models / sizeof k_chat_models[0]);
	case ROUTE_EMBEDDING_MODELS:
		return handle_models(c, r, k_embedding_models,
				     sizeof k_embedding_models / sizeof k_embedding_models[0]);
	case ROUTE_GENERATION:
		if (!g_cfg.generation_api) {
			static const char page[] = "<html><body>404 Not Found</body></html>\n";

			return send_response(c, r, 404, "text/html", NULL, page, sizeof page - 1,
					     r->keep_alive) == 0 && r->keep_alive;
		}
		return handle_generation(c, r);
	case ROUTE_KEY:
		return handle_key(c, r, management ? NULL : key_hash);
	case ROUTE_ACTIVITY:
		return handle_activity(c, r);
	case ROUTE_CREDITS:
		return handle_credits(c, r);
	}
	return false;
}

static bool handle_request(struct mock_conn *c, const struct mock_request *r)
{
	const char *sub;
	const char *auth_message = NULL;
	bool keep = r->keep_alive;
	bool path_known = false;
	bool management;
	enum mock_route route;
	char allow[64];
	size_t i;

	if (strncmp(r->path, "/__mock/", 8) == 0)
		return handle_admin(c, r);

	atomic_fetch_add(&g_stat_requests, 1);
	last_record(r);
	sub = strip_api_prefix(r->path);
	for (i = 0; sub != NULL && i < sizeof k_routes / sizeof k_routes[0]; i++) {
		if (strcmp(sub, k_routes[i].path) != 0)
			continue;
		path_known = true;
		if (strcmp(r->method, k_routes[i].method) == 0)
			break;
		snprintf(allow, sizeof allow, "Allow: %s\r\n", k_routes[i].method);
	}
	if (!path_known) {
		if (send_error(c, r, 404, "Not Found", false, NULL, keep) != 0)
			keep = false;
		return keep;
	}
	if (i == sizeof k_routes / sizeof k_routes[0]) {
		if (send_error(c, r, 405, "Method Not Allowed", false, allow, keep) != 0)
			keep = false;
		return keep;
	}
	route = k_routes[i].route;
	switch (route) {
	case ROUTE_CHAT:
		atomic_fetch_add(&g_stat_chat, 1);
		break;
	case ROUTE_EMBEDDINGS:
		atomic_fetch_add(&g_stat_embeddings, 1);
		break;
	case ROUTE_MODELS:
	case ROUTE_EMBEDDING_MODELS:
		atomic_fetch_add(&g_stat_models, 1);
		break;
	case ROUTE_GENERATION:
		atomic_fetch_add(&g_stat_generations, 1);
		break;
	case ROUTE_KEY:
	case ROUTE_ACTIVITY:
	case ROUTE_CREDITS:
		break;
	}
	/* The management key is not an inference key: the management routes
	 * take it only and never look at --require-key; /key takes either. */
	management = is_management_request(r);
	if (route == ROUTE_ACTIVITY || route == ROUTE_CREDITS) {
		if (!management)
			return reply_error(c, r, 403, k_management_only);
	} else if (!(route == ROUTE_KEY && management)) {
		if (check_auth(r, &auth_message) != 0)
			return reply_error(c, r, 401, auth_message);
		/* what this request generates is billed to its key */
		if (key_hash_hex(request_bearer(r), c->call.key_hash) != 0) {
			send_oom(c, r);
			return false;
		}
	} else {
		c->call.key_hash[0] = '\0';
	}
	c->call.route = route;
	c->call.management = management;
	return route_call(c, r);
}

/* ------------------------------------------------------------------------ */
/* Connection threads                                                       */
/* ------------------------------------------------------------------------ */

/* Half-closes, drains what the peer still sends (so close() does not turn
 * into a reset that destroys our last response), then closes. */
static void conn_close(struct mock_conn *c)
{
	char tmp[4096];
	size_t drained = 0;
	long waited = 0;

	if (shutdown(c->fd, SHUT_WR) == 0) {
		while (!atomic_load(&g_stop) && waited < MOCK_LINGER_MS &&
		       drained < MOCK_LINGER_BYTES) {
			struct pollfd p = { .fd = c->fd, .events = POLLIN };
			int rc = poll(&p, 1, 100);
			ssize_t n;

			if (rc < 0 && errno == EINTR)
				continue;
			if (rc < 0)
				break;
			if (rc == 0) {
				waited += 100;
				continue;
			}
			n = recv(c->fd, tmp, sizeof tmp, MSG_DONTWAIT);
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0)
				break;
			drained += (size_t)n;
		}
	}
	close(c->fd);
	c->fd = -1;
}

/* Reads the next request into *req (the caller frees it) and answers it, or
 * the error reading it; *keep says whether the connection may serve more. */
static enum read_status conn_serve_one(struct mock_conn *c, struct mock_request *req,
				       bool *keep)
{
	enum read_status st;

	*keep = false;
	request_init(req);
	st = read_request(c, req);
	switch (st) {
	case READ_OK:
		*keep = handle_request(c, req);
		break;
	case READ_BAD:
		send_error(c, req, 400, "Bad Request", false, NULL, false);
		break;
	case READ_TOO_LARGE:
		send_error(c, req, 413, "Request body too large", false, NULL, false);
		break;
	case READ_HEADERS_TOO_LARGE:
		send_error(c, req, 431, "Request header fields too large", false, NULL, false);
		break;
	case READ_CLOSED:
		break;
	}
	return st;
}

static void conn_serve(struct mock_conn *c)
{
	for (;;) {
		struct mock_request req;
		bool keep;

		conn_serve_one(c, &req, &keep);
		request_free(&req);
		if (!keep || atomic_load(&g_stop))
			break;
	}
}

/* A connection the event loop handed over: writes what the loop had not,
 * serves the request it deferred, then every next one with blocking calls. */
static void *conn_thread(void *arg)
{
	struct mock_conn *c = arg;
	bool keep = true;

	if (c->out.len > c->out_sent &&
	    conn_send(c, c->out.data + c->out_sent, c->out.len - c->out_sent) != 0)
		keep = false;
	sb_free(&c->out);
	if (c->held) {
		if (keep)
			keep = route_call(c, &c->held_req);
		request_free(&c->held_req);
		c->held = false;
	}
	if (keep && !atomic_load(&g_stop))
		conn_serve(c);
	conn_close(c);
	free(c);
	atomic_fetch_sub(&g_active_conns, 1);
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Event loop                                                               */
/* ------------------------------------------------------------------------ */

struct mock_loop {
	int epfd;
	int lfd;
	pthread_attr_t attr;        /* of the connection threads: detached */
	struct mock_conn *conns;    /* every connection the loop serves */
	struct mock_conn *spares;   /* closed ones, kept for reuse */
	size_t n_spares;
	int64_t swept_ms;           /* last look for idle connections */
};

enum ready_status {
	REQ_READY = 0,    /* the buffer holds a whole request */
	REQ_NEED_MORE,    /* wait for more bytes */
	REQ_HANDOFF       /* needs a connection thread (see conn_request_ready) */
};

/* True when the header line [line, line + len) is named name (lowercase,
 * with its colon); *value then points after the colon. */
static bool head_line_is(const char *line, size_t len, const char *name, const char **value)
{
	size_t n = strlen(name);

	if (len < n || strncasecmp(line, name, n) != 0)
		return false;
	*value = line + n;
	return true;
}

/* Whether rbuf holds a whole request that read_request() can parse without
 * reading the socket.  A chunked body, Expect: 100-continue before its body,
 * and a request that cannot fit the buffer go to a connection thread, as do
 * blank lines before the request line.  A malformed head counts as ready:
 * the parser answers it.  Reads the buffer only. */
static enum ready_status conn_request_ready(const struct mock_conn *c)
{
	const char *p = c->rbuf + c->rstart;
	const char *end = c->rbuf + c->rend;
	uint64_t length = 0;
	bool expect = false;
	bool first = true;

	if (p == end)
		return REQ_NEED_MORE;
	if (*p == '\r' || *p == '\n')
		return REQ_HANDOFF;
	for (;;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *value;
		size_t len;

		if (nl == NULL)
			break;
		len = (size_t)(nl - p);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (len == 0) {
			size_t need = (size_t)(nl + 1 - (c->rbuf + c->rstart));

			if (length > MOCK_BODY_MAX)
				return REQ_READY;   /* answered 413 without its body */
			need += (size_t)length;
			if (need <= (size_t)(end - (c->rbuf + c->rstart)))
				return REQ_READY;
			if (need > sizeof c->rbuf || expect)
				return REQ_HANDOFF;
			return REQ_NEED_MORE;
		}
		if (!first) {
			if (head_line_is(p, len, "transfer-encoding:", &value))
				return REQ_HANDOFF;
			if (head_line_is(p, len, "expect:", &value))
				expect = true;
			if (head_line_is(p, len, "content-length:", &value)) {
				uint64_t v = 0;
				int digits = 0;

				while (*value == ' ' || *value == '\t')
					value++;
				for (; *value >= '0' && *value <= '9' && digits < 19; value++, digits++)
					v = v * 10 + (uint64_t)(*value - '0');
				if (v > length)
					length = v;   /* values that differ are the parser's 400 */
			}
		}
		first = false;
		p = nl + 1;
	}
	return c->rend - c->rstart >= sizeof c->rbuf - 1 ? REQ_HANDOFF : REQ_NEED_MORE;
}

static void loop_link(struct mock_loop *lp, struct mock_conn *c)
{
	c->prev = NULL;
	c->next = lp->conns;
	if (lp->conns != NULL)
		lp->conns->prev = c;
	lp->conns = c;
}

static void loop_unlink(struct mock_loop *lp, struct mock_conn *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		lp->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = NULL;
	c->next = NULL;
}

/* Closes the connection and keeps its memory for the next one. */
static void loop_free(struct mock_loop *lp, struct mock_conn *c)
{
	loop_unlink(lp, c);
	close(c->fd);
	c->fd = -1;
	if (c->held) {
		request_free(&c->held_req);
		c->held = false;
	}
	if (lp->n_spares < MOCK_LOOP_SPARES && !atomic_load(&g_stop)) {
		if (c->out.cap > MOCK_LOOP_OUT_KEEP)
			sb_free(&c->out);
		c->next = lp->spares;
		lp->spares = c;
		lp->n_spares++;
		return;
	}
	sb_free(&c->out);
	free(c);
}

/* Hands the connection to a thread of its own (see conn_thread). */
static void loop_handoff(struct mock_loop *lp, struct mock_conn *c)
{
	pthread_t tid;
	int flags;

	if (c->watched)
		epoll_ctl(lp->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	loop_unlink(lp, c);
	c->in_loop = false;
	flags = fcntl(c->fd, F_GETFL);
	if (flags < 0 || fcntl(c->fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
		goto fail;
	atomic_fetch_add(&g_active_conns, 1);
	if (pthread_create(&tid, &lp->attr, conn_thread, c) == 0)
		return;
	atomic_fetch_sub(&g_active_conns, 1);
fail:
	close(c->fd);
	if (c->held)
		request_free(&c->held_req);
	sb_free(&c->out);
	free(c);
}

/* Waits for events on the connection from now on; 0 or -1. */
static int loop_watch(struct mock_loop *lp, struct mock_conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	if (epoll_ctl(lp->epfd, c->watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) != 0)
		return -1;
	c->watched = true;
	return 0;
}

/* Writes what it can of the answers; then closes a connection that is done.
 * Returns 0, or -1 when the connection is gone. */
static int loop_flush(struct mock_loop *lp, struct mock_conn *c)
{
	while (c->out_sent < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + c->out_sent, c->out.len - c->out_sent,
				 MSG_NOSIGNAL);

		if (n > 0) {
			c->out_sent += (size_t)n;
			c->active_ms = clock_ms(CLOCK_MONOTONIC);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!c->want_out) {
				/* read no more until the peer takes what it has */
				c->want_out = true;
				if (loop_watch(lp, c, EPOLLOUT) != 0)
					break;
			}
			return 0;
		}
		loop_free(lp, c);
		return -1;
	}
	c->out.len = 0;
	c->out_sent = 0;
	if (c->want_out) {
		c->want_out = false;
		if (loop_watch(lp, c, EPOLLIN) != 0) {
			loop_free(lp, c);
			return -1;
		}
	}
	if (c->state != CONN_FLUSHING)
		return 0;
	if (!c->linger || shutdown(c->fd, SHUT_WR) != 0) {
		loop_free(lp, c);
		return -1;
	}
	/* like conn_close: take what the peer still sends, so that closing
	 * does not reset the connection under the last answer */
	c->state = CONN_LINGERING;
	c->active_ms = clock_ms(CLOCK_MONOTONIC);
	return 0;
}

/* Serves the whole requests in the read buffer, then writes the answers;
 * again while a pause to let the answers out left requests waiting.
 * Returns 0, or -1 when the connection is gone (closed or handed off). */
static int loop_serve(struct mock_loop *lp, struct mock_conn *c, bool peer_done)
{
	bool more = true;

	while (more) {
		more = false;
		while (c->state == CONN_READING) {
			struct mock_request req;
			enum read_status st;
			bool keep;

			if (c->out.len - c->out_sent >= MOCK_LOOP_OUT_HIGH) {
				more = true;
				break;
			}
			switch (conn_request_ready(c)) {
			case REQ_NEED_MORE:
				goto flush;
			case REQ_HANDOFF:
				loop_handoff(lp, c);
				return -1;
			case REQ_READY:
				break;
			}
			st = conn_serve_one(c, &req, &keep);
			if (c->deferred) {
				c->deferred = false;
				c->held = true;
				c->held_req = req;
				loop_handoff(lp, c);
				return -1;
			}
			request_free(&req);
			if (!keep || atomic_load(&g_stop)) {
				c->state = CONN_FLUSHING;
				c->linger = st != READ_OK || c->rend > c->rstart;
			}
		}
flush:
		if (peer_done && c->state == CONN_READING && !more)
			c->state = CONN_FLUSHING;   /* nothing more will come */
		if (loop_flush(lp, c) != 0)
			return -1;
		if (c->want_out)
			return 0;   /* served again once the peer took the answers */
	}
	return 0;
}

/* The socket is readable (or hung up): read, then serve.  Returns 0, or -1
 * when the connection is gone. */
static int loop_read(struct mock_loop *lp, struct mock_conn *c)
{
	ssize_t n;

	if (c->state == CONN_LINGERING) {
		char tmp[4096];

		n = recv(c->fd, tmp, sizeof tmp, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		c->drained += n > 0 ? (size_t)n : 0;
		if (n > 0 && c->drained < MOCK_LINGER_BYTES)
			return 0;
		loop_free(lp, c);
		return -1;
	}
	if (c->state != CONN_READING)
		return 0;
	if (c->rend == sizeof c->rbuf && c->rstart == 0) {
		loop_handoff(lp, c);   /* a head too large: the thread answers 431 */
		return -1;
	}
	if (c->rstart == c->rend) {
		c->rstart = 0;
		c->rend = 0;
	} else if (c->rstart > 0 && c->rend == sizeof c->rbuf) {
		memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
		c->rend -= c->rstart;
		c->rstart = 0;
	}
	n = recv(c->fd, c->rbuf + c->rend, sizeof c->rbuf - c->rend, 0);
	if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n < 0) {
		loop_free(lp, c);
		return -1;
	}
	c->rend += (size_t)n;
	c->active_ms = clock_ms(CLOCK_MONOTONIC);
	return loop_serve(lp, c, n == 0);
}

/* Accepts what waits.  The listening socket defers accepting until the
 * request has come (TCP_DEFER_ACCEPT) and its TCP_NODELAY and send timeout
 * pass to the accepted sockets: a new connection is read at once, and one
 * that is done with its request (a proxy's, one a request) is closed
 * without ever entering the epoll set. */
static void loop_accept(struct mock_loop *lp)
{
	int i;

	for (i = 0; i < MOCK_LOOP_ACCEPTS; i++) {
		struct mock_conn *c;
		int fd = accept4(lp->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				struct timespec ts = { .tv_sec = 0, .tv_nsec = 50 * 1000 * 1000 };

				nanosleep(&ts, NULL);
			}
			return;
		}
		if (lp->spares != NULL) {
			c = lp->spares;
			lp->spares = c->next;
			lp->n_spares--;
		} else {
			c = malloc(sizeof *c);
			if (c == NULL) {
				close(fd);
				continue;
			}
			sb_init(&c->out, MOCK_RESPONSE_MAX + MOCK_HEADER_MAX_BYTES);
		}
		c->fd = fd;
		c->rstart = 0;
		c->rend = 0;
		c->hlen = 0;
		c->in_loop = true;
		c->deferred = false;
		c->held = false;
		c->out.len = 0;
		c->out_sent = 0;
		c->state = CONN_READING;
		c->linger = false;
		c->want_out = false;
		c->watched = false;
		c->active_ms = clock_ms(CLOCK_MONOTONIC);
		c->drained = 0;
		loop_link(lp, c);
		atomic_fetch_add(&g_stat_connections, 1);
		if (loop_read(lp, c) == 0 && !c->watched &&
		    loop_watch(lp, c, c->want_out ? EPOLLOUT : EPOLLIN) != 0)
			loop_free(lp, c);
	}
}

/* Closes the connections that made no progress for too long: silent
 * between requests, a peer that takes no answer, or one lingering. */
static void loop_sweep(struct mock_loop *lp, int64_t now)
{
	struct mock_conn *c = lp->conns;

	while (c != NULL) {
		struct mock_conn *next = c->next;
		int64_t idle = now - c->active_ms;

		if ((c->state == CONN_LINGERING && idle >= MOCK_LINGER_MS) ||
		    (c->want_out && idle >= MOCK_SEND_TIMEOUT_S * 1000) ||
		    idle >= MOCK_IDLE_TIMEOUT_MS)
			loop_free(lp, c);
		c = next;
	}
	lp->swept_ms = now;
}

static void loop_run(struct mock_loop *lp)
{
	struct epoll_event events[MOCK_LOOP_EVENTS];

	while (!atomic_load(&g_stop)) {
		int n = epoll_wait(lp->epfd, events, MOCK_LOOP_EVENTS, MOCK_POLL_SLICE_MS);
		int64_t now;
		int i;

		for (i = 0; i < n; i++) {
			struct mock_conn *c = events[i].data.ptr;

			if (c == NULL) {
				loop_accept(lp);
			} else if (c->want_out) {
				if ((events[i].events & (EPOLLERR | EPOLLHUP)) != 0)
					loop_free(lp, c);
				else if (loop_flush(lp, c) == 0 && !c->want_out)
					(void)loop_serve(lp, c, false);   /* what waited */
			} else {
				(void)loop_read(lp, c);
			}
		}
		now = clock_ms(CLOCK_MONOTONIC);
		if (now - lp->swept_ms >= 1000)
			loop_sweep(lp, now);
	}
}

/* At exit: closes every connection of the loop and frees their memory. */
static void loop_free_all(struct mock_loop *lp)
{
	while (lp->conns != NULL)
		loop_free(lp, lp->conns);
	while (lp->spares != NULL) {
		struct mock_conn *c = lp->spares;

		lp->spares = c->next;
		sb_free(&c->out);
		free(c);
	}
	lp->n_spares = 0;
}

static void *loop_thread(void *arg)
{
	struct mock_loop *lp = arg;

	t_tokener = json_tokener_new_ex(MOCK_JSON_DEPTH);
	loop_run(lp);
	loop_free_all(lp);
	if (t_tokener != NULL)
		json_tokener_free(t_tokener);
	t_tokener = NULL;
	return NULL;
}

/* Sets up the loop on the listening socket lfd; returns 0 or -1. */
static int loop_init(struct mock_loop *lp, int lfd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };

	memset(lp, 0, sizeof *lp);
	lp->lfd = lfd;
	lp->swept_ms = clock_ms(CLOCK_MONOTONIC);
	if (pthread_attr_init(&lp->attr) != 0)
		return -1;
	if (pthread_attr_setdetachstate(&lp->attr, PTHREAD_CREATE_DETACHED) != 0 ||
	    pthread_attr_setstacksize(&lp->attr, MOCK_THREAD_STACK) != 0)
		goto fail_attr;
	lp->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (lp->epfd < 0)
		goto fail_attr;
	if (epoll_ctl(lp->epfd, EPOLL_CTL_ADD, lfd, &ev) != 0) {
		close(lp->epfd);
		goto fail_attr;
	}
	return 0;
fail_attr:
	pthread_attr_destroy(&lp->attr);
	return -1;
}

static void loop_destroy(struct mock_loop *lp)
{
	close(lp->epfd);
	pthread_attr_destroy(&lp->attr);
}

/* ------------------------------------------------------------------------ */
/* Startup                                                                  */
/* ------------------------------------------------------------------------ */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mock-upstream [--host ADDR] --port N [--tokens N] [--delay-ms N]\n"
		"                     [--embedding-dim N] [--require-key KEY] [--pidfile FILE]\n"
		"                     [--management-key KEY] [--credits USD]\n"
		"\n"
		"  --host ADDR          address to listen on (default 127.0.0.1)\n"
		"  --port N             port; 0 picks a free one (default 0)\n"
		"  --tokens N           content tokens per stream (default 5)\n"
		"  --delay-ms N         delay between streamed tokens (default 0)\n"
		"  --embedding-dim N    embedding vector size (default 8)\n"
		"  --generation-delay-ms N  GET /generation answers 404 this long after a\n"
		"                       generation ends, as OpenRouter does (default 0)\n"
		"  --generation-api 0|1 0: GET /generation is an HTML 404, as on upstreams\n"
		"                       without it (default 1)\n"
		"  --require-key KEY    demand \"Authorization: Bearer KEY\" on API routes\n"
		"  --management-key KEY the only key GET /activity and GET /credits take (GET\n"
		"                       /key takes it too); without it they always answer 403\n"
		"  --credits USD        total_credits of GET /credits: a decimal, at most 9\n"
		"                       decimals, up to 1000000 (default 100)\n"
		"  --pidfile FILE       write the process id to FILE\n"
		"\n"
		"Every generation is billed to the SHA-256 of its request's bearer token, in a\n"
		"ledger kept until exit (GET /activity, /credits, /key; POST /__mock/bill adds\n"
		"to it).\n"
		"Prints \"listening on PORT\" once ready; exits on SIGTERM/SIGINT.\n"
		"Scenario options follow the model id: \"openai/gpt-4o-mini;fail=500;sleep=2000\"\n"
		"(fail=NNN sleep=MS cut=before cut=K midfail=K tokens=N delay=MS badjson=1\n"
		" dim=N ignore_base64=1).\n");
}

enum cli_kind {
	CLI_STRING,   /* const char * */
	CLI_LONG      /* long within [min, max] */
};

static const struct {
	const char *name;
	enum cli_kind kind;
	const char **str_dst;
	long *long_dst;
	long min;
	long max;
} k_cli_options[] = {
	{ "--host", CLI_STRING, &g_cfg.host, NULL, 0, 0 },
	{ "--port", CLI_LONG, NULL, &g_cfg.port, 0, 65535 },
	{ "--tokens", CLI_LONG, NULL, &g_cfg.tokens, 0, MOCK_MAX_TOKENS },
	{ "--delay-ms", CLI_LONG, NULL, &g_cfg.delay_ms, 0, MOCK_MAX_DELAY_MS },
	{ "--embedding-dim", CLI_LONG, NULL, &g_cfg.embedding_dim, 1, MOCK_MAX_DIM },
	{ "--generation-delay-ms", CLI_LONG, NULL, &g_cfg.generation_delay_ms, 0, MOCK_MAX_DELAY_MS },
	{ "--generation-api", CLI_LONG, NULL, &g_cfg.generation_api, 0, 1 },
	{ "--require-key", CLI_STRING, &g_cfg.require_key, NULL, 0, 0 },
	{ "--pidfile", CLI_STRING, &g_cfg.pidfile, NULL, 0, 0 },
	{ "--management-key", CLI_STRING, &g_cfg.management_key, NULL, 0, 0 },
	{ "--credits", CLI_STRING, &g_cfg.credits, NULL, 0, 0 },
};

/* Returns 0, 1 when --help was shown, or -1 on a usage error. */
static int parse_args(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *arg = argv[i];
		const char *eq = strchr(arg, '=');
		size_t name_len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
		const char *value;
		size_t k;

		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			usage(stdout);
			return 1;
		}
		for (k = 0; k < sizeof k_cli_options / sizeof k_cli_options[0]; k++) {
			if (strlen(k_cli_options[k].name) == name_len &&
			    strncmp(arg, k_cli_options[k].name, name_len) == 0)
				break;
		}
		if (k == sizeof k_cli_options / sizeof k_cli_options[0]) {
			fprintf(stderr, "mock-upstream: unknown option '%s'\n", arg);
			return -1;
		}
		if (eq != NULL) {
			value = eq + 1;
		} else if (i + 1 < argc) {
			value = argv[++i];
		} else {
			fprintf(stderr, "mock-upstream: option %s needs a value\n", k_cli_options[k].name);
			return -1;
		}
		if (k_cli_options[k].kind == CLI_STRING) {
			if (value[0] == '\0') {
				fprintf(stderr, "mock-upstream: option %s needs a value\n",
					k_cli_options[k].name);
				return -1;
			}
			*k_cli_options[k].str_dst = value;
		} else if (parse_long_text(value, k_cli_options[k].min, k_cli_options[k].max,
					   k_cli_options[k].long_dst) != 0) {
			fprintf(stderr, "mock-upstream: %s must be an integer in [%ld, %ld]\n",
				k_cli_options[k].name, k_cli_options[k].min, k_cli_options[k].max);
			return -1;
		}
	}
	if (parse_usd_nano(g_cfg.credits, MOCK_USD_MAX_NANO, &g_cfg.credits_nano) != 0) {
		fprintf(stderr, "mock-upstream: --credits must be a decimal USD amount with at "
			"most 9 decimals, up to 1000000\n");
		return -1;
	}
	return 0;
}

/* What every accepted socket inherits from the listening one: no Nagle
 * delay, a send timeout for connection threads; and accept only once the
 * request's first bytes have come (up to a second). */
static int listen_options(int fd)
{
	struct timeval tv = { .tv_sec = MOCK_SEND_TIMEOUT_S, .tv_usec = 0 };
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &one, sizeof one) != 0)
		return -1;
	return 0;
}

/* Binds and listens; returns the socket and the bound port, or -1. */
static int listen_on(const char *host, long port, int *bound_port)
{
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	struct addrinfo *ai;
	struct sockaddr_storage ss;
	socklen_t ss_len = sizeof ss;
	char service[16];
	int fd = -1;
	int one = 1;
	int rc;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(service, sizeof service, "%ld", port);
	rc = getaddrinfo(host, service, &hints, &res);
	if (rc != 0) {
		fprintf(stderr, "mock-upstream: cannot resolve %s: %s\n", host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    ai->ai_protocol);
		if (fd < 0)
			continue;
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
		    listen_options(fd) == 0 &&
		    bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4096) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		fprintf(stderr, "mock-upstream: cannot listen on %s:%ld: %s\n", host, port,
			strerror(errno));
		return -1;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &ss_len) != 0) {
		fprintf(stderr, "mock-upstream: getsockname: %s\n", strerror(errno));
		close(fd);
		return -1;
	}
	if (ss.ss_family == AF_INET6)
		*bound_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		*bound_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

static int write_pidfile(const char *path)
{
	FILE *f = fopen(path, "w");

	if (f == NULL) {
		fprintf(stderr, "mock-upstream: cannot write %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fprintf(f, "%ld\n", (long)getpid()) < 0) {
		fclose(f);
		return -1;
	}
	if (fclose(f) != 0) {
		fprintf(stderr, "mock-upstream: cannot write %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

static void on_signal(int sig)
{
	(void)sig;   /* never runs: the signals are blocked and taken by sigwait */
}

/* Ignores SIGPIPE and blocks SIGTERM/SIGINT in every thread, for sigwait. */
static int setup_signals(sigset_t *waitset)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGPIPE, &sa, NULL) != 0)
		return -1;
	sa.sa_handler = on_signal;   /* undo an inherited SIG_IGN */
	if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
		return -1;
	sigemptyset(waitset);
	sigaddset(waitset, SIGTERM);
	sigaddset(waitset, SIGINT);
	return pthread_sigmask(SIG_BLOCK, waitset, NULL) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	sigset_t waitset;
	struct mock_loop loop;
	pthread_t loop_tid;
	int lfd;
	int port = 0;
	int sig = 0;
	int rc;
	int i;

	rc = parse_args(argc, argv);
	if (rc != 0) {
		if (rc < 0)
			usage(stderr);
		return rc < 0 ? 2 : 0;
	}
	if (setup_signals(&waitset) != 0) {
		fprintf(stderr, "mock-upstream: cannot set up signals\n");
		return 1;
	}
	lfd = listen_on(g_cfg.host, g_cfg.port, &port);
	if (lfd < 0)
		return 1;
	if (g_cfg.pidfile != NULL && write_pidfile(g_cfg.pidfile) != 0) {
		close(lfd);
		return 1;
	}
	if (loop_init(&loop, lfd) != 0) {
		fprintf(stderr, "mock-upstream: cannot set up the event loop\n");
		close(lfd);
		return 1;
	}
	if (pthread_create(&loop_tid, NULL, loop_thread, &loop) != 0) {
		fprintf(stderr, "mock-upstream: cannot start the event loop\n");
		loop_destroy(&loop);
		close(lfd);
		return 1;
	}
	printf("listening on %d\n", port);
	fflush(stdout);

	while (sigwait(&waitset, &sig) != 0)
		;
	atomic_store(&g_stop, 1);
	pthread_join(loop_tid, NULL);
	loop_destroy(&loop);
	close(lfd);
	/* connection threads notice g_stop within a poll slice */
	for (i = 0; i < 100 && atomic_load(&g_active_conns) > 0; i++) {
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 20 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
	if (g_cfg.pidfile != NULL)
		unlink(g_cfg.pidfile);
	if (atomic_load(&g_active_conns) == 0) {
		gen_store_free();
		last_free();
		emb_cache_free();
		ledger_free();
	}
	return 0;
}
