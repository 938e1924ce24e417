#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lease.h"
#include "money.h"
#include "unit.h"

/* The key hash every request here uses, and a second one. */
#define KEY_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define KEY_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static void
request(struct mg_admit_req *q, const char *key, long long prompt, long long max_output)
{
	memset(q, 0, sizeof(*q));
	q->key_hash_hex = key;
	q->request_id = "req_1";
	q->model = "vendor/model";
	q->endpoint = "chat.completions";
	q->prompt_estimate = prompt;
	q->max_output = max_output;
	q->default_output = 100;
	q->fallback_prompt = "0.00001";
	q->fallback_completion = "0.00003";
}

/* Applies one answer, as a batch of one. */
static int
grant(struct mg_leases *ls, const struct mg_admit_req *q, struct mg_admission *out,
    long long now_ms)
{
	int rc = -2;

	mg_leases_granted_batch(ls, &q, &out, &rc, 1, now_ms);
	return rc;
}

/* What Postgres answers a lease element of project 7 (rpm 60, tpm 10000,
 * cap 1): the slice lent and the lease after it. */
static void
answer(struct mg_admission *a, long long lease_id, long long seq, const char *spend,
    long long reqs, long long toks, int tight)
{
	memset(a, 0, sizeof(*a));
	a->outcome = MG_ADMIT_OK;
	a->auth.key_id = 3;
	a->auth.project_id = 7;
	snprintf(a->auth.project, sizeof(a->auth.project), "p7");
	snprintf(a->auth.key_prefix, sizeof(a->auth.key_prefix), "mg-abc");
	snprintf(a->reserved, sizeof(a->reserved), "0.0000035");
	snprintf(a->spend_cap, sizeof(a->spend_cap), "1");
	snprintf(a->spent, sizeof(a->spent), "0.25");
	snprintf(a->prompt_price, sizeof(a->prompt_price), "0.00000001");
	snprintf(a->completion_price, sizeof(a->completion_price), "0.000000025");
	a->context_length = -1;
	a->rpm = 60;
	a->rpm_remaining = 50;
	a->rpm_reset_ms = 10000;
	a->tpm = 10000;
	a->tpm_remaining = 9000;
	a->tpm_reset_ms = 6000;
	a->retry_after_ms = -1;
	a->need_tokens = 200;
	a->lease_id = lease_id;
	a->lease_seq = seq;
	a->lease_requests = reqs;
	a->lease_tokens = toks;
	snprintf(a->lease_spend, sizeof(a->lease_spend), "%s", spend);
	a->lease_tight = tight;
}

/* A slice taken cold asks for MG_LEASE_WANT_MIN; once 100 ms of traffic
 * show a higher rate, its refill asks for MG_LEASE_SLICE_MS of that rate,
 * without waiting for a whole second to be counted. */
START_TEST(lease_ramp)
{
	struct mg_leases *ls = mg_leases_new("host:9:8");
	struct mg_lease_refresh r[4];
	struct mg_admit_req q;
	struct mg_admission a, out;
	char spend[MG_COST_MAX];
	long long t0 = 50000;
	int i;

	ck_assert_ptr_nonnull(ls);
	mg_leases_changes(ls, 0, t0);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, t0, spend, sizeof(spend)), 0);
	ck_assert_int_eq(q.lease_requests, 1);
	answer(&a, 6, 1, "0.5", MG_LEASE_WANT_MIN, 100000, 0);
	out = a;
	ck_assert_int_eq(grant(ls, &q, &out, t0), 0);
	/* 8 taken in the first 50 ms: too soon to tell a rate, the refill
	 * (half of the slice left) asks for the least */
	for (i = 0; i < MG_LEASE_WANT_MIN / 2; i++) {
		request(&q, KEY_A, 100, 100);
		ck_assert_int_ne(mg_leases_admit(ls, &q, &out, t0 + 1 + i * 6, spend,
		    sizeof(spend)), 0);
	}
	ck_assert_int_eq(mg_leases_refresh_due(ls, t0 + 50, r, 4), 1);
	ck_assert_int_eq(r[0].q.lease_requests, MG_LEASE_WANT_MIN);
	answer(&a, 6, 2, "0.5", MG_LEASE_WANT_MIN, 100000, 0);
	r[0].out = a;
	ck_assert_int_eq(grant(ls, &r[0].q, &r[0].out, t0 + 51), 0);
	/* the first request took one of the 16 lent: 7 + 16 left.  22 more
	 * by 400 ms make 31 in the 400 ms since the lease was taken (77 a
	 * second): the one left is low, and the refill asks for
	 * MG_LEASE_SLICE_MS of that */
	for (i = 0; i < 22; i++) {
		request(&q, KEY_A, 100, 100);
		ck_assert_int_ne(mg_leases_admit(ls, &q, &out, t0 + 200 + i * 8, spend,
		    sizeof(spend)), 0);
	}
	ck_assert_int_eq(mg_leases_refresh_due(ls, t0 + 400, r, 4), 1);
	ck_assert_int_eq(r[0].q.lease_requests, 31 * 1000 / 400 * MG_LEASE_SLICE_MS / 1000 + 1);
	ck_assert_int_eq(r[0].q.lease_tokens,
	    (31 * 1000 / 400 * MG_LEASE_SLICE_MS / 1000 + 1) * 200);
	mg_leases_free(ls);
}
END_TEST

