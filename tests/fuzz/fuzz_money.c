/* fuzz_money.c -- Amounts of USD (money.c) as the config, the CLI, the
 * upstream and Postgres write them, and a project's limits as the CLI
 * and the admin tools give them (admin.c): the input is the limits'
 * five texts split at NUL bytes, the first also read as an amount.  An
 * amount valid in the plain form is valid as a number, and its value in
 * 1e-9 USD is the same read either way. */
#include "config.h"

#include "admin.h"
#include "fuzz.h"
#include "money.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_text(data, size), *p = text;
	struct mg_admin_limits l;
	enum mg_admin_limit bad;
	unsigned long long nano;
	long long signed_nano;
	int plain, number, i;

	plain = mg_money_valid(text, MG_MONEY_PLAIN);
	number = mg_money_valid(text, MG_MONEY_NUMBER);
	FUZZ_CHECK(!plain || number);
	if (number) {
		FUZZ_CHECK(strlen(text) < MG_MONEY_MAX);
		if (mg_money_nano(text, &nano) == 0 && plain &&
		    mg_money_numeric_nano(text, strlen(text), &signed_nano) == 0)
			FUZZ_CHECK((unsigned long long)signed_nano == nano);
	} else {
		FUZZ_CHECK(mg_money_nano(text, &nano) == -1);
	}
	(void)!mg_money_numeric_nano(text, size, &signed_nano);

	memset(&l, 0, sizeof(l));
	for (i = 0; i < MG_LIMIT__COUNT && p <= text + size; i++) {
		l.value[i] = p;
		p += strlen(p) + 1;
	}
	if (mg_admin_limits_check(&l, &bad) != MG_OK) {
		FUZZ_CHECK((int)bad >= 0 && bad < MG_LIMIT__COUNT);
		FUZZ_CHECK(mg_admin_limit_name(bad) != NULL && mg_admin_limit_rule(bad) != NULL);
	} else if (l.value[MG_LIMIT_SPEND_CAP] != NULL &&
	    strcmp(l.value[MG_LIMIT_SPEND_CAP], "none") != 0) {
		FUZZ_CHECK(mg_money_valid(l.value[MG_LIMIT_SPEND_CAP], MG_MONEY_PLAIN));
	}
	free(text);
	return 0;
}
