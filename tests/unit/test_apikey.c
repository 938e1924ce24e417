#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apikey.h"
#include "base64.h"

/* --- sha256 (libcrypto, through mg_apikey_hash_hex) -------------------- */

#define MG_SHA256_LEN 32

static void
sha256_hex(const void *data, size_t n, char out[2 * MG_SHA256_LEN + 1])
{
	memset(out, 'X', 2 * MG_SHA256_LEN + 1);
	ck_assert_int_eq(mg_apikey_hash_hex(data, n, out), MG_OK);
}

/* FIPS 180-4 / NIST example vectors */
static const struct {
	const char *msg;
	const char *hex;
} sha_vectors[] = {
	{ "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
	{ "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
	{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
	  "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
};

START_TEST(sha256_nist_vectors)
{
	char got[2 * MG_SHA256_LEN + 1];

	sha256_hex(sha_vectors[_i].msg, strlen(sha_vectors[_i].msg), got);
	ck_assert_str_eq(got, sha_vectors[_i].hex);
}
END_TEST

START_TEST(sha256_million_a)
{
	size_t n = 1000000;
	char *buf = malloc(n);
	char got[2 * MG_SHA256_LEN + 1];

	ck_assert_ptr_nonnull(buf);
	memset(buf, 'a', n);
	sha256_hex(buf, n, got);
	free(buf);
	ck_assert_str_eq(got, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}
END_TEST

/* Lengths around the padding boundaries; expected values from
 * `head -c N /dev/zero | tr '\0' a | sha256sum`. */
static const struct {
	size_t len;
	const char *hex;
} sha_lengths[] = {
	{ 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318" },
	{ 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a" },
	{ 63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34" },
	{ 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb" },
	{ 65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0" },
};

START_TEST(sha256_boundary_lengths)
{
	char buf[128], got[2 * MG_SHA256_LEN + 1];

	memset(buf, 'a', sizeof(buf));
	sha256_hex(buf, sha_lengths[_i].len, got);
	ck_assert_msg(strcmp(got, sha_lengths[_i].hex) == 0, "len %zu: got %s, want %s",
	    sha_lengths[_i].len, got, sha_lengths[_i].hex);
}
END_TEST

START_TEST(sha256_reads_only_n_bytes)
{
	char a[2 * MG_SHA256_LEN + 1], b[2 * MG_SHA256_LEN + 1];

	sha256_hex("abcXYZ", 3, a);
	sha256_hex("abc", 3, b);
	ck_assert_str_eq(a, b);
}
END_TEST

/* --- base64 ------------------------------------------------------------ */

/* bytes chosen so that the encodings contain '+', '/' (std) and '-', '_'
 * (URL-safe); expected values from base64(1) and basenc --base64url */
static const unsigned char b64_in[] = { 0xfb, 0xff, 0xbf, 0xfe, 0xff };
static const struct {
	size_t len;
	const char *std;
	const char *url;
} b64_cases[] = {
	{ 0, "", "" },
	{ 1, "+w==", "-w" },
	{ 2, "+/8=", "-_8" },
	{ 3, "+/+/", "-_-_" },
	{ 4, "+/+//g==", "-_-__g" },
	{ 5, "+/+//v8=", "-_-__v8" },
};

START_TEST(base64_std_and_url)
{
	char out[32];
	size_t n = b64_cases[_i].len;

	ck_assert_uint_eq(mg_base64_len(n, 0), strlen(b64_cases[_i].std));
	ck_assert_uint_eq(mg_base64_len(n, 1), strlen(b64_cases[_i].url));

	memset(out, 'X', sizeof(out));
	mg_base64_encode(b64_in, n, out, 0);
	ck_assert_str_eq(out, b64_cases[_i].std);

	memset(out, 'X', sizeof(out));
	mg_base64_encode(b64_in, n, out, 1);
	ck_assert_str_eq(out, b64_cases[_i].url);
}
END_TEST

static const struct {
	const char *in;
	const char *std;
} b64_text[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
};

START_TEST(base64_rfc4648_vectors)
{
	char out[32];

	memset(out, 'X', sizeof(out));
	mg_base64_encode((const unsigned char *)b64_text[_i].in, strlen(b64_text[_i].in), out, 0);
	ck_assert_str_eq(out, b64_text[_i].std);
}
END_TEST

START_TEST(base64_float_example)
{
	/* [1.0f, -2.0f] as little-endian float32 bytes */
	static const unsigned char in[] = { 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0 };
	char out[32];

	mg_base64_encode(in, sizeof(in), out, 0);
	ck_assert_str_eq(out, "AACAPwAAAMA=");
}
END_TEST

/* --- keys -------------------------------------------------------------- */

START_TEST(apikey_generate_shape)
{
	char key[MG_APIKEY_LEN + 1];

	memset(key, 'X', sizeof(key));
	ck_assert_int_eq(mg_apikey_generate(key), MG_OK);
	ck_assert_uint_eq(strlen(key), 35);
	ck_assert_uint_eq(MG_APIKEY_LEN, 35);
	ck_assert(strncmp(key, "mg-", 3) == 0);
	ck_assert_int_eq(mg_apikey_valid(key, strlen(key)), 1);
}
END_TEST

#define N_KEYS 100

START_TEST(apikey_generate_distinct)
{
	static char keys[N_KEYS][MG_APIKEY_LEN + 1];
	int i, j;

	for (i = 0; i < N_KEYS; i++) {
		ck_assert_int_eq(mg_apikey_generate(keys[i]), MG_OK);
		ck_assert_msg(mg_apikey_valid(keys[i], strlen(keys[i])), "invalid key %s", keys[i]);
	}
	for (i = 0; i < N_KEYS; i++)
		for (j = i + 1; j < N_KEYS; j++)
			ck_assert_msg(strcmp(keys[i], keys[j]) != 0, "keys %d and %d equal: %s", i, j, keys[i]);
}
END_TEST

START_TEST(random_bytes_fill)
{
	unsigned char a[64], b[64];

	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	ck_assert_int_eq(mg_random_bytes(a, sizeof(a)), MG_OK);
	ck_assert_int_eq(mg_random_bytes(b, sizeof(b)), MG_OK);
	ck_assert(memcmp(a, b, sizeof(a)) != 0);
	ck_assert_int_eq(mg_random_bytes(a, 0), MG_OK);
}
END_TEST

/* Ids from the per-thread store: all distinct over many refills, and a
 * child after fork does not draw what its parent draws next. */
START_TEST(random_id_bytes_distinct)
{
	enum { N = 400 };
	static unsigned char ids[N][12];
	unsigned char mine[12], child[12];
	int fd[2], i, j, status;
	pid_t pid;

	for (i = 0; i < N; i++)
		ck_assert_int_eq(mg_random_id_bytes(ids[i], sizeof(ids[i])), MG_OK);
	for (i = 0; i < N; i++)
		for (j = i + 1; j < N; j++)
			ck_assert_msg(memcmp(ids[i], ids[j], 12) != 0, "ids %d and %d equal", i, j);
	ck_assert_int_eq(pipe(fd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		ssize_t w;

		if (mg_random_id_bytes(child, sizeof(child)) != MG_OK)
			_exit(2);
		w = write(fd[1], child, sizeof(child));
		_exit(w == (ssize_t)sizeof(child) ? 0 : 3);
	}
	ck_assert_int_eq(mg_random_id_bytes(mine, sizeof(mine)), MG_OK);
	ck_assert_int_eq(read(fd[0], child, sizeof(child)), (ssize_t)sizeof(child));
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert(memcmp(mine, child, sizeof(mine)) != 0);
	close(fd[0]);
	close(fd[1]);
}
END_TEST

static const struct {
	const char *s;
	int want;
	const char *why;
} valid_cases[] = {
	{ "mg-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 1, "ok" },
	{ "mg-abcdefghijklmnopqrstuvwxyz012345", 1, "ok lower/digits" },
	{ "mg-ABCDEFGHIJ-_KLMNOPQRSTUVWXYZ6789", 1, "ok with - and _" },
	{ "sk-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 0, "wrong prefix" },
	{ "MG-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 0, "upper-case prefix" },
	{ "mgxAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 0, "prefix without dash" },
	{ "mg-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 0, "one short" },
	{ "mg-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 0, "one long" },
	{ "mg-", 0, "prefix only" },
	{ "", 0, "empty" },
	{ "mg-AAAAAAAAAAAAAAAA+AAAAAAAAAAAAAAA", 0, "'+' (std alphabet)" },
	{ "mg-AAAAAAAAAAAAAAAA/AAAAAAAAAAAAAAA", 0, "'/' (std alphabet)" },
	{ "mg-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 0, "padding" },
	{ "mg-AAAAAAAAAAAAAAAA AAAAAAAAAAAAAAA", 0, "space" },
	{ "mg-AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAA", 0, "dot" },
	{ "mg-AAAAAAAAAAAAAAAA\xc3\xa9""AAAAAAAAAAAAAA", 0, "non-ASCII" },
};

START_TEST(apikey_valid_table)
{
	ck_assert_msg(mg_apikey_valid(valid_cases[_i].s, strlen(valid_cases[_i].s)) == valid_cases[_i].want,
	    "%s: '%s'", valid_cases[_i].why, valid_cases[_i].s);
}
END_TEST

START_TEST(apikey_valid_uses_n)
{
	static const char k[] = "mg-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
	static const char nul[] = "mg-AAAAAAAAAAAAAAAA\0AAAAAAAAAAAAAAA";

	/* a valid key followed by more text: only n bytes count */
	ck_assert_int_eq(mg_apikey_valid("mg-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA trailing", MG_APIKEY_LEN), 1);
	ck_assert_int_eq(mg_apikey_valid(k, MG_APIKEY_LEN - 1), 0);
	/* an embedded NUL is a bad character */
	ck_assert_int_eq(mg_apikey_valid(nul, sizeof(nul) - 1), 0);
}
END_TEST

START_TEST(apikey_prefix)
{
	char out[MG_APIKEY_PREFIX_LEN + 1];

	memset(out, 'X', sizeof(out));
	mg_apikey_prefix("mg-abcdefghijklmnopqrstuvwxyz012345", out);
	ck_assert_str_eq(out, "mg-abcdefgh");
	ck_assert_uint_eq(strlen(out), MG_APIKEY_PREFIX_LEN);

	/* shorter input: copied whole, still terminated */
	memset(out, 'X', sizeof(out));
	mg_apikey_prefix("mg-ab", out);
	ck_assert_str_eq(out, "mg-ab");

	memset(out, 'X', sizeof(out));
	mg_apikey_prefix("", out);
	ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(apikey_hash_hex)
{
	char out[MG_APIKEY_HASH_HEX_LEN + 1];
	static const char key[] = "mg-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

	/* printf 'mg-AAAA…' | sha256sum */
	memset(out, 'X', sizeof(out));
	ck_assert_int_eq(mg_apikey_hash_hex(key, strlen(key), out), MG_OK);
	ck_assert_str_eq(out, "5cbac4ee309c8331d9f793a9e374fa80f1060772d511ed974ac2883ea2217b97");

	/* printf 'hello world key' | sha256sum; only n bytes are hashed */
	ck_assert_int_eq(mg_apikey_hash_hex("hello world key and more", 15, out), MG_OK);
	ck_assert_str_eq(out, "3338268f5682053cd4e21a9fe6e649a3f6f06ea18a3c7d96ad87f5a7a738336a");

	ck_assert_int_eq(mg_apikey_hash_hex("", 0, out), MG_OK);
	ck_assert_str_eq(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}
END_TEST

START_TEST(apikey_hash_hex_of_generated)
{
	char k1[MG_APIKEY_LEN + 1], k2[MG_APIKEY_LEN + 1];
	char a[MG_APIKEY_HASH_HEX_LEN + 1], b[MG_APIKEY_HASH_HEX_LEN + 1];

	ck_assert_int_eq(mg_apikey_generate(k1), MG_OK);
	ck_assert_int_eq(mg_apikey_generate(k2), MG_OK);
	sha256_hex(k1, strlen(k1), a);
	sha256_hex(k2, strlen(k2), b);
	ck_assert_uint_eq(strlen(a), MG_APIKEY_HASH_HEX_LEN);
	ck_assert_uint_eq(strspn(a, "0123456789abcdef"), MG_APIKEY_HASH_HEX_LEN);
	ck_assert_str_ne(a, b);
}
END_TEST

static const struct {
	const char *header;
	const char *token;   /* NULL: no token expected */
} header_cases[] = {
	{ "Bearer x", "x" },
	{ "bearer   x  ", "x" },
	{ "BEARER mg-abc", "mg-abc" },
	{ "Bearer\tx", "x" },
	{ "\tBearer \t x\t", "x" },
	{ "  Bearer mg-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "mg-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" },
	{ "Bearer x\r\n", "x" },
	{ "Basic x", NULL },
	{ "Basic dXNlcjpwYXNz", NULL },
	{ "Bearer", NULL },
	{ "Bearer ", NULL },
	{ "Bearer \t ", NULL },
	{ "Bearerx", NULL },
	{ "Bearer-x", NULL },
	{ "x", NULL },
	{ "", NULL },
	{ "\t", NULL },
	/* one token only: trailing words are no key (they were taken as the
	 * key alone before) */
	{ "Bearer mg-abc junk", NULL },
	{ "Bearer mg-abc mg-abc", NULL },
	{ "Bearer mg-abc\tx", NULL },
	{ "Bearer mg-abc\r\nX-Other: 1", NULL },
	{ NULL, NULL },
};

START_TEST(apikey_from_header_table)
{
	const char *h = header_cases[_i].header, *want = header_cases[_i].token, *got;
	size_t n = 12345;

	got = mg_apikey_from_header(h, &n);
	if (want == NULL) {
		ck_assert_msg(got == NULL, "header '%s': expected no token, got '%s'", h ? h : "(null)", got);
		return;
	}
	ck_assert_msg(got != NULL, "header '%s': expected token '%s'", h, want);
	ck_assert_uint_eq(n, strlen(want));
	ck_assert(strncmp(got, want, n) == 0);
	/* the token points into the header */
	ck_assert(got >= h && got + n <= h + strlen(h));
}
END_TEST

static Suite *
apikey_suite(void)
{
	Suite *s = suite_create("apikey");
	TCase *tc;

	tc = tcase_create("sha256");
	tcase_add_loop_test(tc, sha256_nist_vectors, 0, (int)(sizeof(sha_vectors) / sizeof(sha_vectors[0])));
	tcase_add_test(tc, sha256_million_a);
	tcase_add_loop_test(tc, sha256_boundary_lengths, 0, (int)(sizeof(sha_lengths) / sizeof(sha_lengths[0])));
	tcase_add_test(tc, sha256_reads_only_n_bytes);
	suite_add_tcase(s, tc);

	tc = tcase_create("base64");
	tcase_add_loop_test(tc, base64_std_and_url, 0, (int)(sizeof(b64_cases) / sizeof(b64_cases[0])));
	tcase_add_loop_test(tc, base64_rfc4648_vectors, 0, (int)(sizeof(b64_text) / sizeof(b64_text[0])));
	tcase_add_test(tc, base64_float_example);
	suite_add_tcase(s, tc);

	tc = tcase_create("keys");
	tcase_add_test(tc, apikey_generate_shape);
	tcase_add_test(tc, apikey_generate_distinct);
	tcase_add_test(tc, random_bytes_fill);
	tcase_add_test(tc, random_id_bytes_distinct);
	tcase_add_loop_test(tc, apikey_valid_table, 0, (int)(sizeof(valid_cases) / sizeof(valid_cases[0])));
	tcase_add_test(tc, apikey_valid_uses_n);
	tcase_add_test(tc, apikey_prefix);
	tcase_add_test(tc, apikey_hash_hex);
	tcase_add_test(tc, apikey_hash_hex_of_generated);
	tcase_add_loop_test(tc, apikey_from_header_table, 0, (int)(sizeof(header_cases) / sizeof(header_cases[0])));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(apikey_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