/* A key and model's answer is used only under the count of admission
 * changes that the last check found, and for MG_LEASE_TMPL_MS after that
 * check was sent; an answer asked for before a change is not used after
 * it, however late it comes; answers no longer current are dropped. */
START_TEST(lease_changes)
{
	struct mg_leases *ls = mg_leases_new("host:9:7");
	struct mg_lease_release rel;
	struct mg_admit_req q;
	struct mg_admission a, out;
	char spend[MG_COST_MAX];
	long long t0 = 70000, renew[4];
	int n;

	ck_assert_ptr_nonnull(ls);
	/* nothing checked yet: admitted in Postgres, even after an answer */
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, t0, spend, sizeof(spend)), 0);
	ck_assert_int_eq(q.lease_changes, -1);
	ck_assert_int_eq(mg_leases_check_due(ls, t0), 0);   /* nothing in use */
	answer(&a, 8, 1, "0.5", 100, 100000, 0);
	out = a;
	ck_assert_int_eq(grant(ls, &q, &out, t0), 0);
	ck_assert_int_eq(mg_leases_check_due(ls, t0 + 1), 1);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, t0 + 1, spend, sizeof(spend)), 0);
	/* the first check finds 5: the answer asked under -1 is not current */
	mg_leases_changes(ls, 5, t0 + 2);
	ck_assert_int_eq(mg_leases_check_due(ls, t0 + 2), 0);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, t0 + 3, spend, sizeof(spend)), 0);
	ck_assert_int_eq(q.lease_changes, 5);
	answer(&a, 8, 2, "0.5", 100, 100000, 0);
	out = a;
	ck_assert_int_eq(grant(ls, &q, &out, t0 + 3), 0);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, t0 + 4, spend, sizeof(spend)), 1);
	/* checked again MG_LEASE_CHECK_MS after the last */
	ck_assert_int_eq(mg_leases_check_due(ls, t0 + 2 + MG_LEASE_CHECK_MS - 1), 0);
	ck_assert_int_eq(mg_leases_check_due(ls, t0 + 2 + MG_LEASE_CHECK_MS), 1);
	/* no check for a second: not used */
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, t0 + 2 + MG_LEASE_TMPL_MS - 1, spend,
	    sizeof(spend)), 1);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, t0 + 2 + MG_LEASE_TMPL_MS, spend,
	    sizeof(spend)), 0);
	/* a check that finds no change: used again, without asking */
	mg_leases_changes(ls, 5, t0 + 1100);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, t0 + 1101, spend, sizeof(spend)), 1);
	/* a change: the answer is not used; one asked under 6 but answered
	 * after a check found 7 (a change while it was asked) is not either */
	mg_leases_changes(ls, 6, t0 + 1200);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, t0 + 1201, spend, sizeof(spend)), 0);
	ck_assert_int_eq(q.lease_changes, 6);
	mg_leases_changes(ls, 7, t0 + 1202);
	/* an older check answered late changes nothing */
	mg_leases_changes(ls, 6, t0 + 1150);
	answer(&a, 8, 3, "0.5", 100, 100000, 0);
	out = a;
	ck_assert_int_eq(grant(ls, &q, &out, t0 + 1203), 0);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, t0 + 1204, spend, sizeof(spend)), 0);
	ck_assert_int_eq(q.lease_changes, 7);
	/* upkeep drops the answer no longer current: nothing is in use */
	ck_assert_int_eq(mg_leases_in_use(ls, t0 + 1205), 1);
	(void)mg_leases_due(ls, t0 + 1205, 30000, &rel, renew, 4, &n);
	ck_assert_int_eq(mg_leases_in_use(ls, t0 + 1205), 0);
	ck_assert_int_eq(mg_leases_check_due(ls, t0 + 2000), 0);
	mg_leases_free(ls);
}
END_TEST

