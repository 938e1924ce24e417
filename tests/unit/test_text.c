#include "config.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "text.h"
#include "unit.h"

/* Printable UTF-8 or not: a table of byte strings. */
static const struct {
	const char *text;
	size_t len;          /* 0: strlen(text) */
	int printable;
	size_t first;        /* mg_text_char of the first character */
} cases[] = {
	{ "openai/gpt-4o-mini", 0, 1, 1 },
	{ "", 0, 1, 0 },
	{ "caf\xc3\xa9", 0, 1, 1 },                     /* U+00E9 */
	{ "\xc2\xa0", 0, 1, 2 },                        /* U+00A0, first past C1 */
	{ "\xe2\x80\xa6", 0, 1, 3 },                    /* U+2026 */
	{ "\xef\xbf\xbd", 0, 1, 3 },                    /* U+FFFD */
	{ "\xf0\x9f\x98\x80", 0, 1, 4 },                /* U+1F600 */
	{ "\xf4\x8f\xbf\xbf", 0, 1, 4 },                /* U+10FFFF */
	{ "a\r\nb", 0, 0, 1 },
	{ "\n", 0, 0, 0 },
	{ "a\x01", 0, 0, 1 },
	{ "\x1b[2J", 0, 0, 0 },
	{ "\x7f", 0, 0, 0 },
	{ "a\0b", 3, 0, 1 },
	{ "\xc2\x80", 0, 0, 0 },                        /* U+0080, C1 */
	{ "\xc2\x9b", 0, 0, 0 },                        /* U+009B, CSI */
	{ "\xc2\x9f", 0, 0, 0 },
	{ "\xe2\x80\xa8", 0, 0, 0 },                    /* U+2028 */
	{ "\xe2\x80\xa9", 0, 0, 0 },                    /* U+2029 */
	{ "\xff", 0, 0, 0 },
	{ "\xfe\xff", 0, 0, 0 },
	{ "\x80", 0, 0, 0 },                            /* a lone continuation */
	{ "\xc3\x28", 0, 0, 0 },                        /* a broken pair */
	{ "\xc3", 0, 0, 0 },                            /* cut short */
	{ "\xe2\x80", 0, 0, 0 },
	{ "\xc0\xaf", 0, 0, 0 },                        /* overlong '/' */
	{ "\xc1\xbf", 0, 0, 0 },
	{ "\xe0\x80\xaf", 0, 0, 0 },                    /* overlong, 3 bytes */
	{ "\xf0\x80\x80\xaf", 0, 0, 0 },                /* overlong, 4 bytes */
	{ "\xed\xa0\x80", 0, 0, 0 },                    /* U+D800, a surrogate */
	{ "\xed\xbf\xbf", 0, 0, 0 },
	{ "\xf4\x90\x80\x80", 0, 0, 0 },                /* past U+10FFFF */
	{ "\xf5\x80\x80\x80", 0, 0, 0 },
	{ "ok\xe2\x80\xa6\xff", 0, 0, 1 },
};

START_TEST(printable_table)
{
	const char *t = cases[_i].text;
	size_t n = cases[_i].len != 0 ? cases[_i].len : strlen(t);

	ck_assert_msg(mg_text_printable(t, n) == cases[_i].printable, "case %d", _i);
	ck_assert_msg(mg_text_char(t, n) == cases[_i].first, "case %d: first %zu", _i,
	    mg_text_char(t, n));
}
END_TEST

/* A character cut by the end of what may be read is not one. */
START_TEST(char_honours_n)
{
	ck_assert_uint_eq(mg_text_char("\xe2\x80\xa6", 2), 0);
	ck_assert_uint_eq(mg_text_char("\xf0\x9f\x98\x80", 3), 0);
	ck_assert_uint_eq(mg_text_char("a", 0), 0);
	ck_assert_int_eq(mg_text_printable("ab\n", 2), 1);
}
END_TEST

/* mg_text_printable_len, character by character with mg_text_char. */
static size_t
slow_len(const char *p, size_t n)
{
	size_t i = 0, k;

	while (i < n && (k = mg_text_char(p + i, n - i)) > 0)
		i += k;
	return i;
}

