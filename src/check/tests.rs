//! The plausibility checks' unit tests; the data-driven cases are in tests/data/plausibility.toml.

use super::*;

#[test]
fn confidence_falls_with_findings_and_disagreement() {
    let finding = |code| Finding { code, message: "m".into() };
    assert_eq!(Confidence::assess(&[], None, None).level, Level::High);
    assert_eq!(Confidence::assess(&[], Some((3, 3)), None).level, Level::High);
    assert_eq!(Confidence::assess(&[], Some((2, 3)), None).level, Level::Medium);
    assert_eq!(Confidence::assess(&[], Some((1, 3)), None).level, Level::Low);
    assert_eq!(Confidence::assess(&[finding(FindingCode::Empty)], None, None).level, Level::Medium);
    assert_eq!(Confidence::assess(&[finding(FindingCode::PeriodAfterData)], None, None).level, Level::Low);
    let corrected = Confidence::assess(&[], None, Some("LIMIT 1"));
    assert_eq!((corrected.level, corrected.reasons.len()), (Level::Medium, 1));
}

#[derive(serde::Deserialize)]
struct CaseFile {
    case: Vec<Case>,
}
#[derive(serde::Deserialize)]
struct Case {
    name: String,
    question: String,
    sql: String,
    empty: bool,
    /// Rows in the result when it is not empty (default 1).
    #[serde(default)]
    rows: Option<usize>,
    #[serde(default)]
    periods: bool,
    /// The result's first column, row by row, where the case needs its values (otherwise
    /// `rows` rows of 1).
    #[serde(default)]
    first_column: Vec<String>,
    expect: Vec<FindingCode>,
    /// Words the first finding's message must hold (the fix it names).
    #[serde(default)]
    says: Option<String>,
}

fn catalog() -> Catalog {
    use crate::catalog::{LastChange, Table};
    let text = |name: &str, values: &[&str]| Column {
        sample_values: values.iter().map(|v| v.to_string()).collect(),
        ..Column::new(name, "TEXT")
    };
    let date =
        |name: &str, format: &str| Column { date_format: Some(format.into()), ..Column::new(name, "TEXT") };
    let mut orders = Table::new(
        "orders",
        vec![
            Column::new("order_id", "INTEGER"),
            Column::new("user_id", "INTEGER"),
            date("ordered_at", "YYYY-MM-DD HH:MM:SS"),
            text("status", &["cancelled", "completed", "pending", "refunded"]),
            Column::new("total_amount", "REAL"),
            Column::new("country_code", "TEXT"),
        ],
    );
    orders.last_change = Some(LastChange { date: "2026-10-31".into(), column: "ordered_at".into() });
    let users = Table::new(
        "users",
        vec![
            Column::new("user_id", "INTEGER"),
            text("plan", &["free", "plus", "pro"]),
            date("signup_date", "YYYY-MM-DD"),
        ],
    );
    let flights = Table::new(
        "flights",
        vec![
            Column::new("flight_id", "INTEGER"),
            Column {
                date_format: Some(crate::catalog::UNIX_SECONDS.into()),
                ..Column::new("departure_time", "BIGINT")
            },
            text("day", &["Friday", "Monday", "Saturday", "Sunday", "Thursday", "Tuesday", "Wednesday"]),
            Column {
                date_format: Some(crate::catalog::YEAR_NUMBER.into()),
                ..Column::new("year", "INTEGER")
            },
        ],
    );
    Catalog::from_tables(vec![orders, users, flights])
}

#[test]
fn plausibility_cases_find_what_a_careful_analyst_would() {
    let file: CaseFile =
        toml::from_str(include_str!("../../tests/data/plausibility.toml")).expect("plausibility.toml parses");
    assert!(file.case.len() >= 15);
    let catalog = catalog();
    let mut failures = Vec::new();
    for case in &file.case {
        let result = ResultSet {
            columns: vec!["c".into()],
            rows: if case.empty {
                Vec::new()
            } else if !case.first_column.is_empty() {
                case.first_column.iter().map(|v| vec![serde_json::json!(v)]).collect()
            } else {
                vec![vec![serde_json::json!(1)]; case.rows.unwrap_or(1)]
            },
            truncated: false,
            truncation: None,
            elapsed_ms: 0,
        };
        let periods =
            if case.periods { crate::timeframe::resolve(&case.question, "2026-12-03") } else { Vec::new() };
        let subject = Subject {
            question: &case.question,
            sql: &case.sql,
            result: &result,
            catalog: &catalog,
            periods: &periods,
        };
        let found = check(&subject);
        let codes: Vec<FindingCode> = found.iter().map(|f| f.code).collect();
        if codes != case.expect {
            failures.push(format!("{}: got {found:?}, want {:?}", case.name, case.expect));
        } else if let Some(says) = &case.says {
            if !found.first().is_some_and(|f| f.message.contains(says.as_str())) {
                failures.push(format!("{}: got {found:?}, want a message saying {says:?}", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn shapes_of_formats_and_literals() {
    assert_eq!(format_shape("%Y-%m"), "9999-99");
    assert_eq!(format_shape("%Y"), "9999");
    assert_eq!(format_shape("%w"), "9");
    assert_eq!(format_shape("YYYY-MM-DD"), "9999-99-99");
    assert_eq!(format_shape("YYYY-MM-DD HH:MM:SS"), "9999-99-99 99:99:99");
    assert_eq!(shape("2026-09-01"), "9999-99-99");
}

#[test]
fn decimals_asked_reads_rounding() {
    assert_eq!(decimals_asked("What share, as a percentage rounded to 2 decimals?"), Some(2));
    assert_eq!(decimals_asked("Average duration, rounded to 1 decimal"), Some(1));
    assert_eq!(decimals_asked("Round to two decimal places."), Some(2));
    assert_eq!(decimals_asked("How many decimals does the price have?"), None);
}

#[test]
fn the_rounding_finding_names_the_expressions_to_wrap() {
    let query = parse_query(
        "SELECT c.country, strftime('%Y-%m', o.ordered_at) AS month, AVG(o.total_amount) AS aov, \
         1.0 * SUM(o.total_amount) / COUNT(*) AS per_order FROM orders o JOIN c GROUP BY 1, 2",
    )
    .expect("parses");
    let found = rounding_findings("Average order value per country, rounded to 2 decimals", &query);
    let message = &found.first().expect("a finding").message;
    assert!(
        message.contains("ROUND(AVG(o.total_amount), 2), ROUND(1.0 * SUM(o.total_amount) / COUNT(*), 2)"),
        "{message}"
    );
    assert!(!message.contains("ROUND(c.country") && !message.contains("ROUND(strftime"), "{message}");
}

#[test]
fn rows_asked_reads_top_n() {
    assert_eq!(rows_asked("Which 5 countries had the most users?"), Some(5));
    assert_eq!(rows_asked("users active on at least 15 days, most active first"), None);
    assert_eq!(rows_asked("the top 5 countries by users"), Some(5));
    assert_eq!(rows_asked("the 3 most viewed posts"), Some(3));
    assert_eq!(rows_asked("top three campaigns"), Some(3));
    assert_eq!(rows_asked("revenue in 2026"), None);
}
