-- 009: reconciliation.  Every usage row says whether its cost has been
-- checked against what the upstream billed; a difference is an adjustment
-- row, appended, never written over the recorded cost.
--
-- usage_events.recon_state:
--   recorded          the cost the answer carried (or the catalog's, or
--                     the reservation's when reaped), not checked (yet)
--   confirmed         the upstream's per-generation cost equals it
--   adjusted          it differed: usage_adjustments holds the difference
--   missing_upstream  the upstream never knew the id, after every retry
--   no_id             no generation id was ever seen
--   unsupported       the upstream has no per-generation API
-- recon_next_at: when the responders' upkeep looks the generation up
-- (NULL: never again); recon_tries: lookups that found nothing so far;
-- upstream_cost: what the upstream billed, once known.
--
-- What a request is charged is its cost plus its adjustments; an
-- adjustment changes its project's spent (in the period the request was
-- admitted in, as its cost did) and the rollups, in the transaction that
-- appends it.
ALTER TABLE usage_events
    ADD COLUMN recon_state text NOT NULL DEFAULT 'recorded'
        CONSTRAINT usage_events_recon_state_check
        CHECK (recon_state IN ('recorded', 'confirmed', 'adjusted', 'missing_upstream',
                               'no_id', 'unsupported')),
    ADD COLUMN recon_tries smallint NOT NULL DEFAULT 0,
    ADD COLUMN recon_next_at timestamptz,
    ADD COLUMN upstream_cost numeric;

-- Rows settled before: an answer without an id can never be checked.
UPDATE usage_events SET recon_state = 'no_id'
 WHERE upstream_id IS NULL AND settled_at IS NOT NULL;

-- The rows due for a lookup, found without reading the others.
CREATE INDEX usage_events_recon_idx ON usage_events (recon_next_at)
    WHERE recon_next_at IS NOT NULL;

-- One row per usage row whose charge was corrected: amount = upstream -
-- recorded (signed, USD).  Appended only (see mg_keep_adjustments in
-- sql/functions/reconcile.sql); kept when the usage rows of its month are
-- pruned, like the rollups.
CREATE TABLE usage_adjustments (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id  text NOT NULL,
    created_at  timestamptz NOT NULL,   -- the usage row's (its partition)
    project_id  bigint NOT NULL REFERENCES projects (id),
    model       text,
    recorded    numeric NOT NULL,       -- what the row was charged before
    upstream    numeric NOT NULL CHECK (upstream >= 0),
    amount      numeric NOT NULL CHECK (amount <> 0),
    source      text NOT NULL CHECK (source IN ('generation')),
    made_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT usage_adjustments_once UNIQUE (request_id, created_at)
);
CREATE INDEX usage_adjustments_created_idx ON usage_adjustments (created_at);

-- The daily close: per UTC day and model, what the gateway charged and
-- what the upstream's activity says it billed; and the account's credits
-- next to the gateway's total.  One row per (day, model) and close; the
-- latest close of a day is the one that counts.
CREATE TABLE recon_closes (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    day          date NOT NULL,
    model        text NOT NULL,          -- '' for the account's credits row
    requests     bigint NOT NULL,
    gateway      numeric NOT NULL,       -- recorded costs of the day's rows
    adjustments  numeric NOT NULL,       -- their adjustments
    upstream     numeric,                -- billed, by the upstream's activity
    difference   numeric,                -- upstream - (gateway + adjustments)
    closed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recon_closes_day_idx ON recon_closes (day, model, closed_at);