/* A first request goes to Postgres as a lease element; the slice lent
 * then admits the next ones here until a limit of it is reached. */
START_TEST(lease_admits_from_slice)
{
	struct mg_leases *ls = mg_leases_new("host:1:2");
	struct mg_admit_req q;
	struct mg_admission a, out;
	char spend[MG_COST_MAX];
	int i;

	ck_assert_ptr_nonnull(ls);
	mg_leases_changes(ls, 0, 1000);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, 1000, spend, sizeof(spend)), 0);
	ck_assert_str_eq(q.lease_holder, "host:1:2");
	ck_assert_int_eq(q.lease_requests, 1);
	/* Postgres lends 4 requests, 1000 tokens, $0.000014 */
	answer(&a, 11, 1, "0.000014", 4, 1000, 0);
	out = a;
	ck_assert_int_eq(grant(ls, &q, &out, 1000), 0);
	ck_assert_int_eq(out.outcome, MG_ADMIT_OK);
	ck_assert_int_eq(out.ticket.lease_id, 11);
	ck_assert_int_eq(out.ticket.reserved_tokens, 200);
	/* 100 x 1e-8 + 100 x 2.5e-8 = 3.5e-6, in pico-USD */
	ck_assert_int_eq(out.ticket.reserved_pico, 3500000);
	ck_assert_str_eq(out.ticket.reserved, "0.000003500000");
	ck_assert_str_eq(out.ticket.prompt_price, "0.00000001");
	/* the headers: the bucket without the slice, plus what is left of it */
	ck_assert_int_eq(out.rpm_remaining, 50 + 3);
	ck_assert_int_eq(out.tpm_remaining, 9000 + 800);

	/* three more fit the requests left (and tokens, spend) */
	for (i = 0; i < 3; i++) {
		request(&q, KEY_A, 100, 100);
		ck_assert_int_ne(mg_leases_admit(ls, &q, &out, 1001 + i, spend, sizeof(spend)), 0);
		ck_assert_int_eq(out.ticket.lease_id, 11);
		ck_assert_str_eq(out.auth.project, "p7");
		ck_assert_int_eq(out.rpm_remaining, 50 + 2 - i);
	}
	/* the fifth needs a new slice: asked for as a lease element */
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, 1010, spend, sizeof(spend)), 0);
	ck_assert_ptr_nonnull(q.lease_holder);
	ck_assert_int_eq(q.lease_tokens, q.lease_requests * 200);
	ck_assert_ptr_nonnull(q.lease_spend);
	mg_leases_free(ls);
}
END_TEST

/* Spend: a request whose reservation passes what the lease holds less what
 * its unsettled requests reserved is not admitted here; a settlement
 * gives its reservation back, and Postgres's newer spend counts. */
