-- Nothing to do on SQLite: revocation push (LISTEN/NOTIFY) is PostgreSQL's. This migration
-- keeps the two backends' migration lists in step.
SELECT 1;
