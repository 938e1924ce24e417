/* base64.c -- Base64 encoding (standard and URL-safe), for generated keys and
 * base64 embeddings. */
#include "config.h"

#include "base64.h"

static const char std_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t
mg_base64_len(size_t n, int url)
{
	if (url)
		return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
	return (n + 2) / 3 * 4;
}

void
mg_base64_encode(const unsigned char *in, size_t n, char *out, int url)
{
	const char *a = url ? url_alphabet : std_alphabet;
	size_t i, o = 0;

	for (i = 0; i + 3 <= n; i += 3) {
		unsigned long v = (unsigned long)in[i] << 16 |
		    (unsigned long)in[i + 1] << 8 | in[i + 2];

		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		out[o++] = a[v >> 6 & 63];
		out[o++] = a[v & 63];
	}
	if (n - i == 1) {
		unsigned long v = (unsigned long)in[i] << 16;

		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		if (!url) {
			out[o++] = '=';
			out[o++] = '=';
		}
	} else if (n - i == 2) {
		unsigned long v = (unsigned long)in[i] << 16 |
		    (unsigned long)in[i + 1] << 8;

		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		out[o++] = a[v >> 6 & 63];
		if (!url)
			out[o++] = '=';
	}
	out[o] = '\0';
}
