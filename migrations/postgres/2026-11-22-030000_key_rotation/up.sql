-- When a retiring key stops verifying: its last signed token's longest possible lifetime has passed.
ALTER TABLE signing_key ADD COLUMN retire_after TIMESTAMP;