START_TEST(lease_spend_is_bounded)
{
	struct mg_leases *ls = mg_leases_new("h");
	struct mg_admit_req q;
	struct mg_admission a, out, first;
	struct mg_usage u;
	struct mg_lease_state st;
	char spend[MG_COST_MAX];

	mg_leases_changes(ls, 0, 0);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &first, 0, spend, sizeof(spend)), 0);
	/* the lease holds $0.000007: two requests of $0.0000035 */
	answer(&a, 5, 1, "0.000007", 100, 10000, 0);
	first = a;
	ck_assert_int_eq(grant(ls, &q, &first, 0), 0);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_ne(mg_leases_admit(ls, &q, &out, 1, spend, sizeof(spend)), 0);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, 2, spend, sizeof(spend)), 0);

	/* the first settles at $0.000001: Postgres's lease now holds
	 * $0.000006, of which $0.0000035 reserved here: not enough */
	mg_usage_init(&u);
	u.project_id = 7;
	u.total_tokens = 150;
	u.lease = first.ticket;
	mg_leases_settled(ls, &u, 1);
	st.id = 5;
	st.seq = 2;
	snprintf(st.spend, sizeof(st.spend), "0.000006");
	mg_leases_update(ls, &st);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, 3, spend, sizeof(spend)), 0);
	/* an older answer changes nothing; a newer one does */
	st.seq = 1;
	snprintf(st.spend, sizeof(st.spend), "1");
	mg_leases_update(ls, &st);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, 4, spend, sizeof(spend)), 0);
	st.seq = 3;
	snprintf(st.spend, sizeof(st.spend), "0.000007");
	mg_leases_update(ls, &st);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_ne(mg_leases_admit(ls, &q, &out, 5, spend, sizeof(spend)), 0);
	mg_leases_free(ls);
}
END_TEST

/* Another key (or an answer whose last check is a second old) goes to
 * Postgres; a refusal keeps nothing; a tight grant leaves nothing to
 * admit here. */
START_TEST(lease_key_and_expiry)
{
	struct mg_leases *ls = mg_leases_new("h");
	struct mg_admit_req q;
	struct mg_admission a, out;
	char spend[MG_COST_MAX];

	mg_leases_changes(ls, 0, 0);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, 0, spend, sizeof(spend)), 0);
	answer(&a, 5, 1, "0.5", 100, 10000, 0);
	out = a;
	ck_assert_int_eq(grant(ls, &q, &out, 0), 0);
	request(&q, KEY_B, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, 10, spend, sizeof(spend)), 0);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, MG_LEASE_TMPL_MS - 1, spend,
	    sizeof(spend)), 1);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, MG_LEASE_TMPL_MS, spend, sizeof(spend)), 0);

	/* a refusal: nothing kept, nothing admitted */
	memset(&out, 0, sizeof(out));
	out.outcome = MG_ADMIT_SPEND_CAP;
	ck_assert_int_eq(grant(ls, &q, &out, MG_LEASE_TMPL_MS), 0);
	ck_assert_int_eq(out.ticket.lease_id, 0);

	/* tight: the request's own share; the next goes to Postgres */
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, 2 * MG_LEASE_TMPL_MS, spend,
	    sizeof(spend)), 0);
	mg_leases_changes(ls, 0, 2 * MG_LEASE_TMPL_MS);
	answer(&a, 6, 1, "0.0000035", 1, 200, 1);
	out = a;
	ck_assert_int_eq(grant(ls, &q, &out, 2 * MG_LEASE_TMPL_MS), 0);
	ck_assert_int_eq(out.ticket.tight, 1);
	ck_assert_int_eq(out.ticket.lease_id, 6);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, 2 * MG_LEASE_TMPL_MS + 1, spend,
	    sizeof(spend)), 0);
	mg_leases_free(ls);
}
END_TEST

/* Upkeep: an idle lease with nothing unsettled is given back (and not
 * used meanwhile), one with a request unsettled is not; renewals come a
 * third of the timeout apart; a reaped lease is never used again. */
