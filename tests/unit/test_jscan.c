#include "config.h"

#include <check.h>
#include <limits.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jscan.h"
#include "money.h"
#include "text.h"
#include "usage.h"
#include "../jsonref.h"

/* What json-c makes of text: the judge.  Loose is json_tokener_parse (as
 * for upstream answers), strict is the request parser's mode (strict,
 * depth 64, nothing but white space after the value). */
static json_object *
json_c_loose(const char *text, size_t len)
{
	char *copy = malloc(len + 1);
	json_object *o;

	ck_assert_ptr_nonnull(copy);
	memcpy(copy, text, len);
	copy[len] = '\0';
	o = json_tokener_parse(copy);
	free(copy);
	return o;
}

static int
json_c_strict_ok(const char *text, size_t len)
{
	json_tokener *tok = json_tokener_new_ex(64);
	json_object *o;
	size_t end, i;
	int ok;

	ck_assert_ptr_nonnull(tok);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, text, (int)len);
	ok = o != NULL && json_tokener_get_error(tok) == json_tokener_success;
	end = json_tokener_get_parse_end(tok);
	for (i = end; ok && i < len; i++)
		ok = text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n';
	json_object_put(o);
	json_tokener_free(tok);
	return ok;
}

/* Whatever the scanner accepts, json-c accepts in both modes, with the
 * same type at the top. */
static void
check_agrees(const char *text, size_t len)
{
	enum mg_jscan_type top;
	json_object *o;

	if (!scan_ok(text, len, &top))
		return;
	o = json_c_loose(text, len);
	ck_assert_msg(top == MG_JSCAN_NULL || o != NULL, "scanner accepts, json-c does not: '%.*s'",
	    (int)len, text);
	if (top != MG_JSCAN_NUMBER)
		ck_assert_msg(json_object_get_type(o) == json_c_type(top), "type differs: '%.*s'",
		    (int)len, text);
	else
		ck_assert(json_object_is_type(o, json_type_int) || json_object_is_type(o, json_type_double));
	json_object_put(o);
	if (top == MG_JSCAN_OBJECT || top == MG_JSCAN_ARRAY)
		ck_assert_msg(json_c_strict_ok(text, len),
		    "scanner accepts, strict json-c does not: '%.*s'", (int)len, text);
}

static const struct {
	const char *text;
	int ok;
} texts[] = {
	{ "{}", 1 },
	{ "[]", 1 },
	{ " \t\r\n{ } \n", 1 },
	{ "{\"a\":1}", 1 },
	{ "{\"a\":[1,2,{\"b\":null}],\"c\":true,\"d\":false,\"e\":\"x\"}", 1 },
	{ "[0,-0,1.5,-1.5e10,2E-3,1e+2,123456789012345678901234567890]", 1 },
	{ "\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDE00 \\ud800 \\udc00x\"", 1 },
	{ "\"caf\xc3\xa9 \xff\"", 1 },
	{ "{\"\":\"\"}", 1 },
	{ "1", 1 },
	{ "null", 1 },
	/* raw control characters in strings, as json-c takes them */
	{ "\"a\x01\"", 1 },
	{ "\"a\nb\"", 1 },
	{ "{\"a\x1f\":\"\t\"}", 1 },
	/* refused */
	{ "", 0 },
	{ " ", 0 },
	{ "{", 0 },
	{ "{\"a\"}", 0 },
	{ "{\"a\":}", 0 },
	{ "{\"a\":1,}", 0 },
	{ "[1,]", 0 },
	{ "[,1]", 0 },
	{ "{,}", 0 },
	{ "{\"a\" 1}", 0 },
	{ "{\"a\":1 \"b\":2}", 0 },
	{ "{'a':1}", 0 },
	{ "{a:1}", 0 },
	{ "[01]", 0 },
	{ "[1.]", 0 },
	{ "[.5]", 0 },
	{ "[1e]", 0 },
	{ "[-]", 0 },
	{ "[+1]", 0 },
	{ "[NaN]", 0 },
	{ "[Infinity]", 0 },
	{ "[TRUE]", 0 },
	{ "[nul]", 0 },
	{ "[truex]", 0 },
	{ "\"\\x\"", 0 },
	{ "\"\\u12\"", 0 },
	{ "\"\\u12g4\"", 0 },
	{ "\"abc", 0 },
	{ "{} x", 0 },
	{ "{}{}", 0 },
	{ "\xef\xbb\xbf{}", 0 },
	{ "\f{}", 0 },
	{ "{}/* c */", 0 },
	{ "[1]]", 0 },
	/* json-c takes these; RFC 8259 does not, nor does the scanner */
	{ "[1.]", 0 },
	{ "[00]", 0 },
	{ "[NaN]", 0 },
};

