-- Fails once two merchants share an issuer: one of them must delete its provider first.
ALTER TABLE identity_providers DROP CONSTRAINT identity_providers_issuer_audience_key;
ALTER TABLE identity_providers ADD CONSTRAINT identity_providers_issuer_key UNIQUE (issuer);
