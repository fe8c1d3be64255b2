//! `report.md`: the machine, the plan, then each scenario's tables, ready to paste into
//! `BENCHMARKS.md`.

use std::fmt::Write;

use super::Results;

/// What the tables call each opponent.
pub(crate) fn label(opponent: &str) -> &str {
    match opponent {
        "hyper" => "bare hyper",
        "axum" => "plain `axum::serve`",
        "tower" => "axum + tower (global limit, load shed, timeout)",
        "intralb" => "intralb",
        "lease" => "axum + only a per-worker lease (the floor under intralb)",
        "naive-limit" => "`Router::layer(ConcurrencyLimitLayer)`, Router served as is",
        "naive-limit-eager" => "the same after `Router::with_state(())`",
        "mutex" => "axum + one `Mutex<Connection>`",
        "pool" => "axum + r2d2 pool",
        other => other,
    }
}

/// A Markdown table.
pub(crate) struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(crate) fn render(&self, out: &mut String) {
        for (i, row) in self.rows.iter().enumerate() {
            let _ = writeln!(out, "| {} |", row.join(" | "));
            if i == 0 {
                let _ = writeln!(out, "|{}", "---|".repeat(row.len()));
            }
        }
        out.push('\n');
    }
}

/// Milliseconds with the precision that matters at that size.
pub(crate) fn ms(value: Option<f64>) -> String {
    let Some(v) = value.filter(|v| v.is_finite()) else {
        return "–".to_owned();
    };
    let size = v.abs();
    if size < 1.0 {
        format!("{v:.3}")
    } else if size < 10.0 {
        format!("{v:.2}")
    } else if size < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// A rate, or any count-like number, with thousands separators.
pub(crate) fn num(value: f64) -> String {
    let rounded = value.round() as i64;
    let digits = rounded.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if rounded < 0 {
        format!("-{grouped}")
    } else {
        grouped
    }
}

pub(crate) fn ratio(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.2}×")
    } else {
        "–".to_owned()
    }
}

pub(crate) fn percent(value: Option<f64>) -> String {
    value.map_or("–".to_owned(), |v| format!("{:.0} %", v * 100.0))
}

pub(crate) fn verdict(pass: bool) -> &'static str {
    if pass {
        "✅ pass"
    } else {
        "❌ miss"
    }
}

/// The median (the mean of the middle two for an even count); NaN for none.
pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

pub(crate) fn render(results: &Results) -> String {
    let mut out = String::new();
    let m = &results.machine;
    let plan = &results.plan;
    out.push_str("# intralb benchmark results\n\n");
    if plan.quick {
        out.push_str(
            "> **Quick run** (`--quick`): short runs that prove the harness works. \
             The numbers are noisy; do not quote them.\n\n",
        );
    }
    let mut machine = Table::new(&["machine", ""]);
    machine.row(vec!["CPU".into(), m.cpu_model.clone()]);
    machine.row(vec![
        "CPUs".into(),
        format!("{} ({} available to the harness)", m.cpus, m.available_cpus),
    ]);
    machine.row(vec!["memory".into(), format!("{:.1} GiB", m.memory_gib)]);
    machine.row(vec!["kernel".into(), m.kernel.clone()]);
    machine.row(vec!["rustc".into(), m.rustc.clone()]);
    machine.row(vec!["load generator".into(), m.oha.clone()]);
    machine.row(vec!["pinning".into(), m.pinning.clone()]);
    machine.row(vec![
        "load average (1, 5, 15 min) before / after".into(),
        format!("{} / {}", m.load_average_before, m.load_average_after),
    ]);
    machine.render(&mut out);
    let _ = writeln!(
        out,
        "Plan: fast path {}s × {} (after {}s warm-up), overload {}s per load, notes {}s, \
         scale {}s × {}, drain {} requests up to {} ms.\n",
        plan.fast_s,
        plan.fast_rounds,
        plan.warmup_s,
        plan.overload_s,
        plan.notes_s,
        plan.scale_s,
        plan.repeats,
        plan.drain_requests,
        plan.drain_longest_ms,
    );
    if let Some(fast) = &results.fast {
        fast.report(&mut out);
    }
    if let Some(overload) = &results.overload {
        overload.report(&mut out);
    }
    if let Some(admission) = &results.admission {
        admission.report(&mut out);
    }
    if let Some(adaptive) = &results.adaptive {
        adaptive.report(&mut out);
    }
    if let Some(notes) = &results.notes {
        notes.report(&mut out);
    }
    if let Some(scale) = &results.scale {
        scale.report(&mut out);
    }
    if let Some(drain) = &results.drain {
        drain.report(&mut out);
    }
    if !results.failures.is_empty() {
        out.push_str("## Failures\n\n");
        for failure in &results.failures {
            let _ = writeln!(out, "- {failure}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(num(1234567.4), "1,234,567");
        assert_eq!(num(999.0), "999");
        assert_eq!(num(-1000.0), "-1,000");
    }

    #[test]
    fn median_of_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert!(median(Vec::new()).is_nan());
    }

    #[test]
    fn tables_render_as_markdown() {
        let mut table = Table::new(&["a", "b"]);
        table.row(vec!["1".into(), "2".into()]);
        let mut out = String::new();
        table.render(&mut out);
        assert_eq!(out, "| a | b |\n|---|---|\n| 1 | 2 |\n\n");
    }
}
