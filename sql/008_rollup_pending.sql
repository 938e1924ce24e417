-- 008: settlement appends its rollup increments, the upkeep folds them.
--
-- Until 007, settlement upserted a quarter-hour rollup row per group of
-- its batch (about ten rows of 48 columns, each locked and rewritten):
-- 0.4 ms of the settle statement's 1.0 ms.  Now each transaction that
-- records usage (a settlement batch, a request that was never admitted,
-- the reaper, a cost adjustment) appends one row: the deltas it counts, as
-- they are.  mg_rollup_fold() (sql/functions/rollup.sql), run by the
-- responders' upkeep every minute before the compaction, deletes the
-- pending rows it sees and adds their sums to the rollup rows, in one
-- transaction, under the compaction lock.  A report reads the rollup rows
-- and the pending rows in one snapshot, so each usage row is counted
-- exactly once whether it has been folded or not.
--
-- No index: rows are only appended, read whole and deleted whole, and a
-- minute of them is a few pages.
CREATE TABLE usage_rollup_pending (
    deltas  mg_usage_delta[] NOT NULL
);
