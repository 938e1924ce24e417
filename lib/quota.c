/* quota.c -- The client-facing side of admission (pure functions): the prompt
 * estimate a reservation starts from, the x-ratelimit-* headers and the
 * 429 a refused request gets.  Called by the gateway. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "fcgi.h"
#include "quota.h"
#include "text.h"

long long
mg_quota_prompt_estimate(size_t body_len)
{
	long long n = (long long)((body_len + MG_BYTES_PER_TOKEN - 1) / MG_BYTES_PER_TOKEN);

	return n > 0 ? n : 1;
}

void
mg_quota_duration(long long ms, char *out, size_t len)
{
	char text[64], *p = text;
	long long s, m, h;

	/* snprintf's "%lldms", "%lld.%02llds", "%lldh%lldm%llds", ... */
	if (ms < 0)
		ms = 0;
	if (ms < 1000) {
		p += mg_text_decimal(p, ms, 1);
		*p++ = 'm';
		goto out;
	}
	s = ms / 1000;
	ms %= 1000;
	if (s < 60) {
		p += mg_text_decimal(p, s, 1);
		if (ms != 0) {
			*p++ = '.';
			if (ms % 100 == 0)
				p += mg_text_decimal(p, ms / 100, 1);
			else if (ms % 10 == 0)
				p += mg_text_decimal(p, ms / 10, 2);
			else
				p += mg_text_decimal(p, ms, 3);
		}
		goto out;
	}
	if (ms > 0)
		s++;            /* whole seconds past a minute: round up */
	h = s / 3600;
	m = s / 60 % 60;
	s %= 60;
	if (h > 0) {
		p += mg_text_decimal(p, h, 1);
		*p++ = 'h';
	}
	p += mg_text_decimal(p, m, 1);
	*p++ = 'm';
	p += mg_text_decimal(p, s, 1);
out:
	*p++ = 's';
	*p = '\0';
	if (len > 0)
		mg_text_copy(out, len, text);
}

/* The names of the limit, remaining and reset lines of one limit. */
static const char *const request_names[] = {
	"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"
};
static const char *const token_names[] = {
	"x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"
};

/* The three x-ratelimit-* lines of one limit; -1 (out unchanged) when
 * they did not fit. */
static int
limit_headers(const char *const names[3], long long limit, long long remaining,
    long long reset_ms, char *out, size_t len)
{
	char reset[32];
	size_t used = strlen(out);

	/* no limit, or one the admission never reached (a model refusal) */
	if (limit < 0 || remaining < 0)
		return 0;
	mg_quota_duration(reset_ms, reset, sizeof(reset));
	if (mg_fcgi_header_addll(out, len, names[0], limit) != MG_OK ||
	    mg_fcgi_header_addll(out, len, names[1], remaining) != MG_OK ||
	    mg_fcgi_header_add(out, len, names[2], reset) != MG_OK)
		goto undo;
	return 0;
undo:
	out[used] = '\0';
	return -1;
}

int
mg_quota_headers(const struct mg_admission *a, char *out, size_t len)
{
	size_t used = strlen(out);

	if (limit_headers(request_names, a->rpm, a->rpm_remaining, a->rpm_reset_ms, out, len) < 0 ||
	    limit_headers(token_names, a->tpm, a->tpm_remaining, a->tpm_reset_ms, out, len) < 0) {
		out[used] = '\0';
		return -1;
	}
	return 0;
}

static void
retry_headers(long long ms, int should_retry, char *out, size_t len)
{
	size_t used = strlen(out);

	/* lines that do not fit are left out (the two retry-after lines
	 * together): the refusal's status and body say it all the same */
	if (ms >= 0 &&
	    (mg_fcgi_header_addll(out, len, "Retry-After", ms > 0 ? (ms + 999) / 1000 : 0) != MG_OK ||
	    mg_fcgi_header_addll(out, len, "retry-after-ms", ms) != MG_OK))
		out[used] = '\0';
	if (!should_retry && mg_fcgi_header_add(out, len, "x-should-retry", "false") != MG_OK)
		return;         /* out is as it was */
}

void
mg_quota_refusal(const struct mg_admission *a, const char *model,
    struct mg_apierror *e, char *headers, size_t len)
{
	const char *project = a->auth.project;
	char wait[32];

	mg_quota_duration(a->retry_after_ms, wait, sizeof(wait));
	switch (a->outcome) {
	case MG_ADMIT_MODEL_NOT_ALLOWED:
		mg_apierror_set(e, 403, "invalid_request_error", "model", "model_not_allowed",
		    "Project '%s' may not use the model '%.200s'. The gateway operator sets "
		    "the models a project may use.", project, model);
		return;
	case MG_ADMIT_MODEL_NOT_FOUND:
		mg_apierror_set(e, 404, "invalid_request_error", "model", "model_not_found",
		    "The model '%.200s' does not exist or is not available through this gateway. "
		    "GET /v1/models lists the models you can use.", model);
		return;
	case MG_ADMIT_SPEND_CAP:
		mg_apierror_set(e, 429, "insufficient_quota", NULL, "spend_cap_exceeded",
		    "Project '%s' has reached its spend cap of $%s %s: $%s is spent, and this request "
		    "could cost up to $%s with what is already in flight. %s",
		    project, a->spend_cap, a->retry_after_ms >= 0 ? "for this month (UTC)" : "in total",
		    a->spent, a->reserved,
		    a->retry_after_ms >= 0 ? "The cap starts again on the 1st of next month (UTC); "
		    "until then, or until the operator raises it, requests are refused."
		    : "Requests are refused until the gateway operator raises it.");
		retry_headers(a->retry_after_ms, 0, headers, len);
		return;
	case MG_ADMIT_REQUESTS:
		mg_apierror_set(e, 429, "requests", NULL, "rate_limit_exceeded",
		    "Rate limit reached for project '%s' on requests per minute (RPM): limit %lld. "
		    "Please try again in %s.", project, a->rpm, wait);
		retry_headers(a->retry_after_ms, 1, headers, len);
		return;
	case MG_ADMIT_TOKENS:
		mg_apierror_set(e, 429, "tokens", NULL, "rate_limit_exceeded",
		    "Rate limit reached for project '%s' on tokens per minute (TPM): limit %lld, "
		    "remaining %lld, requested %lld (prompt estimate plus max_tokens). "
		    "Please try again in %s.", project, a->tpm, a->tpm_remaining < 0 ? 0 : a->tpm_remaining,
		    a->need_tokens, wait);
		retry_headers(a->retry_after_ms, 1, headers, len);
		return;
	case MG_ADMIT_TOKENS_TOO_MANY:
		mg_apierror_set(e, 429, "tokens", NULL, "rate_limit_exceeded",
		    "This request needs up to %lld tokens (prompt estimate plus max_tokens), more than "
		    "project '%s' may use in a minute (TPM limit %lld). Lower max_tokens or shorten "
		    "the prompt.", a->need_tokens, project, a->tpm);
		retry_headers(-1, 0, headers, len);
		return;
	case MG_ADMIT_OK:
	case MG_ADMIT_INVALID_KEY:
	default:
		mg_apierror_set(e, 500, "server_error", NULL, NULL, "internal error");
		return;
	}
}
