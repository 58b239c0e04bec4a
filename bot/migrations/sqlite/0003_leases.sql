-- 0003: scale-out. A job belongs to the process holding its lease (owner, lease_until);
-- slot = 1 while the job holds one of its provider model's concurrent-task slots.
-- member_locks: the per-member lock held while a request is checked and reserved.
-- served_images: fitted images providers fetch by URL, served by any process.
ALTER TABLE jobs ADD COLUMN owner TEXT NULL;
ALTER TABLE jobs ADD COLUMN lease_until REAL NULL;
ALTER TABLE jobs ADD COLUMN slot INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_by_lease ON jobs (state, lease_until);
CREATE INDEX jobs_by_model_slot ON jobs (provider, model, slot, state);

CREATE TABLE member_locks (
    guild_id  INTEGER NOT NULL,
    user_id   INTEGER NOT NULL,
    owner     TEXT    NOT NULL,
    until     REAL    NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

CREATE TABLE served_images (
    name       TEXT    PRIMARY KEY,
    job_id     TEXT    NULL,
    mime       TEXT    NOT NULL,
    data       BLOB    NOT NULL,
    created_at REAL    NOT NULL
);
CREATE INDEX served_images_by_age ON served_images (created_at);
