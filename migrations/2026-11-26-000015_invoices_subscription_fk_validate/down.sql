-- Validation cannot be undone short of dropping the key, which 000014 down does.
SELECT 1;