/* Nesting: MG_JSCAN_DEPTH levels and no more, as json-c in the gateway. */
START_TEST(depth_limit)
{
	char text[2 * MG_JSCAN_DEPTH + 8];
	enum mg_jscan_type top;
	int depth, i, n;

	for (depth = MG_JSCAN_DEPTH - 1; depth <= MG_JSCAN_DEPTH + 1; depth++) {
		n = 0;
		for (i = 0; i < depth; i++)
			text[n++] = '[';
		for (i = 0; i < depth; i++)
			text[n++] = ']';
		ck_assert_int_eq(scan_ok(text, (size_t)n, &top), depth <= MG_JSCAN_DEPTH);
		ck_assert_int_eq(json_c_strict_ok(text, (size_t)n), depth <= MG_JSCAN_DEPTH);
	}
}
END_TEST

START_TEST(texts_table)
{
	enum mg_jscan_type top;
	size_t len = strlen(texts[_i].text);

	ck_assert_msg(scan_ok(texts[_i].text, len, &top) == texts[_i].ok, "'%s': want %d",
	    texts[_i].text, texts[_i].ok);
	check_agrees(texts[_i].text, len);
}
END_TEST

/* The NUL byte: never inside a text the scanner accepts (json-c stops
 * reading there). */
START_TEST(nul_refused)
{
	static const char a[] = "{\"a\":\"x\0y\"}", b[] = "{}\0";
	enum mg_jscan_type top;

	ck_assert(!scan_ok(a, sizeof(a) - 1, &top));
	ck_assert(!scan_ok(b, sizeof(b) - 1, &top));
	ck_assert(scan_ok(b, sizeof(b) - 2, &top));
}
END_TEST

/* --- a random JSON writer, for differential tests against json-c ------- */

static uint64_t rng_state;

static unsigned
rnd(unsigned n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (unsigned)(rng_state % n);
}

struct text {
	char *p;
	size_t len, cap;
};

static void
put(struct text *t, const char *s, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		t->cap = (t->len + n + 1) * 2;
		t->p = realloc(t->p, t->cap);
		ck_assert_ptr_nonnull(t->p);
	}
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = '\0';
}

static void
puts_(struct text *t, const char *s)
{
	put(t, s, strlen(s));
}

static void
space(struct text *t)
{
	static const char *const ws[] = { "", "", "", " ", "\n", "\t", "\r\n  " };

	puts_(t, ws[rnd(7)]);
}

static void
gen_string(struct text *t)
{
	static const char *const parts[] = {
		"a", "b", "model", "id", "usage", "role", " ", "\xc3\xa9", "\xff", "\\\"", "\\\\",
		"\\/", "\\n", "\\t", "\\b", "\\f", "\\r", "\\u0041", "\\u00e9", "\\u20AC", "\\u0000",
		"\\ud83d\\ude00", "\\ud800", "\\udc00", "\\ud800\\u0041", "0", "{", "]", ":", ","
	};
	unsigned i, n = rnd(6);

	puts_(t, "\"");
	for (i = 0; i < n; i++)
		puts_(t, parts[rnd(sizeof(parts) / sizeof(parts[0]))]);
	puts_(t, "\"");
}

static void
gen_number(struct text *t)
{
	static const char *const nums[] = {
		"0", "-0", "1", "-1", "42", "100000000", "100000001", "9223372036854775807",
		"9223372036854775808", "-9223372036854775808", "-9223372036854775809",
		"123456789012345678", "1234567890123456789", "99999999999999999999", "0.5",
		"-0.0", "1e5", "1E+5", "1e-7", "0.0000170", "2.5E+3", "1e999", "-1e-999", "10.25e2"
	};
	puts_(t, nums[rnd(sizeof(nums) / sizeof(nums[0]))]);
}

