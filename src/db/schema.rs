//! The portable schema, shared by SQLite and PostgreSQL (BigInt ids, Text for UUIDs and JSON,
//! Timestamp in UTC). Migrations for each backend live in `migrations/<backend>/`.

diesel::table! {
    identity (id) {
        id -> BigInt,
        identity_type -> Text,
        name -> Text,
        scope -> Text,
        description -> Nullable<Text>,
        metadata -> Text,
        login -> Nullable<Text>,
        password_hash -> Nullable<Text>,
        role -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
        revoked_by -> Nullable<BigInt>,
        revocation_reason -> Nullable<Text>,
        last_used_at -> Nullable<Timestamp>,
        disabled_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    issued_token (jti) {
        jti -> Text,
        identity_id -> BigInt,
        kid -> Text,
        fingerprint -> Text,
        issued_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        family_id -> Nullable<Text>,
        parent_jti -> Nullable<Text>,
    }
}

diesel::table! {
    token_revocation (id) {
        id -> BigInt,
        token_jti -> Text,
        identity_id -> BigInt,
        token_exp -> Timestamp,
        revoked_at -> Timestamp,
        revoked_by -> Nullable<BigInt>,
        reason -> Nullable<Text>,
        txid -> BigInt,
    }
}

diesel::table! {
    audit_event (id) {
        id -> BigInt,
        occurred_at -> Timestamp,
        actor_id -> Nullable<BigInt>,
        action -> Text,
        identity_id -> Nullable<BigInt>,
        token_id -> Nullable<Text>,
        reason -> Nullable<Text>,
        remote_addr -> Nullable<Text>,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    signing_key (kid) {
        kid -> Text,
        algorithm -> Text,
        public_key -> Text,
        sealed_private_key -> Text,
        status -> Text,
        created_at -> Timestamp,
        activated_at -> Nullable<Timestamp>,
        retired_at -> Nullable<Timestamp>,
        retire_after -> Nullable<Timestamp>,
    }
}

diesel::table! {
    worker_lease (name) {
        name -> Text,
        last_run_at -> Timestamp,
        holder -> Nullable<Text>,
    }
}

diesel::table! {
    expiry_notification (id) {
        id -> BigInt,
        token_jti -> Text,
        threshold_secs -> BigInt,
        identity_id -> BigInt,
        payload -> Text,
        status -> Text,
        attempts -> BigInt,
        next_attempt_at -> Timestamp,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    revocation_rule (id) {
        id -> BigInt,
        scope -> Nullable<Text>,
        name -> Nullable<Text>,
        name_prefix -> Nullable<Text>,
        identity_id -> Nullable<BigInt>,
        key_id -> Nullable<Text>,
        issued_before -> Timestamp,
        expires_at -> Timestamp,
        created_at -> Timestamp,
        created_by -> Nullable<BigInt>,
        reason -> Nullable<Text>,
        matched -> BigInt,
    }
}

diesel::table! {
    oauth_client_secret (secret_id) {
        secret_id -> Text,
        identity_id -> BigInt,
        secret_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        created_by -> Nullable<BigInt>,
    }
}

diesel::table! {
    oauth_client_key (identity_id) {
        identity_id -> BigInt,
        jwks -> Nullable<Text>,
        jwks_uri -> Nullable<Text>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    federation_issuer (id) {
        id -> BigInt,
        issuer -> Text,
        jwks_uri -> Nullable<Text>,
        jwks -> Nullable<Text>,
        audiences -> Text,
        max_token_age_seconds -> BigInt,
        max_uses_per_token -> BigInt,
        rules -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        created_by -> Nullable<BigInt>,
    }
}

diesel::table! {
    federated_subject (issuer, subject) {
        issuer -> Text,
        subject -> Text,
        identity_id -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    federation_replay (replay_key) {
        replay_key -> Text,
        uses -> BigInt,
        expires_at -> Timestamp,
    }
}

diesel::joinable!(issued_token -> identity (identity_id));

diesel::allow_tables_to_appear_in_same_query!(
    identity,
    issued_token,
    token_revocation,
    audit_event,
    signing_key,
    worker_lease,
    expiry_notification,
    revocation_rule,
    oauth_client_secret,
    oauth_client_key,
    federation_issuer,
    federated_subject,
    federation_replay,
);
