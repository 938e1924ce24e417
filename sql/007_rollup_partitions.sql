-- 007: the rollups partitioned by grain, each key's totals kept apart,
-- and the histograms cumulative.
--
-- One partition per grain (usage_rollup_q, _h, _d, _m).  Settlement
-- changes quarter rows all the time; compaction writes the hours, days and
-- months.  Kept apart, a month's rows of every project are a few thousand
-- pages of their own, not rows scattered over the whole table among
-- quarters and hours: a report over all projects reads them from memory.
--
-- Grains 'H', 'D' and 'M' (partitions usage_rollup_kh, _kd, _km): a
-- project's hours, UTC days and months per key and status class only
-- (model and endpoint ''), kept by compaction with the others.  A report
-- grouped by project, key or status (no model) reads them: a key's month
-- is then three rows, not one per model and endpoint, and a report of
-- every key of every project reads a few thousand rows, not fifty.
--
-- The latency and time-to-first-token histograms become cumulative, as
-- Prometheus keeps its buckets: l<i> (t<i>) counts the requests of buckets
-- 0 to i of mg_hist_bounds() (sql/functions/report.sql), so l15 (t15)
-- counts every request with a latency (a time to first token).  Sums of
-- cumulative histograms are cumulative, and a quantile is one binary
-- search over a group's sums instead of a walk that adds them up: a
-- report grouped by key over all projects computes thousands of them.
--
-- The rows of 006 are copied as running sums; mg_rollup_add counts new
-- rows so from this same migration on (its function file is applied after
-- this one, in the same transaction).

-- it names the old table's row type; rollup.sql makes it again
DROP FUNCTION IF EXISTS mg_rollup_merge(usage_rollup[]);

ALTER TABLE usage_rollup RENAME TO usage_rollup_v6;

-- The table of 006, its columns as they were (see there), partitioned;
-- grain takes the keys' totals too.
CREATE TABLE usage_rollup (LIKE usage_rollup_v6 INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY LIST (grain);
ALTER TABLE usage_rollup DROP CONSTRAINT usage_rollup_grain_check,
    ADD CONSTRAINT usage_rollup_grain_check
        CHECK (grain IN ('q', 'h', 'd', 'm', 'H', 'D', 'M'));

-- Room on each page for a changed row to stay there (a HOT update): a
-- quarter's rows change at every settlement, the coarser ones at every
-- compaction.
DO $$
DECLARE
    p record;
BEGIN
    FOR p IN SELECT * FROM (VALUES ('q', 'q'), ('h', 'h'), ('d', 'd'), ('m', 'm'),
                                   ('kh', 'H'), ('kd', 'D'), ('km', 'M')) AS v(suffix, grain)
    LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF usage_rollup FOR VALUES IN (%L)'
                       ' WITH (fillfactor = 80)', 'usage_rollup_' || p.suffix, p.grain);
    END LOOP;
END
$$;

-- the running sums of each row's buckets
INSERT INTO usage_rollup
SELECT r.project_id, r.grain, r.bucket, r.key_id, r.model, r.endpoint, r.status_class,
       r.requests, r.prompt_tokens, r.completion_tokens, r.total_tokens, r.cost, r.latency_n,
       r.latency_ms, r.ttft_n, r.ttft_ms,
       c.l[1], c.l[2], c.l[3], c.l[4], c.l[5], c.l[6], c.l[7], c.l[8],
       c.l[9], c.l[10], c.l[11], c.l[12], c.l[13], c.l[14], c.l[15], c.l[16],
       c.t[1], c.t[2], c.t[3], c.t[4], c.t[5], c.t[6], c.t[7], c.t[8],
       c.t[9], c.t[10], c.t[11], c.t[12], c.t[13], c.t[14], c.t[15], c.t[16]
  FROM usage_rollup_v6 r
 CROSS JOIN LATERAL (
       SELECT ARRAY(SELECT sum(v) OVER (ORDER BY i)
                      FROM unnest(ARRAY[r.l0, r.l1, r.l2, r.l3, r.l4, r.l5, r.l6, r.l7, r.l8,
                                        r.l9, r.l10, r.l11, r.l12, r.l13, r.l14, r.l15])
                           WITH ORDINALITY AS x(v, i)) AS l,
              ARRAY(SELECT sum(v) OVER (ORDER BY i)
                      FROM unnest(ARRAY[r.t0, r.t1, r.t2, r.t3, r.t4, r.t5, r.t6, r.t7, r.t8,
                                        r.t9, r.t10, r.t11, r.t12, r.t13, r.t14, r.t15])
                           WITH ORDINALITY AS x(v, i)) AS t) c
 ORDER BY 1, 2, 3, 4, 5, 6, 7;

-- each key's totals, from its project's coarse rows (cumulative already)
INSERT INTO usage_rollup
SELECT project_id, upper(grain::text)::"char", bucket, key_id, '', '', status_class,
       sum(requests), sum(prompt_tokens), sum(completion_tokens), sum(total_tokens), sum(cost),
       sum(latency_n), sum(latency_ms), sum(ttft_n), sum(ttft_ms),
       sum(l0), sum(l1), sum(l2), sum(l3),
       sum(l4), sum(l5), sum(l6), sum(l7),
       sum(l8), sum(l9), sum(l10), sum(l11),
       sum(l12), sum(l13), sum(l14), sum(l15),
       sum(t0), sum(t1), sum(t2), sum(t3),
       sum(t4), sum(t5), sum(t6), sum(t7),
       sum(t8), sum(t9), sum(t10), sum(t11),
       sum(t12), sum(t13), sum(t14), sum(t15)
  FROM usage_rollup
 WHERE grain IN ('h', 'd', 'm') AND project_id <> 0
 GROUP BY project_id, grain, bucket, key_id, status_class
 ORDER BY project_id, grain, bucket, key_id, status_class;

DROP TABLE usage_rollup_v6;

ALTER TABLE usage_rollup
    ADD PRIMARY KEY (project_id, grain, bucket, key_id, model, endpoint, status_class);

-- The quarters of all projects, for compaction and the reports' newest
-- quarters.
CREATE INDEX usage_rollup_quarter_idx ON usage_rollup_q (bucket) WHERE project_id <> 0;

COMMENT ON COLUMN usage_rollup.l15 IS
    'requests with a latency; l<i>: those of histogram buckets 0 to i (cumulative)';
COMMENT ON COLUMN usage_rollup.t15 IS
    'requests with a time to first token; t<i>: those of buckets 0 to i (cumulative)';
