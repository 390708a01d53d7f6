CREATE INDEX IF NOT EXISTS customers_tags ON customers USING gin (tags);
