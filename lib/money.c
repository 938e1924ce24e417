/* money.c -- The one rule for amounts of USD given as text (mg_money_valid):
 * the fallback prices of the configuration, the spend cap of the CLI, the
 * cost an upstream reports and the prices of its catalog.  Called by conf,
 * the CLI, usage reading and the catalog. */
#include "config.h"

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
