-- Login throttling is kept in memory now (src/accounts/throttle.rs): no row per failed login.
DROP TABLE login_failure;