static void
gen_value(struct text *t, int depth)
{
	unsigned kind = rnd(depth > 30 ? 6 : 9), i, n;

	space(t);
	switch (kind) {
	case 0: gen_string(t); break;
	case 1: gen_number(t); break;
	case 2: puts_(t, "true"); break;
	case 3: puts_(t, "false"); break;
	case 4: puts_(t, "null"); break;
	case 5: gen_number(t); break;
	case 6:
	case 7:
		puts_(t, "{");
		n = rnd(4);
		for (i = 0; i < n; i++) {
			if (i > 0)
				puts_(t, ",");
			space(t);
			gen_string(t);
			space(t);
			puts_(t, ":");
			gen_value(t, depth + 1);
		}
		space(t);
		puts_(t, "}");
		break;
	default:
		puts_(t, "[");
		n = rnd(4);
		for (i = 0; i < n; i++) {
			if (i > 0)
				puts_(t, ",");
			gen_value(t, depth + 1);
		}
		space(t);
		puts_(t, "]");
		break;
	}
	space(t);
}

/* One random change: a byte replaced, removed or put in. */
static void
mutate(struct text *t)
{
	static const char bytes[] = "{}[]\",:\\ 0123456789-+.eEtrufalsn\x01\x7f\xff/";
	size_t at = t->len > 0 ? rnd((unsigned)t->len) : 0;
	char c = bytes[rnd(sizeof(bytes) - 1)];

	switch (rnd(3)) {
	case 0:
		if (t->len > 0)
			t->p[at] = c;
		break;
	case 1:
		if (t->len > 0) {
			memmove(t->p + at, t->p + at + 1, t->len - at);
			t->len--;
		}
		break;
	default:
		put(t, "", 1);  /* room for one more */
		t->len--;
		memmove(t->p + at + 1, t->p + at, t->len - at + 1);
		t->p[at] = c;
		t->len++;
		break;
	}
}

START_TEST(random_texts_agree)
{
	struct text t = { NULL, 0, 0 };
	enum mg_jscan_type top;
	int i, m, accepted = 0;

	rng_state = 0x9e3779b97f4a7c15ULL;
	for (i = 0; i < 20000; i++) {
		t.len = 0;
		gen_value(&t, 0);
		if (scan_ok(t.p, t.len, &top))
			accepted++;
		check_agrees(t.p, t.len);
		for (m = 0; m < 3; m++) {
			mutate(&t);
			check_agrees(t.p, t.len);
		}
	}
	/* most of what the writer makes is within reach */
	ck_assert_int_gt(accepted, 15000);
	free(t.p);
}
END_TEST

/* Decoded strings are json-c's. */
START_TEST(random_strings_decode)
{
	struct text t = { NULL, 0, 0 };
	struct mg_jscan s;
	struct mg_jscan_value v;
	char out[256];
	int i, decoded = 0;

	rng_state = 0x2545f4914f6cdd1dULL;
	for (i = 0; i < 20000; i++) {
		json_object *o;
		long n;
		int nul;

		t.len = 0;
		gen_string(&t);
		mg_jscan_init(&s, t.p, t.len);
		mg_jscan_value(&s, &v);
		ck_assert_int_eq(v.type, MG_JSCAN_STRING);
		n = mg_jscan_string(&v, out, sizeof(out), &nul);
		o = json_c_loose(t.p, t.len);
		ck_assert_ptr_nonnull(o);
		ck_assert_int_ge(n, 0);
		ck_assert_int_lt(n, (long)sizeof(out));
		decoded++;
		ck_assert_int_eq(n, json_object_get_string_len(o));
		ck_assert_msg(memcmp(out, json_object_get_string(o), (size_t)n) == 0, "'%s'", t.p);
		ck_assert_int_eq(out[n], '\0');
		ck_assert_int_eq(nul, memchr(out, '\0', (size_t)n) != NULL);
		if (!v.escaped)
			ck_assert(v.len == (size_t)n && memcmp(v.text, out, (size_t)n) == 0);
		json_object_put(o);
	}
	ck_assert_int_eq(decoded, 20000);
	free(t.p);
}
END_TEST

