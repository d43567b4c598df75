//! Number formatting as Go's `fmt`/`strconv` do it (`%v`, `%g`, `%e`, `%f` with flags, width
//! and precision), so expanded templates read exactly as they do in Prometheus.

/// Go's `strconv.FormatFloat(v, 'g', -1, 64)`, which is also what `%v` prints for a float64:
/// the shortest digits that round-trip, in `%e` form when the exponent is < -4 or >= 6.
pub(crate) fn float_v(v: f64) -> String {
    format_g(v, None, false)
}

/// Go's `%g` (`prec` = significant digits, `None` for shortest). `upper` for `%G`.
pub(crate) fn format_g(v: f64, prec: Option<usize>, upper: bool) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let (neg, digits, exp10) = match prec {
        None => shortest_digits(v),
        Some(p) => fixed_digits(v, p.max(1)),
    };
    // exp10 is the decimal exponent of the first digit (d.ddd × 10^exp10).
    let eprec: i32 = match prec {
        None => 6,
        Some(p) => {
            let p = p.max(1) as i32;
            // Go: if eprec > digits && digits >= dp { eprec = digits }
            let nd = digits.len() as i32;
            if p > nd && nd > exp10 {
                nd
            } else {
                p
            }
        }
    };
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    if exp10 < -4 || exp10 >= eprec {
        s.push_str(&digits[..1]);
        if digits.len() > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        s.push_str(&exp_suffix(exp10, upper));
    } else if exp10 < 0 {
        s.push_str("0.");
        for _ in 0..(-exp10 - 1) {
            s.push('0');
        }
        s.push_str(&digits);
    } else {
        let int_len = exp10 as usize + 1;
        if digits.len() <= int_len {
            s.push_str(&digits);
            for _ in digits.len()..int_len {
                s.push('0');
            }
        } else {
            s.push_str(&digits[..int_len]);
            s.push('.');
            s.push_str(&digits[int_len..]);
        }
    }
    s
}

/// Go's `%e` with `prec` digits after the point (default 6).
pub(crate) fn format_e(v: f64, prec: usize, upper: bool) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let r = format!("{:.*e}", prec, v);
    match r.split_once('e') {
        Some((m, e)) => {
            let e: i32 = e.parse().unwrap_or(0);
            format!("{m}{}", exp_suffix(e, upper))
        }
        None => r,
    }
}

/// Go's `%f` with `prec` digits after the point.
pub(crate) fn format_f(v: f64, prec: usize) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    format!("{:.*}", prec, v)
}

fn special(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".into())
    } else if v.is_infinite() {
        Some(if v > 0.0 { "+Inf" } else { "-Inf" }.into())
    } else {
        None
    }
}

fn exp_suffix(e: i32, upper: bool) -> String {
    let sign = if e < 0 { '-' } else { '+' };
    let mark = if upper { 'E' } else { 'e' };
    format!("{mark}{sign}{:02}", e.abs())
}

/// Shortest round-trip digits of `v` (no leading zeros) and the decimal exponent of the first.
fn shortest_digits(v: f64) -> (bool, String, i32) {
    split_sci(&format!("{:e}", v))
}

/// `prec` significant digits, correctly rounded, with trailing zeros removed (as `%g` does).
fn fixed_digits(v: f64, prec: usize) -> (bool, String, i32) {
    let (neg, mut d, e) = split_sci(&format!("{:.*e}", prec - 1, v));
    while d.len() > 1 && d.ends_with('0') {
        d.pop();
    }
    (neg, d, e)
}

fn split_sci(s: &str) -> (bool, String, i32) {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (m, e) = s.split_once('e').unwrap_or((s, "0"));
    let digits: String = m.chars().filter(|c| *c != '.').collect();
    (neg, digits, e.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_float_like_go() {
        assert_eq!(float_v(0.1), "0.1");
        assert_eq!(float_v(1e6), "1e+06");
        assert_eq!(float_v(100000.0), "100000");
        assert_eq!(float_v(123456789.0), "1.23456789e+08");
        assert_eq!(float_v(0.0001), "0.0001");
        assert_eq!(float_v(0.00001), "1e-05");
        assert_eq!(float_v(-2.5), "-2.5");
        assert_eq!(float_v(0.0), "0");
        assert_eq!(float_v(f64::INFINITY), "+Inf");
        assert_eq!(float_v(1.0 / 3.0), "0.3333333333333333");
    }

    #[test]
    fn precision_g_like_go() {
        assert_eq!(format_g(1234.5678, Some(4), false), "1235");
        assert_eq!(format_g(1.2345678, Some(4), false), "1.235");
        assert_eq!(format_g(123456.0, Some(4), false), "1.235e+05");
        assert_eq!(format_g(0.0, Some(4), false), "0");
        assert_eq!(format_g(100.0, Some(4), false), "100");
        assert_eq!(format_g(1000.0, Some(4), false), "1000");
        assert_eq!(format_g(0.00012345, Some(4), false), "0.0001234");
        assert_eq!(format_e(1234.5678, 2, false), "1.23e+03");
        assert_eq!(format_f(2.0 / 3.0, 2), "0.67");
    }
}
