-- 0004: money (as sqlite/0004). A job's list price in millionths of a US dollar
-- (price_micros; NULL when unknown) is reserved with its seconds, kept when the video is
-- posted and given back when it fails; the ledger's money_micros moves with the seconds.
-- A guild may cap its spend per period (spend_micros) and each member's.
ALTER TABLE jobs ADD COLUMN price_micros BIGINT NULL;
UPDATE jobs SET price_micros = ROUND(seconds * price_per_second * 1000000)::BIGINT
    WHERE price_per_second IS NOT NULL;
ALTER TABLE guild_quota ADD COLUMN spend_micros BIGINT NULL
    CHECK (spend_micros IS NULL OR spend_micros >= 0);
ALTER TABLE guild_quota ADD COLUMN member_spend_micros BIGINT NULL
    CHECK (member_spend_micros IS NULL OR member_spend_micros >= 0);
ALTER TABLE ledger ADD COLUMN money_micros BIGINT NULL;
UPDATE ledger SET money_micros = j.price_micros FROM jobs j
    WHERE j.id = ledger.job_id AND ledger.kind = 'reserve';
UPDATE ledger SET money_micros = -j.price_micros FROM jobs j
    WHERE j.id = ledger.job_id AND ledger.kind = 'refund';
