-- Signed site user ids are scoped by the channel that vouches for them (ID8, XB11): each
-- channel has its own secret, so user "42" of one site and user "42" of another are two
-- people. The identifier's value becomes `<channel id>:<user id>`; the unique index on
-- verified (kind, value) then keeps them apart.
--
-- Ids stored before did not record their channel: they take the channel of their
-- contact's first conversation, else the first channel (a contact that two sites' users
-- were merged into stays merged; an operator can tell them apart from its conversations).
UPDATE contact_identifiers
SET value = CAST(COALESCE(
        (SELECT ch.id FROM conversations c JOIN channels ch ON ch.name = c.channel
         WHERE c.contact_id = contact_identifiers.contact_id
         ORDER BY c.id LIMIT 1),
        (SELECT MIN(id) FROM channels),
        0) AS TEXT) || ':' || value
WHERE kind = 'external_id';
