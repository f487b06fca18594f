//! A progress bar for long jobs, on stderr and only when a person is watching it.

use std::io::IsTerminal;

/// Jobs below this many tokens finish in well under a second; a bar would only flicker.
const MIN_TOKENS_FOR_BAR: u64 = 50_000_000;

pub struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    pub fn for_job(requests: u64, tokens: u64) -> Progress {
        if tokens < MIN_TOKENS_FOR_BAR || !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new(requests);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} {pos}/{len} requests [{elapsed_precise}, eta {eta}] {wide_bar}",
        ) {
            bar.set_style(style);
        }
        Progress(Some(bar))
    }

    #[inline]
    pub fn tick(&self) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
