//! Progress of long one-shot commands (`tokend migrate`, `tokend cleanup`) on stderr. Drawn
//! only when stderr is a terminal: piped or under cron, nothing but the command's own output.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar (known length) or a spinner (rows deleted so far), cleared when dropped.
pub struct Progress(ProgressBar);

impl Progress {
    /// A bar of `len` steps, named `prefix`.
    pub fn bar(prefix: &'static str, len: u64) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
            .with_prefix(prefix);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        Progress(bar)
    }

    /// A spinner with a running count, named `prefix`.
    pub fn spinner(prefix: &'static str) -> Progress {
        let bar =
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_prefix(prefix);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix}: {msg} ({elapsed})")
                .expect("a valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress(bar)
    }

    pub fn set(&self, position: u64, message: String) {
        self.0.set_position(position);
        self.0.set_message(message);
    }

    pub fn set_length(&self, len: u64) {
        self.0.set_length(len);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
