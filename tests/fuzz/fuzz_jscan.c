/* fuzz_jscan.c -- The in-place JSON scanner (jscan.c) on any text: walked
 * member by member and skipped whole, both ways give one verdict, and
 * json-c, the gateway's other JSON reader, agrees with it: the same texts
 * valid (json-c strict, depth 64, only white space after the value), the
 * same type at the top, the same decoded string and integer.  json-c
 * alone takes numbers RFC 8259 does not (00, 1., -01), the words NaN
 * and Infinity, and a member name in single quotes ({'a':1}, strict mode
 * or not): a text it takes and the scanner refuses holds one. */
#include "config.h"

#include <json-c/json.h>
#include <limits.h>

#include "../jsonref.h"
#include "fuzz.h"

/* Walks v (just read) whole, reading every key, string and number. */
static void
walk(struct mg_jscan *s, const struct mg_jscan_value *v)
{
	struct mg_jscan_value key, item;
	char buf[64];
	long long n;

	switch (v->type) {
	case MG_JSCAN_OBJECT:
		while (mg_jscan_member(s, &key)) {
			FUZZ_CHECK(key.type == MG_JSCAN_STRING);
			if (mg_jscan_string(&key, buf, sizeof(buf), NULL) < 0)
				FUZZ_CHECK(0);
			mg_jscan_value(s, &item);
			walk(s, &item);
		}
		break;
	case MG_JSCAN_ARRAY:
		while (mg_jscan_element(s)) {
			mg_jscan_value(s, &item);
			walk(s, &item);
		}
		break;
	case MG_JSCAN_STRING:
		FUZZ_CHECK(mg_jscan_string(v, buf, sizeof(buf), NULL) >= 0);
		break;
	case MG_JSCAN_NUMBER:
		if (mg_jscan_int(v, &n) == 0)
			FUZZ_CHECK(v->integer);
		break;
	default:
		break;
	}
}

/* json-c as the request path would be strict with it: depth 64, the
 * text to its NUL, nothing but white space after the value.  1 when it
 * takes the text, its value (NULL for null) in *out. */
static int
json_c_strict(const char *text, size_t len, json_object **out)
{
	json_tokener *tok = json_tokener_new_ex(MG_JSCAN_DEPTH);
	json_object *o;
	size_t end;
	int ok;

	FUZZ_CHECK(tok != NULL);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, text, (int)len + 1);
	end = json_tokener_get_parse_end(tok);
	if (end > len)
		end = len;
	ok = json_tokener_get_error(tok) == json_tokener_success &&
	    text[end + strspn(text + end, " \t\r\n")] == '\0';
	if (!ok) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	*out = o;
	return ok;
}

/* 1 when n bytes at p are a number as RFC 8259 writes it. */
static int
rfc_number(const char *p, size_t n)
{
	size_t i = 0, d;

	if (i < n && p[i] == '-')
		i++;
	if (i < n && p[i] == '0')
		i++;
	else if (i < n && p[i] >= '1' && p[i] <= '9')
		i += strspn(p + i, "0123456789") < n - i ? strspn(p + i, "0123456789") : n - i;
	else
		return 0;
	if (i < n && p[i] == '.') {
		i++;
		d = strspn(p + i, "0123456789");
		if (d == 0 || d > n - i)
			return 0;
		i += d;
	}
	if (i < n && (p[i] == 'e' || p[i] == 'E')) {
		i++;
		if (i < n && (p[i] == '+' || p[i] == '-'))
			i++;
		d = strspn(p + i, "0123456789");
		if (d == 0 || d > n - i)
			return 0;
		i += d;
	}
	return i == n;
}

/* 1 when the text, outside its strings, holds a number RFC 8259 does
 * not take, a word other than true, false and null, or a single quote. */
static int
lax_token(const char *p, size_t n)
{
	size_t i = 0, k;

	while (i < n) {
		if (p[i] == '"') {
			for (i++; i < n && p[i] != '"'; i++)
				if (p[i] == '\\')
					i++;
			i++;
		} else if ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z')) {
			for (k = i; k < n && ((p[k] >= 'a' && p[k] <= 'z') || (p[k] >= 'A' && p[k] <= 'Z')); k++)
				continue;
			if (!((k - i == 4 && (memcmp(p + i, "true", 4) == 0 ||
			    memcmp(p + i, "null", 4) == 0)) ||
			    (k - i == 5 && memcmp(p + i, "false", 5) == 0)))
				return 1;
			i = k;
		} else if (p[i] == '\'') {
			return 1;
		} else if (p[i] == '-' || (p[i] >= '0' && p[i] <= '9')) {
			k = i + strspn(p + i, "-+.eE0123456789");
			if (k > n)
				k = n;
			if (!rfc_number(p + i, k - i))
				return 1;
			i = k;
		} else {
			i++;
		}
	}
	return 0;
}

/* The top-level scalar v agrees with json-c's o. */
static void
same_scalar(const struct mg_jscan_value *v, json_object *o)
{
	char buf[4096];
	long long n;
	long len;

	if (v->type == MG_JSCAN_NUMBER) {
		FUZZ_CHECK(json_object_is_type(o, json_type_int) ||
		    json_object_is_type(o, json_type_double));
		if (mg_jscan_int(v, &n) == 0 && json_object_is_type(o, json_type_int) &&
		    n > LLONG_MIN && n < LLONG_MAX)
			FUZZ_CHECK(json_object_get_int64(o) == n);
		return;
	}
	if (v->type == MG_JSCAN_NULL) {
		FUZZ_CHECK(o == NULL);
		return;
	}
	FUZZ_CHECK(o != NULL && json_object_get_type(o) == json_c_type(v->type));
	if (v->type != MG_JSCAN_STRING)
		return;
	len = mg_jscan_string(v, buf, sizeof(buf), NULL);
	FUZZ_CHECK(len >= 0);
	/* json-c turns a surrogate pair whose code point ends in D800-DFFF
	 * into U+FFFD where the scanner decodes it: compared without those */
	if ((size_t)len < sizeof(buf) && memmem(json_object_get_string(o),
	    (size_t)json_object_get_string_len(o), "\xef\xbf\xbd", 3) == NULL) {
		FUZZ_CHECK(len == json_object_get_string_len(o));
		FUZZ_CHECK(memcmp(buf, json_object_get_string(o), (size_t)len) == 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_text(data, size);
	struct mg_jscan s;
	struct mg_jscan_value v;
	enum mg_jscan_type top;
	int skipped, walked, taken;
	json_object *o = NULL;

	skipped = scan_ok(text, size, &top);
	mg_jscan_init(&s, text, size);
	mg_jscan_value(&s, &v);
	FUZZ_CHECK(v.type == top);
	walk(&s, &v);
	mg_jscan_finish(&s);
	walked = mg_jscan_ok(&s);
	FUZZ_CHECK(skipped == walked);

	if (memchr(text, '\0', size) != NULL) {
		/* json-c would stop at the NUL: never valid here */
		FUZZ_CHECK(!skipped);
		free(text);
		return 0;
	}
	taken = size < INT_MAX && json_c_strict(text, size, &o);
	FUZZ_CHECK(skipped == taken || (taken && lax_token(text, size)));
	if (skipped)
		same_scalar(&v, o);
	json_object_put(o);
	free(text);
	return 0;
}
