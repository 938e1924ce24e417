/* money.c -- The one rule for amounts of USD given as text (mg_money_valid):
 * the fallback prices of the configuration, the spend cap of the CLI, the
 * cost an upstream reports and the prices of its catalog.  Called by conf,
 * the CLI, usage reading and the catalog. */
#include "config.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "money.h"

/* Digits at p; their count. */
static size_t
digits(const char *p)
{
	return strspn(p, "0123456789");
}

int
mg_money_valid(const char *s, enum mg_money_form form)
{
	const char *p = s;
	size_t n;

	if (strnlen(s, MG_MONEY_MAX) >= MG_MONEY_MAX)
		return 0;
	n = digits(p);
	if (n == 0)
		return 0;
	p += n;
	if (*p == '.') {
		n = digits(++p);
		if (n == 0)
			return 0;
		p += n;
	}
	if (form == MG_MONEY_NUMBER && (*p == 'e' || *p == 'E')) {
		p++;
		if (*p == '-' || *p == '+')
			p++;
		n = digits(p);
		if (n == 0 || n > 3)
			return 0;
		p += n;
	}
	return *p == '\0';
}

/* s (a valid MG_MONEY_NUMBER) in units of 10^-scale USD into *out,
 * rounded as round says; 0, or -1 when it does not fit in 64 bits. */
static int
units(const char *s, int scale, enum mg_money_round round, unsigned long long *out)
{
	const char *p = s, *frac = "";
	size_t nint, nfrac = 0, i;
	long exp = 0, shift;
	unsigned long long v = 0;
	int up = 0;

	if (!mg_money_valid(s, MG_MONEY_NUMBER))
		return -1;
	nint = digits(p);
	p += nint;
	if (*p == '.') {
		frac = ++p;
		nfrac = digits(p);
		p += nfrac;
	}
	if (*p == 'e' || *p == 'E') {
		int neg = *++p == '-';

		if (*p == '-' || *p == '+')
			p++;
		for (; *p != '\0'; p++)
			exp = exp * 10 + (*p - '0');
		if (neg)
			exp = -exp;
	}
	/* the digits d (integer part then fraction) stand for
	 * d * 10^(exp - nfrac) USD, so for d * 10^shift units */
	shift = exp - (long)nfrac + scale;
	for (i = 0; i < nint + nfrac; i++) {
		unsigned d = (unsigned)((i < nint ? s[i] : frac[i - nint]) - '0');
		long place = shift + (long)(nint + nfrac - 1 - i); /* this digit's power */

		if (place < 0) {
			/* past a unit: half up looks at the first such digit,
			 * up at any */
			if ((round == MG_MONEY_HALF_UP && place == -1 && d >= 5) ||
			    (round == MG_MONEY_UP && d > 0))
				up = 1;
			continue;
		}
		if (d == 0)
			continue;
		{
			unsigned long long add = d;
			long k;

			for (k = 0; k < place; k++) {
				if (add > UINT64_MAX / 10)
					return -1;
				add *= 10;
			}
			if (v > UINT64_MAX - add)
				return -1;
			v += add;
		}
	}
	if (up) {
		if (v == UINT64_MAX)
			return -1;
		v++;
	}
	*out = v;
	return 0;
}

int
mg_money_nano(const char *s, unsigned long long *nano)
{
	return units(s, 9, MG_MONEY_HALF_UP, nano);
}

int
mg_money_units(const char *s, int scale, enum mg_money_round round, long long *out)
{
	unsigned long long v;

	if (scale < 0 || scale > 18 || units(s, scale, round, &v) != 0 ||
	    v > (unsigned long long)LLONG_MAX)
		return -1;
	*out = (long long)v;
	return 0;
}

int
mg_money_format_units(long long v, int scale, char *out, size_t len)
{
	unsigned long long a = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	char d[48];
	int k = (int)sizeof(d), i, n;

	if (scale < 0 || scale > 18)
		return -1;
	/* the digits from the right: the scale's decimals, then the units */
	for (i = 0; i < scale; i++, a /= 10)
		d[--k] = (char)('0' + a % 10);
	if (scale > 0)
		d[--k] = '.';
	do {
		d[--k] = (char)('0' + a % 10);
		a /= 10;
	} while (a > 0);
	if (v < 0)
		d[--k] = '-';
	n = (int)sizeof(d) - k;
	if ((size_t)n >= len)
		return -1;
	memcpy(out, d + k, (size_t)n);
	out[n] = '\0';
	return 0;
}

int
mg_money_numeric_nano(const char *s, size_t len, long long *nano)
{
	char buf[MG_MONEY_MAX];
	const char *dot;
	unsigned long long v = 0;
	int neg = len > 0 && s[0] == '-';

	s += neg;
	len -= (size_t)neg;
	/* past the tenth decimal nothing changes the rounding: left out */
	dot = memchr(s, '.', len);
	if (dot != NULL && len - (size_t)(dot - s) > 11)
		len = (size_t)(dot - s) + 11;
	if (len >= sizeof(buf) || memchr(s, 'e', len) != NULL || memchr(s, 'E', len) != NULL)
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (mg_money_nano(buf, &v) != 0 || v > (unsigned long long)LLONG_MAX)
		return -1;
	*nano = neg ? -(long long)v : (long long)v;
	return 0;
}