START_TEST(lease_upkeep)
{
	struct mg_leases *ls = mg_leases_new("h");
	struct mg_admit_req q;
	struct mg_admission a, out, held;
	struct mg_lease_release r, drained[4];
	struct mg_usage u;
	long long renew[8];
	char spend[MG_COST_MAX];
	int n;

	mg_leases_changes(ls, 0, 0);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &held, 0, spend, sizeof(spend)), 0);
	answer(&a, 5, 4, "0.5", 10, 5000, 0);
	held = a;
	ck_assert_int_eq(grant(ls, &q, &held, 0), 0);
	/* renewed every third of the timeout; idle, but with its request
	 * unsettled: kept */
	ck_assert_int_eq(mg_leases_due(ls, 100, 30000, &r, renew, 8, &n), 0);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(mg_leases_due(ls, 10000, 30000, &r, renew, 8, &n), 0);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(renew[0], 5);
	ck_assert_int_eq(mg_leases_due(ls, 15000, 30000, &r, renew, 8, &n), 0);
	ck_assert_int_eq(n, 0);
	mg_usage_init(&u);
	u.project_id = 7;
	u.total_tokens = 50;
	u.lease = held.ticket;
	mg_leases_settled(ls, &u, 1);
	ck_assert_int_eq(mg_leases_due(ls, 15000, 30000, &r, renew, 8, &n), 1);
	ck_assert_int_eq(r.id, 5);
	ck_assert_int_eq(r.seq, 4);
	ck_assert_int_eq(r.requests, 9);
	/* 5000 - 200 + 150 unused tokens back into the slice */
	ck_assert_int_eq(r.tokens, 4950);
	/* being given back: not used */
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, 15001, spend, sizeof(spend)), 0);
	/* not released (it changed): used again */
	mg_leases_changes(ls, 0, 15000);
	mg_leases_released(ls, 5, 0);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, 15002, spend, sizeof(spend)), 0);
	request(&q, KEY_A, 100, 100);
	answer(&a, 5, 5, "0.5", 10, 5000, 0);
	out = a;
	ck_assert_int_eq(grant(ls, &q, &out, 15002), 0);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_ne(mg_leases_admit(ls, &q, &out, 15003, spend, sizeof(spend)), 0);
	/* reaped: nothing more from it */
	mg_leases_dead(ls, 5);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, 15004, spend, sizeof(spend)), 0);
	/* at exit only leases with nothing unsettled are drained */
	ck_assert_int_eq(mg_leases_drain(ls, drained, 4), 0);
	mg_leases_free(ls);
}
END_TEST

/* Amounts in units of any scale, rounded each way, and back to text. */
START_TEST(money_units)
{
	long long v = 0;
	char text[MG_COST_MAX];

	ck_assert_int_eq(mg_money_units("0.000000075", 12, MG_MONEY_UP, &v), 0);
	ck_assert_int_eq(v, 75000);
	ck_assert_int_eq(mg_money_units("0.0000000000015", 12, MG_MONEY_UP, &v), 0);
	ck_assert_int_eq(v, 2);
	ck_assert_int_eq(mg_money_units("0.0000000000015", 12, MG_MONEY_DOWN, &v), 0);
	ck_assert_int_eq(v, 1);
	ck_assert_int_eq(mg_money_units("0.0000000000015", 12, MG_MONEY_HALF_UP, &v), 0);
	ck_assert_int_eq(v, 2);
	ck_assert_int_eq(mg_money_units("2.5e-7", 12, MG_MONEY_DOWN, &v), 0);
	ck_assert_int_eq(v, 250000);
	ck_assert_int_eq(mg_money_units("0.23422500000000000000", 12, MG_MONEY_DOWN, &v), 0);
	ck_assert_int_eq(v, 234225000000);
	ck_assert_int_eq(mg_money_units("10000000", 12, MG_MONEY_DOWN, &v), -1);
	ck_assert_int_eq(mg_money_units("-1", 12, MG_MONEY_DOWN, &v), -1);
	ck_assert_int_eq(mg_money_format_units(3500000, 12, text, sizeof(text)), 0);
	ck_assert_str_eq(text, "0.000003500000");
	ck_assert_int_eq(mg_money_format_units(12, 0, text, sizeof(text)), 0);
	ck_assert_str_eq(text, "12");
	ck_assert_int_eq(mg_money_format_units(-1500, 3, text, sizeof(text)), 0);
	ck_assert_str_eq(text, "-1.500");
	ck_assert_int_eq(mg_money_format_units(1, 12, text, 4), -1);
}
END_TEST

