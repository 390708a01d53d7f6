ALTER TABLE identity_providers DROP CONSTRAINT identity_providers_merchant_issuer_audience_key;
ALTER TABLE identity_providers
    ADD CONSTRAINT identity_providers_issuer_audience_key UNIQUE (issuer, audience);
