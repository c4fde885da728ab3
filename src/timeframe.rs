//! Time phrases of a question ("in September 2026", "Q3 2026", "last month", "the past 7
//! days") resolved to explicit date ranges before prompting, so the model compares a date
//! column with bounds instead of guessing them.
//!
//! Every range is half-open: `start` is the first day in it, `end` the first day after it.
//! Relative phrases are read against `today`:
//! - "this week/month/quarter/year": the calendar unit holding today;
//! - "last/previous week/month/quarter/year": the calendar unit before it;
//! - "the last/past N days": the N whole days before today; "N weeks/months/years": the N
//!   whole calendar units before the current one;
//! - "year/month/quarter to date" (ytd, mtd, qtd): from the unit's first day through today;
//! - a month or quarter without a year: its latest occurrence that began by today;
//! - "between/from <day> and/to <day>" with ISO days: both days and those between.
//!
//! Weeks start on Monday.

use crate::calendar::{day_number, iso_date};

/// A phrase of the question and the range of days it means.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Period {
    /// The words of the question, as written (lower-cased).
    pub phrase: String,
    /// First day in the period (ISO date).
    pub start: String,
    /// First day after the period (ISO date).
    pub end: String,
    /// The whole calendar year: a year column may compare with it as a number.
    pub year: Option<i64>,
}

impl Period {
    /// The last day in the period (ISO date).
    pub fn last_day(&self) -> String {
        day_number(&self.end).map(|d| iso_date(d - 1)).unwrap_or_else(|| self.end.clone())
    }

    /// How a reader is told what the phrase was taken to mean.
    pub fn describe(&self) -> String {
        let last = self.last_day();
        if last == self.start {
            format!("\"{}\" = {}", self.phrase, self.start)
        } else {
            format!("\"{}\" = {} to {}", self.phrase, self.start, last)
        }
    }
}

/// The month names, lower-case, January first.
pub const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// The month (1–12) a word names: full names and the usual abbreviations.
fn month_of(word: &str) -> Option<i64> {
    if let Some(i) = MONTHS.iter().position(|m| *m == word) {
        return Some(i as i64 + 1);
    }
    let short = match word {
        "jan" => 1,
        "feb" => 2,
        "mar" => 3,
        "apr" => 4,
        "jun" => 6,
        "jul" => 7,
        "aug" => 8,
        "sep" | "sept" => 9,
        "oct" => 10,
        "nov" => 11,
        "dec" => 12,
        _ => return None,
    };
    Some(short)
}

/// A plausible four-digit year.
fn year_of(word: &str) -> Option<i64> {
    if word.len() != 4 {
        return None;
    }
    word.parse::<i64>().ok().filter(|y| (1900..=2199).contains(y))
}

/// A count written as digits or as a small number word.
fn count_of(word: &str) -> Option<i64> {
    const WORDS: [&str; 12] =
        ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"];
    if let Some(i) = WORDS.iter().position(|w| *w == word) {
        return Some(i as i64 + 1);
    }
    word.parse::<i64>().ok().filter(|n| (1..=3660).contains(n))
}