/* Near a cap Postgres lends one request at a time, and answers each
 * element with the lease's holding after it.  Two tight grants of one
 * batch, applied together in either order, leave no room for a third
 * admitted here; applied one at a time, the later first, there would be
 * (its holding counts the earlier one's share, not yet taken out). */
START_TEST(lease_tight_batch)
{
	struct mg_leases *ls = mg_leases_new("h");
	struct mg_admit_req q1, q2, q3;
	struct mg_admission o1, o2, out;
	const struct mg_admit_req *qs[2];
	struct mg_admission *outs[2];
	char spend[MG_COST_MAX];
	int rc[2] = { -2, -2 };

	mg_leases_changes(ls, 0, 1000);
	request(&q1, KEY_A, 100, 100);
	request(&q2, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q1, &out, 1000, spend, sizeof(spend)), 0);
	ck_assert_int_eq(mg_leases_admit(ls, &q2, &out, 1000, spend, sizeof(spend)), 0);
	/* each lent its own 3.5e-6: the lease holds one, then two */
	answer(&o1, 11, 1, "0.0000035", 1, 200, 1);
	answer(&o2, 11, 2, "0.000007", 1, 200, 1);
	qs[0] = &q2;            /* the later first */
	qs[1] = &q1;
	outs[0] = &o2;
	outs[1] = &o1;
	mg_leases_granted_batch(ls, qs, outs, rc, 2, 1000);
	ck_assert_int_eq(rc[0], 0);
	ck_assert_int_eq(rc[1], 0);
	ck_assert_int_eq(o1.ticket.tight, 1);
	ck_assert_int_eq(o2.ticket.lease_id, 11);
	/* both shares are out: a third goes to Postgres */
	request(&q3, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q3, &out, 1001, spend, sizeof(spend)), 0);
	ck_assert_ptr_nonnull(q3.lease_holder);
	mg_leases_free(ls);
}
END_TEST

/* A current answer in use is not renewed; a slice running low is
 * refilled by a lease element of no request, asked for once until
 * answered or MG_LEASE_ASK_MS has passed; a refusal drops the answer; one
 * not in use is dropped by upkeep. */
