//! Progress on stderr. On a terminal: one live line with a spinner, the current step, its
//! elapsed time and, for stack operations, a bar of resources done; messages print above it.
//! Anywhere else (CI logs, pipes, `TERM=dumb`): plain lines, nothing redrawn. Data never goes
//! here; it goes to stdout. No colour is used, so `NO_COLOR` needs nothing.

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const BAR_WIDTH: usize = 20;

struct Live {
    message: String,
    started: Instant,
    done: usize,
    total: usize,
}

static LIVE: Mutex<Option<Live>> = Mutex::new(None);
static TICKER: OnceLock<()> = OnceLock::new();

fn interactive() -> bool {
    static TTY: OnceLock<bool> = OnceLock::new();
    *TTY.get_or_init(|| {
        std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |term| term != "dumb")
    })
}

fn live() -> MutexGuard<'static, Option<Live>> {
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The live line's text: `⠋ stack: change set [#####·····] 5/10 3s`.
fn render(live: &Live) -> String {
    let elapsed = live.started.elapsed();
    let frame = FRAMES[(elapsed.as_millis() / 100) as usize % FRAMES.len()];
    let bar = if let Some(filled) = (live.done.min(live.total) * BAR_WIDTH).checked_div(live.total)
    {
        format!(
            " [{}{}] {}/{}",
            "#".repeat(filled),
            "·".repeat(BAR_WIDTH - filled),
            live.done.min(live.total),
            live.total
        )
    } else {
        String::new()
    };
    format!("{frame} {}{bar} {}s", live.message, elapsed.as_secs())
}

fn redraw(live: &Option<Live>) {
    if let Some(live) = live {
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[2K{}", render(live));
        let _ = stderr.flush();
    }
}

/// Prints a message (above the live line, on a terminal).
pub fn line(text: impl AsRef<str>) {
    let guard = live();
    let mut stderr = std::io::stderr().lock();
    if interactive() && guard.is_some() {
        let _ = write!(stderr, "\r\x1b[2K");
    }
    let _ = writeln!(stderr, "{}", text.as_ref());
    drop(stderr);
    if interactive() {
        redraw(&guard);
    }
}

/// Starts a step: the live line on a terminal, a `==> message` line elsewhere.
pub fn start(message: impl Into<String>) {
    let message = message.into();
    if !interactive() {
        line(format!("==> {message}"));
        return;
    }
    TICKER.get_or_init(|| {
        std::thread::spawn(|| {
            loop {
                std::thread::sleep(Duration::from_millis(100));
                redraw(&live());
            }
        });
    });
    let mut guard = live();
    *guard = Some(Live {
        message,
        started: Instant::now(),
        done: 0,
        total: 0,
    });
    redraw(&guard);
}

/// Ends the live line (if any), leaving `summary` in its place on a terminal.
pub fn finish(summary: impl AsRef<str>) {
    let mut guard = live();
    if guard.take().is_some() && interactive() {
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "\r\x1b[2K{}", summary.as_ref());
    }
}

/// Removes the live line without a summary (before an error is printed).
pub fn clear() {
    let mut guard = live();
    if guard.take().is_some() && interactive() {
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[2K");
        let _ = stderr.flush();
    }
}

/// How many units the current step has (stack operations: resources to change).
pub fn set_total(total: usize) {
    if let Some(live) = live().as_mut() {
        live.total = total;
        live.done = 0;
    }
}

/// One more unit of the current step done.
pub fn advance() {
    if let Some(live) = live().as_mut() {
        live.done += 1;
    }
}

/// `note!("…", args)`: a progress message, printed above the live line (see [`line`]).
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::progress::line(format!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_line_shows_the_step_and_a_bar_of_resources() {
        let mut live = Live {
            message: "stack: change set".to_string(),
            started: Instant::now(),
            done: 0,
            total: 4,
        };
        let empty = render(&live);
        assert!(empty.contains("stack: change set"), "{empty}");
        assert!(
            empty.contains(&format!("[{}] 0/4", "·".repeat(BAR_WIDTH))),
            "{empty}"
        );
        live.done = 2;
        let half = render(&live);
        assert!(
            half.contains(&format!("[{}{}] 2/4", "#".repeat(10), "·".repeat(10))),
            "{half}"
        );
        live.done = 9;
        assert!(render(&live).contains(&format!("[{}] 4/4", "#".repeat(BAR_WIDTH))));
        live.total = 0;
        assert!(!render(&live).contains('['), "no bar without a total");
    }
}