/* The printable prefix: a table of byte strings and its length. */
static const struct {
	const char *text;
	size_t len;          /* 0: strlen(text) */
	size_t prefix;
} prefixes[] = {
	{ "", 0, 0 },
	{ "openai/gpt-4o-mini ~!", 0, 21 },
	{ " ", 0, 1 },
	{ "~\x7f", 0, 1 },
	{ "caf\xc3\xa9 \xe2\x80\xa6 \xf0\x9f\x98\x80!", 0, 15 },
	{ "ab\ncd", 0, 2 },
	{ "ab\rcd", 0, 2 },
	{ "\tab", 0, 0 },
	{ "a\x1f", 0, 1 },
	{ "a\x7f", 0, 1 },
	{ "a\0b", 3, 1 },
	{ "a\xc2\x80", 0, 1 },                         /* U+0080, C1 */
	{ "ab\xc2\x9f", 0, 2 },                        /* U+009F */
	{ "ab\xc2\xa0z", 0, 5 },                       /* U+00A0 */
	{ "x\xe2\x80\xa8y", 0, 1 },                    /* U+2028 */
	{ "x\xe2\x80\xa9y", 0, 1 },                    /* U+2029 */
	{ "x\xe2\x80\xaay", 0, 5 },                    /* U+202A */
	{ "ok\xff", 0, 2 },
	{ "ok\x80", 0, 2 },                             /* a lone continuation */
	{ "ok\xc3\x28", 0, 2 },                         /* a broken pair */
	{ "ok\xc0\xaf", 0, 2 },                         /* overlong */
	{ "ok\xed\xa0\x80", 0, 2 },                     /* a surrogate */
	{ "ok\xf4\x90\x80\x80", 0, 2 },                 /* past U+10FFFF */
	{ "ok\xc3", 0, 2 },                             /* cut at the end */
	{ "ok\xe2\x80", 0, 2 },
	{ "ok\xf0\x9f\x98", 0, 2 },
	{ "\xc3\xa9\xc3\xa9", 3, 2 },                  /* cut by n */
};

START_TEST(prefix_table)
{
	const char *t = prefixes[_i].text;
	size_t n = prefixes[_i].len != 0 ? prefixes[_i].len : strlen(t);

	ck_assert_msg(mg_text_printable_len(t, n) == prefixes[_i].prefix, "case %d: %zu", _i,
	    mg_text_printable_len(t, n));
	ck_assert_msg(slow_len(t, n) == prefixes[_i].prefix, "case %d: slow", _i);
}
END_TEST

/* Checks mg_text_printable_len against slow_len on the n bytes at b, and
 * on them cut by one. */
static void
same_len(const unsigned char *b, size_t n)
{
	const char *p = (const char *)b;

	if (mg_text_printable_len(p, n) != slow_len(p, n) ||
	    mg_text_printable_len(p, n - 1) != slow_len(p, n - 1))
		ck_abort_msg("%.*s, %zu bytes: %zu, not %zu", (int)n, p, n,
		    mg_text_printable_len(p, n), slow_len(p, n));
}

/* same_len on the n-byte strings from to to (big-endian), each at b + at
 * after printable ASCII bytes, with more of them after it or not. */
static void
same_len_all(unsigned long from, unsigned long to, size_t n, size_t at)
{
	unsigned char b[20];
	unsigned long v;
	size_t k;

	memset(b, 'a', sizeof(b));
	for (v = from; v < to; v++) {
		for (k = 0; k < n; k++)
			b[at + k] = (unsigned char)(v >> (8 * (n - 1 - k)));
		same_len(b, at + n);
		same_len(b, sizeof(b));
	}
}

/* The same as character by character: every string of one or two bytes
 * at each place of an eight-byte word and across the next, and every one
 * of three that starts with a three-byte lead (the others are shorter
 * ones and a byte) across a word's end. */
START_TEST(prefix_all_short)
{
	size_t at;

	for (at = 1; at <= 8; at++) {
		same_len_all(0, 0x100, 1, at);
		same_len_all(0, 0x10000, 2, at);
	}
	same_len_all(0xe00000, 0xf00000, 3, 6);
}
END_TEST

/* The same as character by character on pseudo-random strings mixing
 * ASCII, UTF-8 characters, controls and stray bytes. */
START_TEST(prefix_random)
{
	static const char *const pieces[] = {
		"a", "Z", " ", "~", "{", "\x7f", "\n", "\t", "\x01", "\x80", "\xbf", "\xc0",
		"\xc2\x80", "\xc2\xa0", "\xc3\xa9", "\xe2\x80\xa6", "\xe2\x80\xa8",
		"\xe2\x80\xa9", "\xed\xa0\x80", "\xef\xbf\xbd", "\xf0\x9f\x98\x80",
		"\xf4\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5", "\xff", "\xe2", "\xf0\x9f",
	};
	const size_t npieces = sizeof(pieces) / sizeof(pieces[0]);
	unsigned long x = 12345;
	char buf[128];
	int round;

	for (round = 0; round < 20000; round++) {
		size_t n = 0, cut;

		while (n < sizeof(buf) - 8) {
			const char *piece;

			x = x * 6364136223846793005UL + 1442695040888963407UL;
			if ((x >> 60) == 0)
				break;
			/* mostly ASCII, as log messages are */
			piece = (x >> 33) % 4 != 0 ? "x" : pieces[(x >> 40) % npieces];
			memcpy(buf + n, piece, strlen(piece));
			n += strlen(piece);
		}
		x = x * 6364136223846793005UL + 1442695040888963407UL;
		cut = n > 0 ? (size_t)(x >> 35) % (n + 1) : 0;
		ck_assert_uint_eq(mg_text_printable_len(buf, n), slow_len(buf, n));
		ck_assert_uint_eq(mg_text_printable_len(buf, cut), slow_len(buf, cut));
		ck_assert_int_eq(mg_text_printable(buf, n), slow_len(buf, n) == n);
	}
}
END_TEST

