-- 010: the daily close's bookkeeping.
--
-- recon_closes gains what the upstream counted as requests, next to the
-- money.  recon_close_runs says, per UTC day, whether it is closed, and
-- which process is closing it (a lease, so that of any number of
-- responders on any number of hosts one asks the upstream, and another
-- takes over when it dies).
ALTER TABLE recon_closes ADD COLUMN upstream_requests bigint;

CREATE TABLE recon_close_runs (
    day          date PRIMARY KEY,
    lease_until  timestamptz,            -- a process closes it until then
    tries        integer NOT NULL DEFAULT 0,
    closed_at    timestamptz             -- NULL: not closed yet
);
