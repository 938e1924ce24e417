-- 012: settlement queues the lookups of a batch in one row.
--
-- Until 011, settlement set usage_events.recon_next_at on each row to be
-- looked up (a cost from the catalog, a stream cut short), and the index
-- usage_events_recon_idx found them.  Changing an indexed column rules out
-- a HOT update: such a row was written again with an entry in each of the
-- partition's four indexes, about a third of the settle statement's work
-- in a batch where most rows have a catalog cost.
--
-- Now the settle statement leaves recon_next_at as it is and appends one
-- row here per batch: the rows to look up and when.  mg_recon_dequeue()
-- (sql/functions/reconcile.sql), called by the upkeep's claim of lookups
-- and by its compaction, moves them into recon_next_at, off the request's
-- path.  A row waits for a lookup while it is queued here or has a
-- recon_next_at; mg_recon_watermark() and mg_recon_waiting() count both.
--
-- No index: rows are only appended, and taken whole within seconds.
CREATE TABLE recon_queue (
    due_at       timestamptz NOT NULL,   -- the first lookup of every row
    request_ids  text[] NOT NULL,        -- the usage rows, with ...
    created_ats  timestamptz[] NOT NULL  -- ... their partitions
);
