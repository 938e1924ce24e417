-- 011: each key's totals over every status, and its six-hour totals.
--
-- A report by key over every project outside UTC (in Kolkata a local
-- month starts at 18:30 UTC) reads the keys' month rows and, at each end
-- of the period, their rows of up to twelve hours and two quarters: about
-- 26,000 rows of 48 sums for 2,000 keys.  Two changes make that about
-- 9,000:
--
-- * The keys' totals (grains 'H', 'D', 'M') count every status together,
--   in one row per key (status_class -1), and the new column errors
--   counts the requests answered 4xx or 5xx.  A key's month is one row,
--   not one per status class.  A report by status reads the rows by model,
--   which keep the status class.
-- * Grain 'S' (partition usage_rollup_ks): a key's totals of each
--   six-hour block of a UTC day (from 00:00, 06:00, 12:00 and 18:00).  An
--   end of a local period is then a block, a few hours and quarters at
--   most, not up to twelve hours.
--
-- errors is kept in every row: the requests of status 4xx and 5xx that
-- the row counts (a cost adjustment counts none).

ALTER TABLE usage_rollup ADD COLUMN errors bigint NOT NULL DEFAULT 0;

COMMENT ON COLUMN usage_rollup.errors IS
    'requests answered 4xx or 5xx; the keys'' totals (status_class -1) count every status';

UPDATE usage_rollup SET errors = requests WHERE status_class >= 4;

ALTER TABLE usage_rollup DROP CONSTRAINT usage_rollup_grain_check,
    ADD CONSTRAINT usage_rollup_grain_check
        CHECK (grain IN ('q', 'h', 'd', 'm', 'H', 'S', 'D', 'M'));

CREATE TABLE usage_rollup_ks PARTITION OF usage_rollup FOR VALUES IN ('S')
    WITH (fillfactor = 80);

-- the keys' totals again, from their projects' rows by model (which
-- compaction keeps up to the same frontier), in time order: the rows of
-- one bucket together on disk (see mg_rollup_merge)
DELETE FROM usage_rollup WHERE grain IN ('H', 'D', 'M');

INSERT INTO usage_rollup
SELECT project_id, g, b, key_id, '', '', -1,
       sum(requests), sum(prompt_tokens), sum(completion_tokens), sum(total_tokens), sum(cost),
       sum(latency_n), sum(latency_ms), sum(ttft_n), sum(ttft_ms),
       sum(l0), sum(l1), sum(l2), sum(l3), sum(l4), sum(l5), sum(l6), sum(l7),
       sum(l8), sum(l9), sum(l10), sum(l11), sum(l12), sum(l13), sum(l14), sum(l15),
       sum(t0), sum(t1), sum(t2), sum(t3), sum(t4), sum(t5), sum(t6), sum(t7),
       sum(t8), sum(t9), sum(t10), sum(t11), sum(t12), sum(t13), sum(t14), sum(t15),
       sum(errors)
  FROM usage_rollup r
 CROSS JOIN LATERAL (VALUES (upper(r.grain::text)::"char", r.bucket),
                            ('S', date_bin('6 hours', r.bucket, timestamptz '2000-01-01 00:00:00+00'))
                    ) AS t(g, b)
 WHERE r.grain IN ('h', 'd', 'm') AND r.project_id <> 0 AND (t.g <> 'S' OR r.grain = 'h')
 GROUP BY g, b, project_id, key_id
 ORDER BY g, b, project_id, key_id;

-- A report over every project reads each run of buckets (a month, a
-- block, an hour) of every project with one range scan, not one index
-- descent per project; the rows of a bucket lie together on disk (see
-- mg_rollup_merge).  The quarters' index of 006 becomes this one's
-- partition.
DROP INDEX usage_rollup_quarter_idx;
CREATE INDEX usage_rollup_bucket_idx ON usage_rollup (bucket) WHERE project_id <> 0;

-- A settlement batch's increments (about 2 KB for 16 requests) stay in
-- their row as they are: compressing them cost every settlement, and
-- every fold then had to expand them again.
ALTER TABLE usage_rollup_pending SET (toast_tuple_target = 8160);
