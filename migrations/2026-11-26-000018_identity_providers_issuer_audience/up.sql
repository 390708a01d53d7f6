-- An issuer alone does not name a merchant's identity provider: shared issuers (Google's,
-- Apple's, Microsoft's) sign tokens for every application, told apart by the audience.
-- A token is routed by its issuer and audience together, so only that pair is unique.
ALTER TABLE identity_providers DROP CONSTRAINT identity_providers_issuer_key;
ALTER TABLE identity_providers
    ADD CONSTRAINT identity_providers_issuer_audience_key UNIQUE (issuer, audience);
