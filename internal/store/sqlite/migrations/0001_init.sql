-- Times are Unix nanoseconds (UTC); NULL stands for the zero time.

CREATE TABLE calls (
    tenant          TEXT    NOT NULL,
    call_id         TEXT    NOT NULL,
    account         TEXT    NOT NULL,
    source_ip       TEXT    NOT NULL,
    e164            TEXT    NOT NULL,
    country         TEXT    NOT NULL,
    international   INTEGER NOT NULL,
    rate_per_minute REAL    NOT NULL,
    started         INTEGER,
    answered        INTEGER,
    PRIMARY KEY (tenant, call_id)
) WITHOUT ROWID;

CREATE TABLE quota_usage (
    tenant  TEXT NOT NULL,
    account TEXT NOT NULL,
    day     TEXT NOT NULL, -- YYYY-MM-DD
    seconds REAL NOT NULL,
    money   REAL NOT NULL,
    PRIMARY KEY (tenant, account, day)
) WITHOUT ROWID;

-- Prune removes old days across tenants.
CREATE INDEX quota_usage_day ON quota_usage (day);

CREATE TABLE ip_bans (
    tenant  TEXT NOT NULL,
    subject TEXT NOT NULL,
    until   INTEGER,
    rule    TEXT NOT NULL,
    reason  TEXT NOT NULL,
    created INTEGER,
    PRIMARY KEY (tenant, subject)
) WITHOUT ROWID;

CREATE TABLE suspensions (
    tenant  TEXT NOT NULL,
    account TEXT NOT NULL,
    rule    TEXT NOT NULL,
    reason  TEXT NOT NULL,
    created INTEGER,
    PRIMARY KEY (tenant, account)
) WITHOUT ROWID;

-- The decisions log: written for every call, so it carries only the
-- indexes its common listings need. Each extra index is another B-tree
-- insert per decision; the verdict and rule filters scan a tenant's rows
-- newest first instead, and Prune walks rows in id (recording) order.
-- AUTOINCREMENT so that ids are never reused after Prune: cursors rely on
-- ids growing.
CREATE TABLE decisions (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant  TEXT    NOT NULL,
    time    INTEGER NOT NULL, -- the zero time is stored as the smallest integer
    account TEXT    NOT NULL,
    call_id TEXT    NOT NULL,
    verdict TEXT    NOT NULL,
    body    TEXT    NOT NULL  -- the decision as JSON, without its id
);

-- Every listing is "tenant, some filter, newest id first": ending each index
-- with id lets a page be read straight off the index.
CREATE INDEX decisions_tenant_id      ON decisions (tenant, id);
CREATE INDEX decisions_tenant_account ON decisions (tenant, account, id);
CREATE INDEX decisions_tenant_call_id ON decisions (tenant, call_id, id);
