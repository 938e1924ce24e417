/* text.c -- Untrusted text: which bytes are printable UTF-8, so that text
 * from clients and upstreams reaches no log line, header or row as raw
 * control bytes or broken UTF-8.  Called by log (escaping), request (the
 * model), report (query values) and usage (the upstream's ids). */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "text.h"

size_t
mg_text_utf8(const char *p, size_t n, unsigned long *cp)
{
	const unsigned char *s = (const unsigned char *)p;
	unsigned long c;
	size_t len, i;

	if (n == 0)
		return 0;
	c = s[0];
	if (c < 0x80) {
		len = 1;
	} else if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		c &= 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		c &= 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		c &= 0x07;
	} else {
		return 0;       /* a continuation byte, 0xc0, 0xc1 or past 0xf4 */
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates, past U+10FFFF */
	if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) || c > 0x10ffff ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

size_t
mg_text_char(const char *p, size_t n)
{
	unsigned long c;
	size_t len = mg_text_utf8(p, n, &c);

	/* controls: C0, DEL, C1, and the line and paragraph separators */
	if (len == 0 || c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0x2028 || c == 0x2029)
		return 0;
	return len;
}

/* 1 when the eight bytes at s are all 0x20-0x7e: none has its high bit
 * set by w - 0x20 where w's is clear (below 0x20), by w + 1 (0x7f) or in
 * w (0x80 and up). */
static int
ascii8(const unsigned char *s)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = ones * 0x80;
	uint64_t w;

	memcpy(&w, s, sizeof(w));
	return ((((w - ones * 0x20) & ~w) | (w + ones) | w) & highs) == 0;
}

size_t
mg_text_printable_len(const char *p, size_t n)
{
	const unsigned char *s = (const unsigned char *)p;
	size_t i = 0, k;

	while (i < n) {
		/* plain ASCII, 0x20-0x7e, without the UTF-8 decoding: eight
		 * bytes at a time, then one by one */
		while (n - i >= 8 && ascii8(s + i))
			i += 8;
		while (i < n && (unsigned char)(s[i] - 0x20) < 0x5f)
			i++;
		k = mg_text_char(p + i, n - i);
		if (k == 0)
			break;
		i += k;
	}
	return i;
}

int
mg_text_printable(const char *p, size_t n)
{
	return mg_text_printable_len(p, n) == n;
}

void
mg_text_scrub(char *s)
{
	size_t n = strlen(s), i = 0;

	for (;;) {
		i += mg_text_printable_len(s + i, n - i);
		if (i >= n)
			break;
		s[i++] = '?';
	}
}

size_t
mg_text_decimal(char *dst, long long v, int width)
{
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	char tmp[24];
	size_t n = 0, k = 0;

	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u > 0);
	if (v < 0)
		dst[k++] = '-';
	for (; width > (int)n; width--)
		dst[k++] = '0';
	while (n > 0)
		dst[k++] = tmp[--n];
	return k;
}

const char mg_text_hex_digit[16] = { '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b', 'c',
	'd', 'e', 'f' };

size_t
mg_text_hex(char *dst, const unsigned char *src, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		dst[2 * i] = mg_text_hex_digit[src[i] >> 4];
		dst[2 * i + 1] = mg_text_hex_digit[src[i] & 15];
	}
	return 2 * n;
}

void
mg_text_copy(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memmove(dst, src, n);
	dst[n] = '\0';
}
