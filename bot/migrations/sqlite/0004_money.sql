-- 0004: money. A job's list price in millionths of a US dollar (price_micros; NULL when
-- unknown) is reserved with its seconds, kept when the video is posted and given back
-- when it fails: the ledger's money_micros moves with the seconds. A guild may cap its
-- spend per period (spend_micros) and each member's (member_spend_micros).
ALTER TABLE jobs ADD COLUMN price_micros INTEGER NULL;
UPDATE jobs SET price_micros = CAST(ROUND(seconds * price_per_second * 1000000) AS INTEGER)
    WHERE price_per_second IS NOT NULL;
ALTER TABLE guild_quota ADD COLUMN spend_micros INTEGER NULL
    CHECK (spend_micros IS NULL OR spend_micros >= 0);
ALTER TABLE guild_quota ADD COLUMN member_spend_micros INTEGER NULL
    CHECK (member_spend_micros IS NULL OR member_spend_micros >= 0);
ALTER TABLE ledger ADD COLUMN money_micros INTEGER NULL;
UPDATE ledger SET money_micros = (SELECT price_micros FROM jobs WHERE jobs.id = ledger.job_id)
    WHERE kind = 'reserve';
UPDATE ledger SET money_micros = -(SELECT price_micros FROM jobs WHERE jobs.id = ledger.job_id)
    WHERE kind = 'refund';