START_TEST(lease_refresh)
{
	struct mg_leases *ls = mg_leases_new("host:9:9");
	struct mg_lease_refresh r[4];
	struct mg_lease_release rel;
	struct mg_admit_req q;
	struct mg_admission a, out;
	char spend[MG_COST_MAX];
	long long t0 = 100000, t, renew[4];
	int i, n;

	ck_assert_ptr_nonnull(ls);
	mg_leases_changes(ls, 0, t0);
	request(&q, KEY_A, 100, 100);
	q.endpoint = "embeddings";
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, t0, spend, sizeof(spend)), 0);
	answer(&a, 5, 1, "0.5", 100, 10000, 0);
	out = a;
	ck_assert_int_eq(grant(ls, &q, &out, t0), 0);
	/* plenty left: admitted here, nothing to refill, nothing renewed
	 * however old the answer while the checks find no change */
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, t0 + 100, spend, sizeof(spend)), 1);
	ck_assert_int_eq(mg_leases_refresh_due(ls, t0 + 600, r, 4), 0);
	mg_leases_changes(ls, 0, t0 + 900);
	ck_assert_int_eq(mg_leases_refresh_due(ls, t0 + 1500, r, 4), 0);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, t0 + 1500, spend, sizeof(spend)), 1);
	ck_assert_int_eq(out.ticket.lease_id, 5);
	/* 100 lent, 3 taken */
	ck_assert_int_eq(out.rpm_remaining, 50 + 97);

	/* not used for MG_LEASE_IDLE_MS: dropped by upkeep (its lease, with
	 * requests unsettled, is kept) */
	t = t0 + 1500;
	ck_assert_int_eq(mg_leases_in_use(ls, t + MG_LEASE_IDLE_MS - 1), 1);
	t += MG_LEASE_IDLE_MS;
	ck_assert_int_eq(mg_leases_in_use(ls, t), 0);
	ck_assert_int_eq(mg_leases_due(ls, t, 30000, &rel, renew, 4, &n), 0);
	mg_leases_changes(ls, 0, t);
	ck_assert_int_eq(mg_leases_refresh_due(ls, t, r, 4), 0);
	request(&q, KEY_A, 100, 100);
	q.endpoint = "embeddings";
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, t, spend, sizeof(spend)), 0);

	/* a slice running low: admitted here (2: the refresher is due), and
	 * refilled by MG_LEASE_SLICE_MS's worth, at least MG_LEASE_WANT_MIN */
	answer(&a, 5, 3, "0.5", 1, 40000, 0);
	out = a;
	ck_assert_int_eq(grant(ls, &q, &out, t), 0);
	/* 97 requests left: down to half of MG_LEASE_WANT_MIN */
	for (i = 0; i < 97 - MG_LEASE_WANT_MIN / 2; i++) {
		request(&q, KEY_A, 100, 100);
		ck_assert_int_eq(mg_leases_admit(ls, &q, &out, t + 1, spend, sizeof(spend)), 1);
	}
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, t + 2, spend, sizeof(spend)), 2);
	ck_assert_int_eq(mg_leases_refresh_due(ls, t + 3, r, 4), 1);
	ck_assert_int_eq(r[0].q.lease_refresh, 1);
	ck_assert_str_eq(r[0].q.lease_holder, "host:9:9");
	ck_assert_str_eq(r[0].q.key_hash_hex, KEY_A);
	ck_assert_str_eq(r[0].q.model, "vendor/model");
	ck_assert_str_eq(r[0].q.endpoint, "embeddings");
	ck_assert_int_eq(r[0].q.prompt_estimate, 100);
	ck_assert_int_eq(r[0].q.max_output, 100);
	ck_assert_int_eq(r[0].q.lease_changes, 0);
	ck_assert_int_eq(r[0].q.lease_requests, MG_LEASE_WANT_MIN);
	ck_assert_int_eq(r[0].q.lease_tokens, MG_LEASE_WANT_MIN * 200);
	ck_assert_str_eq(r[0].q.lease_spend, "0.000056000000");
	/* asked: not again until MG_LEASE_ASK_MS has passed without an
	 * answer, and the next admission does not wake the refresher */
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, t + 4, spend, sizeof(spend)), 1);
	ck_assert_int_eq(mg_leases_refresh_due(ls, t + 4, r + 1, 3), 0);
	ck_assert_int_eq(mg_leases_refresh_due(ls, t + 3 + MG_LEASE_ASK_MS, r + 1, 3), 1);
	/* lent more than asked, so that this second's rate (about 150 a
	 * second, see lease_ramp) finds the slice full enough below; the
	 * refill took no request out of the slice */
	answer(&a, 5, 4, "0.5", 400, 80000, 0);
	r[0].out = a;
	ck_assert_int_eq(grant(ls, &r[0].q, &r[0].out, t + 5), 0);
	ck_assert_int_eq(r[0].out.ticket.lease_id, 0);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, t + 6, spend, sizeof(spend)), 1);
	ck_assert_int_eq(out.rpm_remaining, 50 + MG_LEASE_WANT_MIN / 2 - 3 + 400);

	/* a refill refused (a cap reached): the answer is dropped, and the
	 * next request goes to Postgres */
	for (i = 0; i < 400 - 10; i++) {
		request(&q, KEY_A, 100, 100);
		ck_assert_int_ne(mg_leases_admit(ls, &q, &out, t + 300, spend, sizeof(spend)), 0);
	}
	ck_assert_int_eq(mg_leases_refresh_due(ls, t + 300, r, 4), 1);
	memset(&r[0].out, 0, sizeof(r[0].out));
	r[0].out.outcome = MG_ADMIT_SPEND_CAP;
	ck_assert_int_eq(grant(ls, &r[0].q, &r[0].out, t + 301), 0);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, t + 302, spend, sizeof(spend)), 0);
	ck_assert_int_eq(mg_leases_refresh_due(ls, t + 300 + MG_LEASE_ASK_MS, r, 4), 0);

	/* nothing while Postgres is down */
	mg_leases_suspend(ls, 1);
	ck_assert_int_eq(mg_leases_refresh_due(ls, t + 900, r, 4), 0);
	mg_leases_free(ls);
}
END_TEST

