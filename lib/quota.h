#ifndef MG_QUOTA_H
#define MG_QUOTA_H

#include <stddef.h>

#include "apierror.h"
#include "store.h"

/* The client-facing side of admission (pure functions): the prompt
 * estimate a reservation starts from, the x-ratelimit-* headers, and the
 * error a refused request gets. */

/* Request body bytes per estimated prompt token.  Tokenizers average about
 * four bytes of English per token; the whole JSON body divided by three
 * errs on the high side, as a reservation must. */
#define MG_BYTES_PER_TOKEN 3

/* An upper estimate of a request's prompt tokens from its body size. */
long long mg_quota_prompt_estimate(size_t body_len);

/* Formats a duration as OpenAI's headers do: "20ms", "1s", "1.5s",
 * "6m0s", "1h2m3s".  Negative counts as 0. */
void mg_quota_duration(long long ms, char *out, size_t len);

/* Appends the x-ratelimit-{limit,remaining,reset}-{requests,tokens}
 * header lines for the limits the project has (none when it has none, or
 * when admission stopped before the limits, as for a model refusal).
 * Returns -1 if they did not fit (out is then unchanged). */
int mg_quota_headers(const struct mg_admission *a, char *out, size_t len);

/* For a refused admission (outcome other than OK and INVALID_KEY): fills e
 * (429, 403 or 404) and appends Retry-After, retry-after-ms and
 * x-should-retry lines to headers as they apply. */
void mg_quota_refusal(const struct mg_admission *a, const char *model,
    struct mg_apierror *e, char *headers, size_t len);

#endif