START_TEST(scrub)
{
	char s[] = "id-\r\n\x1b[31m\xff\xc3\xa9\xc2\x9b\xed\xa0\x80ok";

	mg_text_scrub(s);
	ck_assert_str_eq(s, "id-???[31m?\xc3\xa9?????ok");
	ck_assert_int_eq(mg_text_printable(s, strlen(s)), 1);
}
END_TEST

/* A bounded copy: whole when it fits, cut to size - 1 bytes otherwise. */
START_TEST(copy)
{
	char d[8];

	memset(d, 'x', sizeof(d));
	mg_text_copy(d, sizeof(d), "abc");
	ck_assert_str_eq(d, "abc");
	mg_text_copy(d, sizeof(d), "");
	ck_assert_str_eq(d, "");
	mg_text_copy(d, sizeof(d), "1234567");
	ck_assert_str_eq(d, "1234567");
	mg_text_copy(d, sizeof(d), "123456789");
	ck_assert_str_eq(d, "1234567");
	mg_text_copy(d, 1, "abc");
	ck_assert_str_eq(d, "");
	ck_assert_str_eq(d + 1, "234567");
	mg_text_copy(d, sizeof(d), d + 1);     /* overlapping */
	ck_assert_str_eq(d, "234567");
}
END_TEST

/* mg_text_decimal writes what printf's "%lld" writes, zero-padded to at
 * least width digits. */
START_TEST(decimal)
{
	static const long long values[] = { 0, 1, -1, 7, 9, 10, 99, 100, 999, 1000, -1000,
		123456789, 4294967296LL, LLONG_MAX, LLONG_MAX - 1, LLONG_MIN, LLONG_MIN + 1 };
	char got[48], want[48];
	size_t i, n;
	int width;

	for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		memset(got, 'x', sizeof(got));
		n = mg_text_decimal(got, values[i], 1);
		ck_assert_uint_eq(n, (size_t)snprintf(want, sizeof(want), "%lld", values[i]));
		ck_assert_int_eq(memcmp(got, want, n), 0);
		ck_assert_int_eq(got[n], 'x');
	}
	/* widths, as "%0*lld" (whose width counts a sign too) for numbers
	 * not below 0 */
	for (i = 0; i < sizeof(values) / sizeof(values[0]); i++)
		for (width = 1; width <= 25; width++) {
			if (values[i] < 0)
				continue;
			n = mg_text_decimal(got, values[i], width);
			ck_assert_uint_eq(n, (size_t)snprintf(want, sizeof(want), "%0*lld", width,
			    values[i]));
			ck_assert_int_eq(memcmp(got, want, n), 0);
		}
	n = mg_text_decimal(got, -5, 3);
	ck_assert_uint_eq(n, 4);
	ck_assert_int_eq(memcmp(got, "-005", 4), 0);
}
END_TEST

/* mg_text_hex writes what "%02x" writes for each byte: every byte
 * value, alone and in runs, and nothing past its 2n digits. */
START_TEST(hex)
{
	unsigned char src[256];
	char got[2 * sizeof(src) + 8], want[2 * sizeof(src) + 8];
	size_t i, n;

	for (i = 0; i < sizeof(src); i++)
		src[i] = (unsigned char)(255 - i);
	for (i = 0; i < 16; i++)
		ck_assert_int_eq(mg_text_hex_digit[i], "0123456789abcdef"[i]);
	for (n = 0; n <= sizeof(src); n++) {
		memset(got, 'x', sizeof(got));
		for (i = 0; i < n; i++)
			snprintf(want + 2 * i, 3, "%02x", src[i]);
		ck_assert_uint_eq(mg_text_hex(got, src, n), 2 * n);
		ck_assert_int_eq(memcmp(got, want, 2 * n), 0);
		ck_assert_int_eq(got[2 * n], 'x');
	}
}
END_TEST

static Suite *
text_suite(void)
{
	Suite *s = suite_create("text");
	TCase *tc = tcase_create("utf8");

	tcase_add_loop_test(tc, printable_table, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(tc, char_honours_n);
	tcase_add_loop_test(tc, prefix_table, 0, (int)(sizeof(prefixes) / sizeof(prefixes[0])));
	tcase_add_test(tc, prefix_all_short);
	tcase_add_test(tc, prefix_random);
	tcase_add_test(tc, scrub);
	tcase_add_test(tc, copy);
	tcase_add_test(tc, decimal);
	tcase_add_test(tc, hex);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return mg_unit_run(text_suite());
}
