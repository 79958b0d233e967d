//! A small blocking client for tokend's HTTP API, used by the CLI client verbs and the agent.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

/// Why a call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error (`{"error": {"code", "message"}}`).
    #[error("{message} ({code}, HTTP {status})")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// No usable answer: connection refused, timeout, TLS, not JSON.
    #[error("cannot reach tokend at {url}: {reason}")]
    Transport { url: String, reason: String },
}

impl ClientError {
    /// The server refused the request itself (4xx), as opposed to failing (5xx) or not answering.
    pub fn is_refusal(&self) -> bool {
        matches!(self, ClientError::Refused { status, .. } if (400..500).contains(status))
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Refused { status, .. } => Some(*status),
            ClientError::Transport { .. } => None,
        }
    }
}

/// The API of one tokend, with one bearer token.
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    pub fn new(base_url: &str, token: Option<String>) -> ApiClient {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false)
            .build()
            .into();
        ApiClient {
            base: base_url.trim_end_matches('/').to_owned(),
            token,
            agent,
        }
    }

    /// The same server with another token.
    pub fn with_token(&self, token: String) -> ApiClient {
        ApiClient {
            token: Some(token),
            ..self.clone()
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The request with this client's bearer token, if it has one.
    fn authorized<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => req.header("Authorization", format!("Bearer {t}")),
            None => req,
        }
    }

    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        let req = self.authorized(self.agent.get(format!("{}{path}", self.base)));
        self.finish(req.call())
    }

    pub fn post<B: Serialize>(&self, path: &str, body: &B) -> Result<Value, ClientError> {
        let req = self.authorized(self.agent.post(format!("{}{path}", self.base)));
        self.finish(req.send_json(body))
    }

    pub fn patch<B: Serialize>(&self, path: &str, body: &B) -> Result<Value, ClientError> {
        let req = self.authorized(self.agent.patch(format!("{}{path}", self.base)));
        self.finish(req.send_json(body))
    }

    pub fn put<B: Serialize>(&self, path: &str, body: &B) -> Result<Value, ClientError> {
        let req = self.authorized(self.agent.put(format!("{}{path}", self.base)));
        self.finish(req.send_json(body))
    }

    pub fn delete<B: Serialize>(&self, path: &str, body: &B) -> Result<Value, ClientError> {
        let req = self.authorized(self.agent.delete(format!("{}{path}", self.base)));
        self.finish(req.force_send_body().send_json(body))
    }

    fn finish(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, ClientError> {
        let transport = |reason: String| ClientError::Transport {
            url: self.base.clone(),
            reason,
        };
        let mut res = result.map_err(|e| transport(e.to_string()))?;
        let status = res.status().as_u16();
        let text = res
            .body_mut()
            .read_to_string()
            .map_err(|e| transport(e.to_string()))?;
        let body: Value = serde_json::from_str(&text)
            .map_err(|_| transport(format!("HTTP {status} with a body that is not JSON")))?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        Err(ClientError::Refused {
            status,
            code: body["error"]["code"]
                .as_str()
                .unwrap_or("unknown")
                .to_owned(),
            message: body["error"]["message"]
                .as_str()
                .unwrap_or("no message")
                .to_owned(),
        })
    }
}

/// Writes a secret file atomically: a temporary file (mode 0600) in the same directory,
/// flushed to disk, then renamed over the target. Readers see the old or the new content,
/// never a partial one.
pub fn write_secret_file(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "token".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(content.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself must survive a crash too.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
