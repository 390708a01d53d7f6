-- An identity provider belongs to the merchant that registered it and to no one else: a
-- portal request names its merchant, and the token is matched only among that merchant's
-- providers. So the (issuer, audience) pair is unique per merchant: another merchant
-- registering the same pair neither blocks this one nor learns that it exists.
ALTER TABLE identity_providers DROP CONSTRAINT identity_providers_issuer_audience_key;
ALTER TABLE identity_providers
    ADD CONSTRAINT identity_providers_merchant_issuer_audience_key
    UNIQUE (merchant_id, issuer, audience);