fn quarter_of(word: &str) -> Option<i64> {
    match word {
        "q1" | "first" | "1st" => Some(1),
        "q2" | "second" | "2nd" => Some(2),
        "q3" | "third" | "3rd" => Some(3),
        "q4" | "fourth" | "4th" => Some(4),
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Unit {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

fn unit_of(word: &str) -> Option<Unit> {
    match word {
        "day" | "days" => Some(Unit::Day),
        "week" | "weeks" => Some(Unit::Week),
        "month" | "months" => Some(Unit::Month),
        "quarter" | "quarters" => Some(Unit::Quarter),
        "year" | "years" => Some(Unit::Year),
        _ => None,
    }
}

/// A calendar day as (year, month, day).
#[derive(Clone, Copy)]
struct Day {
    y: i64,
    m: i64,
    number: i64,
}

impl Day {
    fn parse(iso: &str) -> Option<Day> {
        let number = day_number(iso)?;
        let y = iso.get(0..4)?.parse().ok()?;
        let m = iso.get(5..7)?.parse().ok()?;
        Some(Day { y, m, number })
    }
}

/// The first day of month `m` of year `y`, months counted past December or before January.
fn month_start(y: i64, m: i64) -> String {
    let index = y * 12 + (m - 1);
    format!("{:04}-{:02}-01", index.div_euclid(12), index.rem_euclid(12) + 1)
}

/// The range of `count` calendar units starting at the unit holding `day`, shifted by
/// `offset` units (−1: the one before).
fn unit_range(day: Day, unit: Unit, offset: i64, count: i64) -> (String, String) {
    match unit {
        Unit::Day => (iso_date(day.number + offset), iso_date(day.number + offset + count)),
        Unit::Week => {
            // 1970-01-01 was a Thursday: Monday-based weekday 3.
            let monday = day.number - (day.number + 3).rem_euclid(7);
            (iso_date(monday + 7 * offset), iso_date(monday + 7 * (offset + count)))
        }
        Unit::Month => (month_start(day.y, day.m + offset), month_start(day.y, day.m + offset + count)),
        Unit::Quarter => {
            let first = (day.m - 1) / 3 * 3 + 1;
            (month_start(day.y, first + 3 * offset), month_start(day.y, first + 3 * (offset + count)))
        }
        Unit::Year => (month_start(day.y + offset, 1), month_start(day.y + offset + count, 1)),
    }
}

/// The question's words, lower-cased, with ISO dates (`2026-10-15`) kept whole so their
/// year is not read as a year of its own.
fn words(question: &str) -> Vec<String> {
    let lower = question.to_lowercase();
    let mut out = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = lower.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let joins_date = c == '-'
            && !current.is_empty()
            && current.chars().all(|c| c.is_ascii_digit() || c == '-')
            && chars.get(i + 1).is_some_and(char::is_ascii_digit)
            && current.chars().next().is_some_and(|c| c.is_ascii_digit());
        if c.is_alphanumeric() || joins_date {
            current.push(c);
        } else if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        i += 1;
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The latest year in which month `m` (quarter start month, for quarters) began by `today`.
fn latest_year_for(today: Day, m: i64) -> i64 {
    if m <= today.m {
        today.y
    } else {
        today.y - 1
    }
}

/// Every time phrase of `question` with its range, in the order they appear. `today` is an
/// ISO date; when it is not one, nothing is resolved.
pub fn resolve(question: &str, today: &str) -> Vec<Period> {
    segments(question, today)
        .into_iter()
        .filter_map(|segment| match segment {
            Segment::Period(period) => Some(period),
            Segment::Word(_) => None,
        })
        .collect()
}

/// True when the question refers to time relative to the day it is asked: "last month", "this
/// year", "the past 7 days", "yesterday", "3 days ago", "year to date" — not "last name" or "the
/// most recent order", which name no period.
pub fn is_relative(question: &str) -> bool {
    const ANCHORS: &[&str] = &["today", "yesterday", "tomorrow", "now", "ago", "ytd", "mtd", "recently"];
    const RELATIVE: &[&str] = &["this", "current", "last", "previous", "past", "prior", "trailing", "next"];
    // Any valid day will do: only which words form a period matters here.
    segments(question, "2000-06-15").iter().any(|segment| match segment {
        Segment::Word(word) => ANCHORS.contains(&word.as_str()),
        Segment::Period(period) => {
            period.phrase.contains("to date")
                || period.phrase.split(' ').any(|w| ANCHORS.contains(&w) || RELATIVE.contains(&w))
        }
    })
}

/// A piece of a question: a time phrase with its range, or another (lower-cased) word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Word(String),
    Period(Period),
}

/// The question's words in order, each time phrase taken as one `Segment::Period`. `today` is
/// an ISO date; when it is not one, every word stays a word.
pub fn segments(question: &str, today: &str) -> Vec<Segment> {
    let w = words(question);
    let Some(now) = Day::parse(today) else {
        return w.into_iter().map(Segment::Word).collect();
    };
    let word = |i: usize| w.get(i).map(String::as_str).unwrap_or("");
    let mut out = Vec::new();
    let mut i = 0;
    while i < w.len() {
        match match_at(i, now, &word) {
            Some((len, start, end, year)) => {
                out.push(Segment::Period(Period { phrase: w[i..i + len].join(" "), start, end, year }));
                i += len;
            }
            None => {
                out.push(Segment::Word(w[i].clone()));
                i += 1;
            }
        }
    }
    out
}

type Match = (usize, String, String, Option<i64>);

/// The phrase starting at word `i`, if one does: its length in words and range.
fn match_at<'a>(i: usize, now: Day, word: &dyn Fn(usize) -> &'a str) -> Option<Match> {
    let today = now.number;
    let first = word(i);
    // A range of days written out: "between 2026-07-01 and 2026-09-30", both days in it.
    if matches!(first, "from" | "between")
        && matches!(word(i + 2), "to" | "and" | "through" | "until" | "thru")
    {
        if let (Some(from), Some(to)) = (Day::parse(word(i + 1)), Day::parse(word(i + 3))) {
            if from.number <= to.number {
                return Some((4, iso_date(from.number), iso_date(to.number + 1), None));
            }
        }
    }
    // A month range: "from June to October 2026", "between june and august".
    if matches!(first, "from" | "between") {
        if let Some(m1) = month_of(word(i + 1)) {
            let (y1, mut j) = match year_of(word(i + 2)) {
                Some(y) => (Some(y), i + 3),
                None => (None, i + 2),
            };
            if matches!(word(j), "to" | "and" | "through" | "until" | "till" | "thru") {
                if let Some(m2) = month_of(word(j + 1)) {
                    j += 2;
                    let y2 = year_of(word(j));
                    if y2.is_some() {
                        j += 1;
                    }
                    let y2 = y2.or(y1).unwrap_or_else(|| latest_year_for(now, m2));
                    let y1 = y1.unwrap_or(if m1 <= m2 { y2 } else { y2 - 1 });
                    return Some((j - i, month_start(y1, m1), month_start(y2, m2 + 1), None));
                }
            }
        }
    }
    // "since June 2026", "since 2026-06-15": through today.
    if first == "since" {
        if let Some(day) = Day::parse(word(i + 1)) {
            return Some((2, iso_date(day.number), iso_date(today + 1), None));
        }
        if let Some(m) = month_of(word(i + 1)) {
            let (y, len) = match year_of(word(i + 2)) {
                Some(y) => (y, 3),
                None => (latest_year_for(now, m), 2),
            };
            return Some((len, month_start(y, m), iso_date(today + 1), None));
        }
    }
    // Quarters: "Q3 2026", "q3 of 2026", "the third quarter of 2026", "Q3".
    if let Some(q) = quarter_of(first) {
        let (mut j, is_quarter) = if first.starts_with('q') {
            (i + 1, true)
        } else if matches!(word(i + 1), "quarter" | "qtr") {
            (i + 2, true)
        } else {
            (i, false)
        };
        if is_quarter {
            if word(j) == "of" && year_of(word(j + 1)).is_some() {
                j += 1;
            }
            let m = (q - 1) * 3 + 1;
            let y = match year_of(word(j)) {
                Some(y) => {
                    j += 1;
                    y
                }
                None => latest_year_for(now, m),
            };
            return Some((j - i, month_start(y, m), month_start(y, m + 3), None));
        }
    }
    // A month: "September 2026", "sept of 2026", "in September" ("may" only with a year or
    // after "in"/"during", it is a verb too).
    if let Some(m) = month_of(first) {
        let year_at = if word(i + 1) == "of" { i + 2 } else { i + 1 };
        if let Some(y) = year_of(word(year_at)) {
            return Some((year_at + 1 - i, month_start(y, m), month_start(y, m + 1), None));
        }
        let after_preposition = i > 0 && matches!(word(i - 1), "in" | "during" | "for" | "of" | "throughout");
        let plain_word = matches!(first, "may" | "mar" | "jan" | "dec" | "sep" | "oct" | "nov" | "aug");
        if after_preposition || (!plain_word && first.len() > 3) {
            let y = latest_year_for(now, m);
            return Some((1, month_start(y, m), month_start(y, m + 1), None));
        }
    }
    // A year: "in 2026", "2025".
    if let Some(y) = year_of(first) {
        return Some((1, month_start(y, 1), month_start(y + 1, 1), Some(y)));
    }
    match first {
        "today" => return Some((1, iso_date(today), iso_date(today + 1), None)),
        "yesterday" => return Some((1, iso_date(today - 1), iso_date(today), None)),
        "ytd" => {
            let (start, _) = unit_range(now, Unit::Year, 0, 1);
            return Some((1, start, iso_date(today + 1), None));
        }
        "mtd" | "qtd" => {
            let unit = if first == "mtd" { Unit::Month } else { Unit::Quarter };
            let (start, _) = unit_range(now, unit, 0, 1);
            return Some((1, start, iso_date(today + 1), None));
        }
        _ => {}
    }
    // "year to date", "month-to-date".
    if let Some(unit) = unit_of(first) {
        if word(i + 1) == "to" && word(i + 2) == "date" && unit != Unit::Day {
            let (start, _) = unit_range(now, unit, 0, 1);
            return Some((3, start, iso_date(today + 1), None));
        }
    }
    // "N days ago".
    if let (Some(n), Some(Unit::Day)) = (count_of(first), unit_of(word(i + 1))) {
        if word(i + 2) == "ago" {
            return Some((3, iso_date(today - n), iso_date(today - n + 1), None));
        }
    }
    // "this month", "current quarter", "last year", "previous week", "the past 7 days".
    let offset = match first {
        "this" | "current" => 0,
        "last" | "previous" | "past" | "prior" | "trailing" => -1,
        _ => return None,
    };
    if let Some(unit) = unit_of(word(i + 1)) {
        if offset == 0 || !word(i + 1).ends_with('s') {
            let (start, end) = unit_range(now, unit, offset, 1);
            let year = (unit == Unit::Year).then(|| start[..4].parse().unwrap_or(now.y));
            return Some((2, start, end, year));
        }
    }
    if offset == -1 {
        if let (Some(n), Some(unit)) = (count_of(word(i + 1)), unit_of(word(i + 2))) {
            let (start, end) = unit_range(now, unit, -n, n);
            return Some((3, start, end, None));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases: question, today, then the expected "phrase = start..end" list (end exclusive).
    #[derive(serde::Deserialize)]
    struct CaseFile {
        case: Vec<Case>,
    }
    #[derive(serde::Deserialize)]
    struct Case {
        question: String,
        today: String,
        periods: Vec<String>,
    }

    #[test]
    fn time_phrases_resolve_to_the_ranges_an_analyst_means() {
        let file: CaseFile = toml::from_str(include_str!("../tests/data/time_phrases.toml"))
            .expect("time_phrases.toml parses");
        assert!(file.case.len() >= 30, "the case file holds the cases");
        let mut failures = Vec::new();
        for case in &file.case {
            let got: Vec<String> = resolve(&case.question, &case.today)
                .iter()
                .map(|p| format!("{} = {}..{}", p.phrase, p.start, p.end))
                .collect();
            if got != case.periods {
                failures.push(format!(
                    "{:?} (today {}): got {:?}, want {:?}",
                    case.question, case.today, got, case.periods
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn describing_a_period_names_its_last_day() {
        let p = &resolve("revenue in September 2026", "2026-11-03")[0];
        assert_eq!(p.describe(), "\"september 2026\" = 2026-09-01 to 2026-09-30");
        let p = &resolve("orders yesterday", "2026-11-03")[0];
        assert_eq!(p.describe(), "\"yesterday\" = 2026-11-02");
    }

    #[test]
    fn no_today_no_resolution() {
        assert!(resolve("revenue last month", "not a date").is_empty());
    }

    #[test]
    fn only_phrases_relative_to_today_are_relative() {
        for relative in [
            "which 5 countries had the most active users last month?",
            "Revenue so far this year",
            "orders in the past 7 days",
            "signups yesterday",
            "refunds 3 days ago",
            "revenue year to date",
            "How long has it been in days since today?",
        ] {
            assert!(is_relative(relative), "{relative:?} is relative to today");
        }
        for absolute in [
            "How many orders were placed in September 2026?",
            "Lastly, show the plans",
            "List the owner id and last name of each owner",
            "How much does the most recent treatment cost?",
            "What is the latest flight departure?",
            "What is the current balance of each account?",
        ] {
            assert!(!is_relative(absolute), "{absolute:?} names no period relative to today");
        }
    }
}