/* A limit changed (as any answer of the project tells) leaves nothing of
 * the slices lent under the old one; a refill refused only for the
 * buckets keeps the key and model's answer. */
START_TEST(lease_limit_change)
{
	struct mg_leases *ls = mg_leases_new("h");
	struct mg_lease_refresh r[2];
	struct mg_admit_req q;
	struct mg_admission a, out;
	char spend[MG_COST_MAX];
	long long t = 5000;
	int i;

	ck_assert_ptr_nonnull(ls);
	mg_leases_changes(ls, 0, t);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, t, spend, sizeof(spend)), 0);
	answer(&a, 5, 1, "0.5", 10, 10000, 0);
	out = a;
	ck_assert_int_eq(grant(ls, &q, &out, t), 0);
	/* 9 left, then 7: low (under half of MG_LEASE_WANT_MIN) */
	for (i = 0; i < 2; i++) {
		request(&q, KEY_A, 100, 100);
		ck_assert_int_ne(mg_leases_admit(ls, &q, &out, t + 10, spend, sizeof(spend)), 0);
	}
	ck_assert_int_eq(out.rpm_remaining, 50 + 7);

	/* refused for the buckets: the answer and the slice are kept */
	ck_assert_int_eq(mg_leases_refresh_due(ls, t + 11, r, 2), 1);
	answer(&r[0].out, 5, 1, "0.5", -1, -1, 0);
	r[0].out.outcome = MG_ADMIT_REQUESTS;
	r[0].out.lease_id = 0;
	ck_assert_int_eq(grant(ls, &r[0].q, &r[0].out, t + 12), 0);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_ne(mg_leases_admit(ls, &q, &out, t + 13, spend, sizeof(spend)), 0);
	ck_assert_int_eq(out.rpm_remaining, 50 + 6);

	/* the limit lowered to 2: the 6 left are not admitted here */
	t += 11 + MG_LEASE_ASK_MS;
	ck_assert_int_eq(mg_leases_refresh_due(ls, t, r, 2), 1);
	answer(&r[0].out, 5, 2, "0.5", 0, 0, 1);
	r[0].out.rpm = 2;
	r[0].out.rpm_remaining = 1;
	ck_assert_int_eq(grant(ls, &r[0].q, &r[0].out, t), 0);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, t + 1, spend, sizeof(spend)), 0);
	/* Postgres lends it its one request: admitted, nothing left */
	answer(&a, 5, 3, "0.5", 1, 200, 1);
	a.rpm = 2;
	a.rpm_remaining = 0;
	out = a;
	ck_assert_int_eq(grant(ls, &q, &out, t + 2), 0);
	ck_assert_int_eq(out.rpm_remaining, 0);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_eq(mg_leases_admit(ls, &q, &out, t + 3, spend, sizeof(spend)), 0);

	/* no limit any more: admitted here whatever is left */
	answer(&a, 5, 4, "0.5", -1, 0, 0);
	a.rpm = -1;
	a.rpm_remaining = -1;
	out = a;
	ck_assert_int_eq(grant(ls, &q, &out, t + 4), 0);
	request(&q, KEY_A, 100, 100);
	ck_assert_int_ne(mg_leases_admit(ls, &q, &out, t + 5, spend, sizeof(spend)), 0);
	ck_assert_int_eq(out.rpm_remaining, -1);
	mg_leases_free(ls);
}
END_TEST

static Suite *
lease_suite(void)
{
	Suite *s = suite_create("lease");
	TCase *tc = tcase_create("bookkeeping");

	tcase_add_test(tc, lease_admits_from_slice);
	tcase_add_test(tc, lease_spend_is_bounded);
	tcase_add_test(tc, lease_key_and_expiry);
	tcase_add_test(tc, lease_upkeep);
	tcase_add_test(tc, money_units);
	tcase_add_test(tc, lease_tight_batch);
	tcase_add_test(tc, lease_refresh);
	tcase_add_test(tc, lease_limit_change);
	tcase_add_test(tc, lease_ramp);
	tcase_add_test(tc, lease_changes);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return mg_unit_run(lease_suite());
}
