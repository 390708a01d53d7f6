-- The portal-policy limits an agent's override exceeded (`max_pause_days`,
-- `cancellation_notice`, …): agents are held to the policy unless they override it, and
-- the override names what it went beyond. Empty for goodwill credits and discounts, and
-- for overrides recorded before agents were held to the policy.
ALTER TABLE agent_overrides ADD COLUMN limits text[] NOT NULL DEFAULT '{}';
