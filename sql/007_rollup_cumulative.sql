-- 007: the rollups' latency and time-to-first-token histograms become
-- cumulative, as Prometheus keeps its buckets: l<i> (t<i>) counts the
-- requests of buckets 0 to i of mg_hist_bounds() (sql/functions/rollup.sql),
-- so l15 (t15) counts every request with a latency (a time to first token).
-- Sums of cumulative histograms are cumulative, and a quantile is then one
-- binary search over a group's sums instead of a walk that adds them up:
-- a report grouped by key over all projects computes thousands of them.
--
-- The rows of 006 are turned into running sums; mg_rollup_add counts new
-- rows so from this same migration on (its function file is applied after
-- this one, in the same transaction).

UPDATE usage_rollup
   SET l1 = l0 + l1,
       t1 = t0 + t1,
       l2 = l0 + l1 + l2,
       t2 = t0 + t1 + t2,
       l3 = l0 + l1 + l2 + l3,
       t3 = t0 + t1 + t2 + t3,
       l4 = l0 + l1 + l2 + l3 + l4,
       t4 = t0 + t1 + t2 + t3 + t4,
       l5 = l0 + l1 + l2 + l3 + l4 + l5,
       t5 = t0 + t1 + t2 + t3 + t4 + t5,
       l6 = l0 + l1 + l2 + l3 + l4 + l5 + l6,
       t6 = t0 + t1 + t2 + t3 + t4 + t5 + t6,
       l7 = l0 + l1 + l2 + l3 + l4 + l5 + l6 + l7,
       t7 = t0 + t1 + t2 + t3 + t4 + t5 + t6 + t7,
       l8 = l0 + l1 + l2 + l3 + l4 + l5 + l6 + l7 + l8,
       t8 = t0 + t1 + t2 + t3 + t4 + t5 + t6 + t7 + t8,
       l9 = l0 + l1 + l2 + l3 + l4 + l5 + l6 + l7 + l8 + l9,
       t9 = t0 + t1 + t2 + t3 + t4 + t5 + t6 + t7 + t8 + t9,
       l10 = l0 + l1 + l2 + l3 + l4 + l5 + l6 + l7 + l8 + l9 + l10,
       t10 = t0 + t1 + t2 + t3 + t4 + t5 + t6 + t7 + t8 + t9 + t10,
       l11 = l0 + l1 + l2 + l3 + l4 + l5 + l6 + l7 + l8 + l9 + l10 + l11,
       t11 = t0 + t1 + t2 + t3 + t4 + t5 + t6 + t7 + t8 + t9 + t10 + t11,
       l12 = l0 + l1 + l2 + l3 + l4 + l5 + l6 + l7 + l8 + l9 + l10 + l11 + l12,
       t12 = t0 + t1 + t2 + t3 + t4 + t5 + t6 + t7 + t8 + t9 + t10 + t11 + t12,
       l13 = l0 + l1 + l2 + l3 + l4 + l5 + l6 + l7 + l8 + l9 + l10 + l11 + l12 + l13,
       t13 = t0 + t1 + t2 + t3 + t4 + t5 + t6 + t7 + t8 + t9 + t10 + t11 + t12 + t13,
       l14 = l0 + l1 + l2 + l3 + l4 + l5 + l6 + l7 + l8 + l9 + l10 + l11 + l12 + l13 + l14,
       t14 = t0 + t1 + t2 + t3 + t4 + t5 + t6 + t7 + t8 + t9 + t10 + t11 + t12 + t13 + t14,
       l15 = l0 + l1 + l2 + l3 + l4 + l5 + l6 + l7 + l8 + l9 + l10 + l11 + l12 + l13 + l14 + l15,
       t15 = t0 + t1 + t2 + t3 + t4 + t5 + t6 + t7 + t8 + t9 + t10 + t11 + t12 + t13 + t14 + t15;

COMMENT ON COLUMN usage_rollup.l15 IS
    'requests with a latency; l<i>: those of histogram buckets 0 to i (cumulative)';
COMMENT ON COLUMN usage_rollup.t15 IS
    'requests with a time to first token; t<i>: those of buckets 0 to i (cumulative)';
