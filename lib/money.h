#ifndef MG_MONEY_H
#define MG_MONEY_H

#include <stddef.h>

/* Amounts of USD as exact decimal text: what the gateway checks before
 * an amount goes to Postgres (as numeric) or into a usage row. */

/* The longest amount in characters, plus one for the NUL. */
#define MG_MONEY_MAX 48

/* Where an amount comes from, and so the forms it may take. */
enum mg_money_form {
	MG_MONEY_PLAIN,   /* set by a person (config, CLI): digits with an
	                   * optional fraction, as "25", "0.50" */
	MG_MONEY_NUMBER   /* read from the upstream (a cost, a catalog price):
	                   * PLAIN, or followed by an exponent of one to three
	                   * digits, as "1e-7", "2.5E+3" */
};

/* 1 when s is a non-negative amount in form: no sign, at least one digit
 * before and after a decimal point, at most MG_MONEY_MAX - 1 characters;
 * else 0.  Such text is taken by Postgres numeric exactly as written. */
int mg_money_valid(const char *s, enum mg_money_form form);

/* A valid MG_MONEY_NUMBER amount in 1e-9 USD into *nano, rounded half up
 * past nine decimals: exact integer arithmetic, no floating point.  0, or
 * -1 when s is not valid or the amount does not fit in 64 bits. */
int mg_money_nano(const char *s, unsigned long long *nano)
	__attribute__((warn_unused_result));

/* How an amount is rounded to a whole number of units. */
enum mg_money_round {
	MG_MONEY_HALF_UP,  /* to the nearest, a half up */
	MG_MONEY_UP,       /* any part of a unit counts as one */
	MG_MONEY_DOWN      /* parts of a unit are left out */
};

/* A valid MG_MONEY_NUMBER amount in units of 10^-scale USD (scale 0 to
 * 18; 12: pico-USD, fine enough for any per-token price) into *out,
 * rounded as round says.  0, or -1 when s is not valid or the amount
 * does not fit in a long long. */
int mg_money_units(const char *s, int scale, enum mg_money_round round, long long *out)
	__attribute__((warn_unused_result));

/* v units of 10^-scale USD as exact decimal text ("0.000300000000");
 * 0, or -1 when it did not fit in len bytes. */
int mg_money_format_units(long long v, int scale, char *out, size_t len)
	__attribute__((warn_unused_result));

/* An amount as Postgres writes a numeric (an optional '-', digits, an
 * optional fraction of any length; len bytes, no NUL needed) in 1e-9 USD,
 * rounded half away from zero, into *nano.  0, or -1 when s is not such
 * an amount or it does not fit in a long long. */
int mg_money_numeric_nano(const char *s, size_t len, long long *nano)
	__attribute__((warn_unused_result));

#endif
