ALTER TABLE signing_key DROP COLUMN retire_after;
