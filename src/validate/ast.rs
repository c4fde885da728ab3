//! Small AST and text helpers shared by the stages.

use super::*;

/// The constraint of a join SQLite supports (inner, outer and cross joins); `None` for the
/// others (semi, anti, apply, as-of joins), which the validator refuses.
pub fn join_constraint(operator: &JoinOperator) -> Option<&JoinConstraint> {
    match operator {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::CrossJoin(c) => Some(c),
        _ => None,
    }
}

pub(in crate::validate) fn name_parts(name: &ObjectName) -> Vec<Ident> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => ident.clone(),
            other => Ident::new(other.to_string()),
        })
        .collect()
}

pub(in crate::validate) fn join_idents(idents: &[Ident]) -> String {
    let parts: Vec<String> = idents.iter().map(Ident::to_string).collect();
    parts.join(".")
}

pub(in crate::validate) fn is_rowid(column: &str) -> bool {
    ["rowid", "oid", "_rowid_"].iter().any(|r| r.eq_ignore_ascii_case(column))
}

/// The name SQLite gives a result column without alias.
pub(in crate::validate) fn output_name(expr: &Expr) -> String {
    match expr {
        Expr::Identifier(ident) => ident.value.clone(),
        Expr::CompoundIdentifier(idents) => idents.last().map(|i| i.value.clone()).unwrap_or_default(),
        other => other.to_string(),
    }
}

/// A result-column position: a bare integer literal.
pub(in crate::validate) fn position(expr: &Expr) -> Option<usize> {
    match expr {
        Expr::Value(value) => match &value.value {
            Value::Number(digits, _) => digits.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

pub(in crate::validate) fn list_names(names: &[String]) -> String {
    const SHOWN: usize = 15;
    let mut listed: Vec<&str> = names.iter().take(SHOWN).map(String::as_str).collect();
    if names.len() > SHOWN {
        listed.push("...");
    }
    listed.join(", ")
}

pub(in crate::validate) fn columns_hint(visible: &[(String, String)]) -> String {
    if visible.is_empty() {
        return "add the table that has it to FROM".to_string();
    }
    let qualified: Vec<String> = visible.iter().map(|(r, c)| format!("{r}.{c}")).collect();
    format!("columns in scope: {}", list_names(&qualified))
}

pub(in crate::validate) fn first_word(text: &str) -> &str {
    text.split_whitespace().next().unwrap_or("this")
}

/// At most `max_chars` characters of `text`, with "..." when cut.
pub(in crate::validate) fn excerpt(text: &str, max_chars: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// The SQL where a parser message ("found: X at Line: L, Column: C") points, or its start.
pub(in crate::validate) fn fragment_at_location(text: &str, message: &str) -> String {
    let number_after = |label: &str| -> Option<usize> {
        let start = message.rfind(label)? + label.len();
        let digits: String = message[start..].chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    let (Some(line), Some(column)) = (number_after("Line: "), number_after("Column: ")) else {
        return excerpt(text, 40);
    };
    let line_start: usize = text.split('\n').take(line.saturating_sub(1)).map(|l| l.len() + 1).sum();
    let line_text = text.get(line_start..).unwrap_or("").split('\n').next().unwrap_or("");
    let column_at =
        line_text.char_indices().nth(column.saturating_sub(1)).map_or(line_text.len(), |(i, _)| i);
    // The column can point past the token; the token named after "found: " is the better anchor.
    let found = message
        .rfind("found: ")
        .and_then(|start| message[start + 7..].split(" at Line: ").next())
        .unwrap_or("");
    let limit = line_text.len().min(column_at + found.len());
    let start = match line_text.get(..limit).and_then(|head| head.rfind(found)) {
        Some(index) if !found.is_empty() => index,
        _ => column_at,
    };
    let rest = line_text.get(start..).unwrap_or("");
    if rest.trim().is_empty() {
        "(end of input)".to_string()
    } else {
        excerpt(rest, 40)
    }
}

/// Keeps the first of violations with the same code and fragment.
pub(in crate::validate) fn deduplicated(violations: Vec<Violation>) -> Vec<Violation> {
    let mut seen = BTreeSet::new();
    violations
        .into_iter()
        .filter(|v| seen.insert((v.code.as_str(), v.fragment.clone(), v.message.clone())))
        .collect()
}
