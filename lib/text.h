#ifndef MG_TEXT_H
#define MG_TEXT_H

#include <stddef.h>

/* Untrusted text: which bytes are printable UTF-8.  A character is
 * printable when it is well-formed UTF-8 (no overlong form, no UTF-16
 * surrogate, at most U+10FFFF) and not a control: C0 (below 0x20), DEL,
 * C1 (U+0080-U+009F) or the line and paragraph separators U+2028/U+2029.
 * Pure functions, thread-safe.  Also the decimal form of a number and
 * the hex form of bytes, for the lines written without printf. */

/* The bytes (1-4) of the well-formed UTF-8 character that starts at p (n
 * bytes readable there), its code point in *cp, whatever it is (controls
 * too); 0 when p starts none or n is 0. */
size_t mg_text_utf8(const char *p, size_t n, unsigned long *cp);
/* The bytes (1-4) of the printable character that starts at p (n bytes
 * readable there); 0 when p[0] starts no printable character or n is 0. */
size_t mg_text_char(const char *p, size_t n);
/* The length of the longest prefix of the n bytes at p made of whole
 * printable characters: n when all are printable, never inside a
 * character. */
size_t mg_text_printable_len(const char *p, size_t n);
/* 1 when all n bytes at p are printable characters. */
int mg_text_printable(const char *p, size_t n);
/* Replaces every byte of s (a C string) that is not part of a printable
 * character with '?', in place; the length stays. */
void mg_text_scrub(char *s);
/* Copies the C string src into dst of size bytes (size > 0), cut to
 * size - 1 bytes, always NUL-terminated: snprintf(dst, size, "%s", src)
 * without its cost, for the request path. */
void mg_text_copy(char *dst, size_t size, const char *src);
/* Writes v in decimal at dst, as printf's "%lld" does, with at least
 * width digits (zeros in front; 1 for none); no NUL.  The number of bytes
 * written: at most 21, or 1 + width when width is larger. */
size_t mg_text_decimal(char *dst, long long v, int width);
/* The lowercase hex digits: mg_text_hex_digit[v & 15]. */
extern const char mg_text_hex_digit[16];
/* Writes the n bytes at src as 2n lowercase hex digits at dst, high
 * nibble first, as printf's "%02x" does for each; no NUL.  Returns 2n. */
size_t mg_text_hex(char *dst, const unsigned char *src, size_t n);

#endif
