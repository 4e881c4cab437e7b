//! Timestamps in the form ARM returns them, on the **emulator clock**.
//!
//! Everything time-based in the emulated services (recovery points, their
//! retention, health thresholds, jobs) reads `now()`, which runs `scale`
//! times faster than the wall clock and can be moved forward, so a 24-hour
//! retention window or a 4-hour app-consistency cycle can be exercised in
//! seconds. Token lifetimes stay on the wall clock (`real_now`): clients
//! check them against their own clocks.

use std::sync::RwLock;

use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

struct Clock {
    /// Emulated time at `anchor`.
    base: OffsetDateTime,
    /// Wall-clock time the emulated clock was last re-based.
    anchor: OffsetDateTime,
    scale: f64,
}

static CLOCK: RwLock<Option<Clock>> = RwLock::new(None);

/// The wall clock.
pub fn real_now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// The emulator clock's current time.
pub fn now() -> OffsetDateTime {
    let c = CLOCK.read().unwrap_or_else(|p| p.into_inner());
    match c.as_ref() {
        None => real_now(),
        Some(c) => {
            let real = real_now() - c.anchor;
            // Checked: a fast clock running long stops at LATEST, never panics.
            Duration::checked_seconds_f64(real.as_seconds_f64() * c.scale)
                .and_then(|d| c.base.checked_add(d))
                .map_or(LATEST, |t| t.min(LATEST))
        }
    }
}

/// Sets how fast emulated time runs (1 = wall clock) and where it stands.
pub fn configure(scale: f64, start: Option<OffsetDateTime>) {
    let scale = if scale.is_finite() && scale > 0.0 {
        scale
    } else {
        1.0
    };
    let base = start.unwrap_or_else(now);
    *CLOCK.write().unwrap_or_else(|p| p.into_inner()) = Some(Clock {
        base,
        anchor: real_now(),
        scale,
    });
}

/// How many emulated seconds pass per wall-clock second.
pub fn scale() -> f64 {
    CLOCK
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(|c| c.scale)
        .unwrap_or(1.0)
}

/// The furthest the emulator clock may go: times past it cannot be written
/// in ARM's format (four-digit years), so no request may take the clock there.
pub const LATEST: OffsetDateTime = time::macros::datetime!(9999-01-01 00:00 UTC);

/// Where the clock would be after moving `by` forward, if that is a time
/// ARM can state (not past [`LATEST`]).
pub fn check_advance(from: OffsetDateTime, by: Duration) -> Option<OffsetDateTime> {
    from.checked_add(by.max(Duration::ZERO))
        .filter(|t| *t <= LATEST)
}

/// Moves the emulator clock forward (never back, never past [`LATEST`]);
/// returns the new time.
pub fn advance(by: Duration) -> OffsetDateTime {
    let from = now();
    let t = check_advance(from, by).unwrap_or(LATEST.max(from));
    let s = scale();
    configure(s, Some(t));
    t
}

/// `2026-11-23T08:14:21.1234567Z` (ARM uses seven fractional digits).
pub fn format(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() / 100
    )
}

pub fn now_string() -> String {
    format(now())
}

pub fn parse(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

#[cfg(test)]
mod advance_tests {
    use super::*;

    #[test]
    fn the_clock_never_goes_past_year_9999() {
        let t = time::macros::datetime!(2026-12-01 00:00 UTC);
        assert_eq!(
            check_advance(t, Duration::hours(1)),
            Some(t + Duration::hours(1))
        );
        assert_eq!(check_advance(t, Duration::days(365 * 8000)), None);
        assert_eq!(check_advance(t, Duration::MAX), None);
        assert_eq!(check_advance(t, Duration::seconds(-5)), Some(t));
        assert!(format(LATEST).starts_with("9999-01-01"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_and_advanced_clock_moves_forward_only() {
        configure(3600.0, None);
        let a = now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = now();
        // 20 ms at 3600x is at least 72 emulated seconds.
        assert!(b - a >= Duration::seconds(70), "{}", (b - a));
        let c = advance(Duration::hours(24));
        assert!(c - b >= Duration::hours(24));
        assert!(advance(Duration::hours(-5)) >= c, "never goes back");
        configure(1.0, None);
        assert!((scale() - 1.0).abs() < f64::EPSILON);
    }
}
