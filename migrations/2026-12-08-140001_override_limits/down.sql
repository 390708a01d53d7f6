ALTER TABLE agent_overrides DROP COLUMN limits;
