DROP TRIGGER revocation_rule_notify ON revocation_rule;
DROP TRIGGER token_revocation_notify ON token_revocation;
DROP FUNCTION tokend_notify_revocations();
