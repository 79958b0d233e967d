//! The create-request parser: any bytes as the body of `POST /service-accounts`. Must never
//! panic, and whatever it accepts must satisfy the scope's rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokend::routes::service_accounts::CreateServiceAccountRequest;
use tokend::scope::{rules, ScopePolicy, MAX_METADATA_BYTES};

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<CreateServiceAccountRequest>(data) else {
        return;
    };
    let policy = ScopePolicy::default();
    if let Ok(new) = request.parse(&policy) {
        assert!(rules::is_name(new.name.as_str()));
        assert!(policy.bounds(new.scope).contains(new.ttl), "TTL outside the bounds");
        let size = serde_json::to_vec(new.metadata.as_map()).map(|v| v.len()).unwrap_or(usize::MAX);
        assert!(size <= MAX_METADATA_BYTES, "metadata over the limit");
    }
});
