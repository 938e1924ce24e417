-- 014: several upstreams, chosen by model, with fallbacks.
--
-- usage_events gains the upstream that served a request (the one called
-- last when none did) and its calls: a JSON array of
-- {upstream, model, status, error, latency_ms}, one per upstream call,
-- in order.  Both are NULL on rows written before, and on requests that
-- never reached an upstream.
ALTER TABLE usage_events ADD COLUMN upstream text, ADD COLUMN attempts jsonb;

-- The catalog per upstream: each upstream's models under the ids clients
-- use (a stripped prefix put back), with its prices (USD per token; NULL
-- where it lists none).  routed: the routing sends this id to this
-- upstream first; models, which /v1/models and admission read, holds the
-- routed rows of every upstream.  Admission prices each call a request
-- may make (fallbacks too) here, and reserves the dearest.
CREATE TABLE upstream_models (
    upstream  text NOT NULL,
    LIKE models INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    routed    boolean NOT NULL,
    PRIMARY KEY (upstream, id)
);

-- models says which upstream each of its rows came from.
ALTER TABLE models ADD COLUMN upstream text;

-- The catalog synced so far is the one upstream's, "default".
INSERT INTO upstream_models (upstream, id, kind, name, context_length, prompt_price,
       completion_price, routed, object, synced_at)
SELECT 'default', id, kind, name, context_length, prompt_price, completion_price, true,
       object, synced_at
  FROM models;
UPDATE models SET upstream = 'default';
