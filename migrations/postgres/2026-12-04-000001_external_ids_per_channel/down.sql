-- Back to bare site user ids. Two channels' users with the same id cannot both be verified
-- bare: the older keeps it, the newer one is dropped (its contact stays, without it).
DELETE FROM contact_identifiers
WHERE kind = 'external_id' AND verified AND id NOT IN (
    SELECT MIN(id) FROM contact_identifiers
    WHERE kind = 'external_id' AND verified
    GROUP BY substr(value, strpos(value, ':') + 1)
);
UPDATE contact_identifiers
SET value = substr(value, strpos(value, ':') + 1)
WHERE kind = 'external_id' AND strpos(value, ':') > 0;