/* Cut to fit as snprintf would: the whole length returned. */
START_TEST(string_does_not_fit)
{
	struct mg_jscan s;
	struct mg_jscan_value v;
	char out[4];

	mg_jscan_init(&s, "\"abc\"", 5);
	mg_jscan_value(&s, &v);
	ck_assert_int_eq(mg_jscan_string(&v, out, sizeof(out), NULL), 3);
	ck_assert_str_eq(out, "abc");
	mg_jscan_init(&s, "\"abcd\"", 6);
	mg_jscan_value(&s, &v);
	ck_assert_int_eq(mg_jscan_string(&v, out, sizeof(out), NULL), 4);
	ck_assert_str_eq(out, "abc");
	mg_jscan_init(&s, "\"a\\u00e9\"", 9);
	mg_jscan_value(&s, &v);
	ck_assert_int_eq(mg_jscan_string(&v, out, sizeof(out), NULL), 3);
	ck_assert_str_eq(out, "a\xc3\xa9");
	mg_jscan_init(&s, "\"ab\\u00e9\"", 10);
	mg_jscan_value(&s, &v);
	ck_assert_int_eq(mg_jscan_string(&v, out, sizeof(out), NULL), 4);
	ck_assert_uint_eq(strlen(out), 3);
	mg_jscan_init(&s, "\"\\ud83d\\ude00\"", 14);
	mg_jscan_value(&s, &v);
	ck_assert_int_eq(mg_jscan_string(&v, out, 1, NULL), 4);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(mg_jscan_string(&v, out, 0, NULL), -1);
	mg_jscan_init(&s, "7", 1);
	mg_jscan_value(&s, &v);
	ck_assert_int_eq(mg_jscan_string(&v, out, sizeof(out), NULL), -1);
}
END_TEST

/* Every surrogate pair is one code point (json-c 0.16 turns those whose
 * code point ends in D800-DFFF, such as U+1DE00, into U+FFFD). */
START_TEST(surrogate_pairs)
{
	struct mg_jscan s;
	struct mg_jscan_value v;
	char out[16];

	mg_jscan_init(&s, "\"\\ud837\\ude00\"", 14);
	mg_jscan_value(&s, &v);
	ck_assert_int_eq(mg_jscan_string(&v, out, sizeof(out), NULL), 4);
	ck_assert_str_eq(out, "\xf0\x9d\xb8\x80");
	mg_jscan_init(&s, "\"\\udbff\\udfff\\ud800\"", 20);
	mg_jscan_value(&s, &v);
	ck_assert_int_eq(mg_jscan_string(&v, out, sizeof(out), NULL), 7);
	ck_assert_str_eq(out, "\xf4\x8f\xbf\xbf\xef\xbf\xbd");
}
END_TEST

/* Member names are compared decoded; a name named twice keeps its last
 * value. */
START_TEST(names_decoded_last_wins)
{
	static const char doc[] = "{\"\\u0061\":1,\"b\":2,\"a\":3,\"x\\\"\":4}";
	static const char *const names[] = { "a", "x\"", NULL };
	struct mg_jscan s;
	struct mg_jscan_value v, last = { MG_JSCAN_NONE, "", 0, 0, 0 };
	int i, seen = 0;

	mg_jscan_init(&s, doc, strlen(doc));
	mg_jscan_value(&s, &v);
	while ((i = mg_jscan_field(&s, names, NULL)) >= 0) {
		mg_jscan_value(&s, &v);
		if (i == 1)
			last = v;
		seen += i;
	}
	ck_assert_int_eq(seen, 1 + 1 + 2);
	ck_assert_uint_eq(last.len, 1);
	ck_assert_int_eq(last.text[0], '3');
	mg_jscan_init(&s, doc, strlen(doc));
	mg_jscan_value(&s, &v);
	mg_jscan_pick(&s, "a", &v);
	ck_assert(mg_jscan_ok(&s));
	ck_assert_int_eq(v.text[0], '3');
}
END_TEST

static const struct {
	const char *text;
	int rc;
	long long n;
} ints[] = {
	{ "0", 0, 0 },
	{ "-0", 0, 0 },
	{ "7", 0, 7 },
	{ "-7", 0, -7 },
	{ "123456789012345678", 0, 123456789012345678LL },
	{ "-123456789012345678", 0, -123456789012345678LL },
	{ "1234567890123456789", 0, 1234567890123456789LL },
	{ "9223372036854775807", 0, 9223372036854775807LL },
	{ "-9223372036854775808", 0, -9223372036854775807LL - 1 },
	{ "9223372036854775808", -1, 0 },
	{ "-9223372036854775809", -1, 0 },
	{ "12345678901234567890123", -1, 0 },
	{ "1.0", -1, 0 },
	{ "1e2", -1, 0 },
	{ "\"1\"", -1, 0 },
};

START_TEST(ints_table)
{
	struct mg_jscan s;
	struct mg_jscan_value v;
	long long n = 0;

	mg_jscan_init(&s, ints[_i].text, strlen(ints[_i].text));
	mg_jscan_value(&s, &v);
	ck_assert_int_eq(mg_jscan_int(&v, &n), ints[_i].rc);
	if (ints[_i].rc == 0)
		ck_assert_int_eq(n, ints[_i].n);
}
END_TEST

