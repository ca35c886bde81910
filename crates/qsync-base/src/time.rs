//! Times as people and file names read them.

/// `YYYYMMDD-HHMMSS` in UTC, from seconds since the Unix epoch (civil-from-days).
pub fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{d:02}-{h:02}{m:02}{s:02}")
}

#[cfg(test)]
mod tests {
    use super::format_utc;

    #[test]
    fn civil_time_in_utc() {
        assert_eq!(format_utc(0), "19700101-000000");
        assert_eq!(format_utc(1_764_000_000), "20251124-160000");
        assert_eq!(format_utc(-1), "19691231-235959");
    }
}
