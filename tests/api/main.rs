//! Integration tests: the real server over HTTP, on real SQLite and (with
//! `TOKEND_TEST_PG_URL`) real PostgreSQL. One binary; one module per area.

mod fault_proxy;
mod helpers;
mod pg_cluster;
mod tls_ca;

mod jwt_attacks;
mod keys;
mod logins;
mod metrics;

mod agent;
mod batches;
mod cli;
mod cli_conventions;
mod containment;
mod deploy;
mod docs;
mod errors;
mod expiry_webhook;
mod failover;
mod faults_clock;
mod faults_crash;
mod faults_network;
mod faults_storage;
mod federation;
mod oauth;
mod openapi;
mod private_key_jwt;
mod proxies;
mod push;
mod replicas;
mod revocation;
mod runbook;
mod scripts;
mod sessions;
mod stock_clients;
mod strict_input;
mod tls;
mod token_attacks;
mod ttl;
mod ui;
mod users;
mod verify;
mod walkthrough;
mod workflow;
