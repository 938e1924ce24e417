/* fuzz_base64.c -- Base64 of any bytes (base64.c), both alphabets: the
 * length announced, only the alphabet's characters, and decoded back the
 * same bytes. */
#include "config.h"

#include "base64.h"
#include "fuzz.h"

static int
sextet(const char *alphabet, char c)
{
	const char *p = memchr(alphabet, c, 64);

	return p != NULL && c != '\0' ? (int)(p - alphabet) : -1;
}

/* Decodes text (len characters) into out; the bytes decoded. */
static size_t
decode(const char *alphabet, const char *text, size_t len, unsigned char *out)
{
	unsigned long acc = 0;
	size_t i, n = 0;
	int bits = 0;

	for (i = 0; i < len && text[i] != '='; i++) {
		int v = sextet(alphabet, text[i]);

		FUZZ_CHECK(v >= 0);
		acc = acc << 6 | (unsigned long)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
			acc &= (1ul << bits) - 1;
		}
	}
	/* the bits left over are zero; '=' only pads to a multiple of 4 */
	FUZZ_CHECK(acc == 0);
	for (; i < len; i++)
		FUZZ_CHECK(text[i] == '=');
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const alphabets[] = {
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
	};
	int url;

	for (url = 0; url <= 1; url++) {
		size_t len = mg_base64_len(size, url);
		char *text = malloc(len + 1);
		unsigned char *back = malloc(size + 1);

		FUZZ_CHECK(text != NULL && back != NULL);
		mg_base64_encode(data, size, text, url);
		FUZZ_CHECK(strlen(text) == len);
		if (!url)
			FUZZ_CHECK(len % 4 == 0);
		FUZZ_CHECK(decode(alphabets[url], text, len, back) == size);
		FUZZ_CHECK(size == 0 || memcmp(back, data, size) == 0);
		free(text);
		free(back);
	}
	return 0;
}
