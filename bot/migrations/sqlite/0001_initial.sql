-- 0001: quotas, jobs, the quota ledger and a key/value table.
-- Applied by bot.store inside one transaction; the runner sets PRAGMA user_version.

CREATE TABLE guild_quota (
    guild_id       INTEGER PRIMARY KEY,
    seconds        INTEGER NOT NULL CHECK (seconds >= 0),
    period         TEXT    NOT NULL CHECK (period IN ('day', 'week', 'month')),
    member_seconds INTEGER NULL CHECK (member_seconds IS NULL OR member_seconds >= 0),
    concurrent     INTEGER NULL CHECK (concurrent IS NULL OR concurrent >= 0),
    reset_at       REAL    NULL,
    updated_at     REAL,
    updated_by     INTEGER
);

CREATE TABLE jobs (
    id             TEXT    PRIMARY KEY,
    token_hash     TEXT    NOT NULL UNIQUE,
    guild_id       INTEGER NULL,
    channel_id     INTEGER NULL,
    user_id        INTEGER NULL,
    provider       TEXT,
    model          TEXT,
    mode           TEXT,
    prompt         TEXT,
    duration       INTEGER,
    orientation    TEXT,
    image_path     TEXT    NULL,
    state          TEXT    NOT NULL CHECK (state IN ('requested', 'reserved', 'submitting',
                       'submitted', 'succeeded', 'delivered', 'failed', 'cancelled')),
    charge         TEXT    NOT NULL CHECK (charge IN ('reserved', 'committed', 'refunded', 'none')),
    seconds        INTEGER NOT NULL CHECK (seconds >= 0),
    price_per_second REAL  NULL,
    task_id        TEXT    NULL,
    task_hint      TEXT    NULL,
    video_url      TEXT    NULL,
    video_path     TEXT    NULL,
    error_code     TEXT    NULL,
    error_message  TEXT    NULL,
    context        TEXT    NOT NULL DEFAULT '{}',
    message_id     INTEGER NULL,
    created_at     REAL,
    updated_at     REAL,
    submitted_at   REAL    NULL,
    finished_at    REAL    NULL
);

CREATE INDEX jobs_guild_created ON jobs (guild_id, created_at);
CREATE INDEX jobs_state ON jobs (state);
CREATE INDEX jobs_task_id ON jobs (task_id);

CREATE TABLE ledger (
    id         INTEGER PRIMARY KEY,
    job_id     TEXT    NULL REFERENCES jobs (id),
    guild_id   INTEGER NULL,
    user_id    INTEGER NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('reserve', 'commit', 'refund', 'reset')),
    seconds    INTEGER NOT NULL,
    cost       REAL    NULL,
    created_at REAL    NOT NULL,
    note       TEXT    NULL
);

CREATE INDEX ledger_job ON ledger (job_id);
CREATE INDEX ledger_guild_kind ON ledger (guild_id, kind, created_at);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT
);
