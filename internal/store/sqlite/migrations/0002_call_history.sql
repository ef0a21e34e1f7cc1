-- Call history: finished calls imported from CDR files, for replay and
-- anomaly training. Keyed by (tenant, call_id) so that a file imported
-- twice stores each call once. Times are Unix nanoseconds (UTC); answered
-- is NULL for a call never answered; billsec is nanoseconds.

CREATE TABLE call_history (
    tenant      TEXT    NOT NULL,
    call_id     TEXT    NOT NULL,
    account     TEXT    NOT NULL,
    from_number TEXT    NOT NULL,
    to_number   TEXT    NOT NULL,
    direction   TEXT    NOT NULL,
    source_ip   TEXT    NOT NULL,
    started     INTEGER NOT NULL,
    answered    INTEGER,
    ended       INTEGER NOT NULL,
    billsec     INTEGER NOT NULL,
    disposition TEXT    NOT NULL,
    PRIMARY KEY (tenant, call_id)
) WITHOUT ROWID;

-- History reads a tenant's calls in start order, a page at a time.
CREATE INDEX call_history_tenant_started ON call_history (tenant, started, call_id);