/* Walking a document by hand: members, elements, skipped values. */
START_TEST(walk)
{
	static const char doc[] = "{\"a\":[1,{\"x\":2}],\"b\":{\"c\":\"d\"},\"e\":3}";
	struct mg_jscan s;
	struct mg_jscan_value v, k;
	int n = 0;

	mg_jscan_init(&s, doc, strlen(doc));
	mg_jscan_value(&s, &v);
	ck_assert_int_eq(v.type, MG_JSCAN_OBJECT);
	ck_assert(mg_jscan_member(&s, &k));
	ck_assert(mg_jscan_is(&k, "a"));
	mg_jscan_value(&s, &v);
	ck_assert_int_eq(v.type, MG_JSCAN_ARRAY);
	while (mg_jscan_element(&s)) {
		n++;
		mg_jscan_next(&s);
	}
	ck_assert_int_eq(n, 2);
	ck_assert(mg_jscan_member(&s, &k));
	ck_assert(mg_jscan_is(&k, "b"));
	mg_jscan_next(&s);
	ck_assert(mg_jscan_member(&s, &k));
	ck_assert(mg_jscan_is(&k, "e"));
	ck_assert(!mg_jscan_is(&k, "ee"));
	mg_jscan_value(&s, &v);
	ck_assert_int_eq(v.type, MG_JSCAN_NUMBER);
	ck_assert_uint_eq(v.len, 1);
	ck_assert(!mg_jscan_member(&s, &k));
	mg_jscan_finish(&s);
	ck_assert(mg_jscan_ok(&s));
	/* a member read where an element is due fails, and stays failed */
	mg_jscan_init(&s, "[1]", 3);
	mg_jscan_value(&s, &v);
	ck_assert(!mg_jscan_member(&s, &k));
	ck_assert(!mg_jscan_ok(&s));
	ck_assert(!mg_jscan_element(&s));
	mg_jscan_value(&s, &v);
	ck_assert_int_eq(v.type, MG_JSCAN_NONE);
}
END_TEST

/* --- usage read in place: the same as from a json-c tree ---------------- */

static void
gen_usage_body(struct text *t)
{
	static const char *const names[] = { "id", "provider", "usage", "model", "choices", "i\\u0064" };
	static const char *const unames[] = { "prompt_tokens", "completion_tokens", "total_tokens",
		"cost", "is_byok", "cost_details", "prompt_\\u0074okens" };
	unsigned i, j, n = rnd(6), un;

	puts_(t, "{");
	for (i = 0; i < n; i++) {
		const char *name = names[rnd(sizeof(names) / sizeof(names[0]))];

		if (i > 0)
			puts_(t, ",");
		space(t);
		puts_(t, "\"");
		puts_(t, name);
		puts_(t, "\":");
		space(t);
		if (strcmp(name, "usage") == 0 && rnd(5) != 0) {
			puts_(t, "{");
			un = rnd(6);
			for (j = 0; j < un; j++) {
				if (j > 0)
					puts_(t, ",");
				puts_(t, "\"");
				puts_(t, unames[rnd(sizeof(unames) / sizeof(unames[0]))]);
				puts_(t, "\":");
				if (rnd(4) == 0)
					gen_value(t, 20);
				else
					gen_number(t);
			}
			puts_(t, "}");
		} else if (rnd(3) == 0) {
			gen_value(t, 0);
		} else {
			gen_string(t);
		}
	}
	space(t);
	puts_(t, "}");
}

static void
usage_equal(const struct mg_usage *a, const struct mg_usage *b, const char *text)
{
	ck_assert_msg(a->prompt_tokens == b->prompt_tokens, "prompt %lld vs %lld: %s",
	    a->prompt_tokens, b->prompt_tokens, text);
	ck_assert_msg(a->completion_tokens == b->completion_tokens, "completion: %s", text);
	ck_assert_msg(a->total_tokens == b->total_tokens, "total: %s", text);
	ck_assert_msg(strcmp(a->cost, b->cost) == 0, "cost '%s' vs '%s': %s", a->cost, b->cost, text);
	ck_assert_msg((a->cost_source == NULL) == (b->cost_source == NULL), "cost_source: %s", text);
	ck_assert_msg(strcmp(a->upstream_id, b->upstream_id) == 0, "id '%s' vs '%s': %s",
	    a->upstream_id, b->upstream_id, text);
	ck_assert_msg(strcmp(a->provider, b->provider) == 0, "provider: %s", text);
}

