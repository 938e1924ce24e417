-- 015: admission leases (quota.admission = "lease").
--
-- A responder process in lease mode borrows a slice of a project's budget
-- and admits requests from it without a round trip each: a number of
-- requests and of tokens taken out of the project's buckets, and an amount
-- of spend added to project_quota.reserved, so that every other process
-- and host sees it as held.  The spend it holds is the lease's row here;
-- the requests and tokens left of a slice are given back to the buckets
-- when the lease is released.
--
-- holder names the process (host, pid and a start time); a process holds
-- at most one live lease per project.  spend is the part of the project's
-- reserved amount that the lease holds: what it borrowed, less what its
-- settled requests were charged.  seq counts the lease's changes, so that
-- a process can tell which of two answers is the newer.  A process renews
-- its leases while it lives (renewed_at); the reaper charges the whole
-- spend of a lease not renewed in time to the project, as one usage row
-- (request_id "lease_" and the id, error_type 'reaped'), and marks it
-- reaped: a settlement that still comes for it is recorded and moved out
-- of that charge rather than charged twice.
CREATE TABLE leases (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id  bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    holder      text NOT NULL,
    spend       numeric NOT NULL DEFAULT 0 CHECK (spend >= 0),
    seq         bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL,
    renewed_at  timestamptz NOT NULL,
    reaped_at   timestamptz
);
CREATE UNIQUE INDEX leases_holder_idx ON leases (project_id, holder) WHERE reaped_at IS NULL;
CREATE INDEX leases_renewed_idx ON leases (renewed_at) WHERE reaped_at IS NULL;

-- What admission answers about a lease element (see mg_admit_batch): the
-- lease, its spend and seq after the grant, the requests and tokens
-- granted (NULL: the project has no such limit), whether the grant was
-- tight (the request's own share only: the project is near a limit), and
-- the model's context length, which caps the output a request reserves.
ALTER TYPE mg_admission ADD ATTRIBUTE lease_id bigint, ADD ATTRIBUTE lease_spend numeric,
    ADD ATTRIBUTE lease_seq bigint, ADD ATTRIBUTE lease_requests integer,
    ADD ATTRIBUTE lease_tokens integer, ADD ATTRIBUTE lease_tight boolean,
    ADD ATTRIBUTE context_length integer;
