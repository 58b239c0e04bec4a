-- 0002: moderation. Per-guild settings, the prompt blocklist, blocked members, and what
-- /forget-me needs (when a member's prompt was deleted; the rows themselves stay).

CREATE TABLE guild_settings (
    guild_id         INTEGER PRIMARY KEY,
    channels         TEXT    NOT NULL DEFAULT '[]',  -- JSON ids; empty: every channel
    roles            TEXT    NOT NULL DEFAULT '[]',  -- JSON ids; empty: everyone
    models           TEXT    NOT NULL DEFAULT '[]',  -- JSON catalog ids; empty: every model
    max_duration     INTEGER NULL CHECK (max_duration IS NULL OR max_duration >= 1),
    cooldown_s       INTEGER NOT NULL DEFAULT 0 CHECK (cooldown_s >= 0),
    max_queued       INTEGER NULL CHECK (max_queued IS NULL OR max_queued >= 1),
    audit_channel_id INTEGER NULL,
    updated_at       REAL,
    updated_by       INTEGER
);

CREATE TABLE blocklist (
    id        INTEGER PRIMARY KEY,
    guild_id  INTEGER NOT NULL,
    kind      TEXT    NOT NULL CHECK (kind IN ('word', 'pattern')),
    value     TEXT    NOT NULL,  -- as the moderator typed it
    key       TEXT    NOT NULL,  -- word: normalised tokens; pattern: the expression
    added_by  INTEGER NULL,
    added_at  REAL    NOT NULL,
    UNIQUE (guild_id, kind, key)
);

CREATE TABLE blocked_members (
    guild_id   INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    reason     TEXT    NULL,
    blocked_by INTEGER NULL,
    blocked_at REAL    NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

ALTER TABLE jobs ADD COLUMN prompt_deleted_at REAL NULL;

-- The cooldown and per-member limits read a member's latest and unfinished jobs.
CREATE INDEX jobs_guild_user_created ON jobs (guild_id, user_id, created_at);
CREATE INDEX jobs_user ON jobs (user_id);