START_TEST(random_usage_agrees)
{
	struct text t = { NULL, 0, 0 };
	int i, m, fast = 0;

	rng_state = 0xd1b54a32d192ed03ULL;
	for (i = 0; i < 20000; i++) {
		t.len = 0;
		gen_usage_body(&t);
		for (m = 0; m < 2; m++) {
			struct mg_usage a, b, before;
			json_object *o = json_c_loose(t.p, t.len);
			int skip_cost;

			/* a stream's later chunk: fields kept from before */
			mg_usage_init(&before);
			if (rnd(2)) {
				before.prompt_tokens = 3;
				snprintf(before.upstream_id, sizeof(before.upstream_id), "gen-old");
			}
			a = before;
			b = before;
			skip_cost = o != NULL && json_object_is_type(o, json_type_object) &&
			    usage_from_tree(&a, o);
			if (mg_usage_from_text(&b, t.p, t.len) == MG_OK) {
				fast++;
				ck_assert_msg(o != NULL && json_object_is_type(o, json_type_object),
				    "read in place, not an object for json-c: %s", t.p);
				if (a.cost[0] != '\0' && strstr(t.p, a.cost) == NULL)
					snprintf(a.cost, sizeof(a.cost), "%s", b.cost);
				/* json-c turns a surrogate pair whose code point
				 * ends in D800-DFFF (U+1D800, U+2D800, ...) into
				 * U+FFFD; the reader decodes it */
				if (strcmp(a.upstream_id, b.upstream_id) != 0 &&
				    strstr(a.upstream_id, "\xef\xbf\xbd") != NULL)
					memcpy(a.upstream_id, b.upstream_id, sizeof(a.upstream_id));
				if (strcmp(a.provider, b.provider) != 0 &&
				    strstr(a.provider, "\xef\xbf\xbd") != NULL)
					memcpy(a.provider, b.provider, sizeof(a.provider));
				if (skip_cost) {
					memcpy(a.cost, b.cost, sizeof(a.cost));
					a.cost_source = b.cost_source;
				}
				usage_equal(&a, &b, t.p);
			} else {
				ck_assert(memcmp(&b, &before, sizeof(b)) == 0);
			}
			json_object_put(o);
			mutate(&t);
		}
	}
	ck_assert_int_gt(fast, 10000);
	free(t.p);
}
END_TEST

/* A value that is not a string, as mg_jscan_pick leaves it when the
 * member is absent: no text to decode, and none looked at (the fuzz
 * target fuzz_recon found its end computed from a NULL text). */
START_TEST(string_of_none)
{
	static const char body[] = "{\"a\":1}";
	struct mg_jscan s;
	struct mg_jscan_value v, slot;
	char out[8];

	memset(&slot, 0xa5, sizeof(slot));
	mg_jscan_init(&s, body, strlen(body));
	mg_jscan_value(&s, &v);
	mg_jscan_pick(&s, "message", &slot);
	ck_assert(mg_jscan_ok(&s));
	ck_assert_int_eq(slot.type, MG_JSCAN_NONE);
	ck_assert_ptr_null(slot.text);
	ck_assert_int_eq(slot.len, 0);
	ck_assert_int_eq(mg_jscan_string(&slot, out, sizeof(out), NULL), -1);
	slot.text = NULL;
	slot.len = 12345;
	ck_assert_int_eq(mg_jscan_string(&slot, out, sizeof(out), NULL), -1);
}
END_TEST

static Suite *
jscan_suite(void)
{
	Suite *s = suite_create("jscan");
	TCase *tc = tcase_create("jscan");

	tcase_add_loop_test(tc, texts_table, 0, (int)(sizeof(texts) / sizeof(texts[0])));
	tcase_add_test(tc, depth_limit);
	tcase_add_test(tc, nul_refused);
	tcase_add_test(tc, string_of_none);
	tcase_add_test(tc, random_texts_agree);
	tcase_add_test(tc, random_strings_decode);
	tcase_add_test(tc, string_does_not_fit);
	tcase_add_test(tc, names_decoded_last_wins);
	tcase_add_test(tc, surrogate_pairs);
	tcase_add_loop_test(tc, ints_table, 0, (int)(sizeof(ints) / sizeof(ints[0])));
	tcase_add_test(tc, walk);
	tcase_add_test(tc, random_usage_agrees);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(jscan_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
