//! Schema linking by name: how much of a question is said in a table's own words (its name and
//! its columns' names). Dense embeddings of whole table documents blur names that a question
//! states outright ("stadium capacity", "pets of students"), and in a large catalog a table
//! that is named can rank below look-alikes from other schemas; this signal lifts it.
//!
//! Each word is weighted by its rarity among the catalog's tables (inverse document
//! frequency), so `id` or `name`, which nearly every table has, count for little.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::catalog::{Catalog, Table};

/// English function words: never a name, though a few table or column names hold them
/// (`rank_of_the_year`), which would make them rare and so weighty. Spelled as `stems` leaves
/// them (`this` → `thi`, `does` → `doe`).
const FUNCTION_WORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been", "before",
    "but", "by", "can", "did", "do", "doe", "each", "find", "for", "from", "give", "had", "has", "have",
    "her", "his", "how", "i", "if", "in", "into", "is", "it", "its", "list", "many", "me", "much", "my",
    "no", "not", "of", "on", "or", "our", "return", "show", "so", "than", "that", "the", "their", "them",
    "then", "there", "these", "they", "thi", "those", "to", "was", "we", "were", "what", "when", "where",
    "which", "who", "whom", "whose", "why", "will", "with", "you", "your",
];

/// What a word found only among a table's columns counts, beside one in the table's name.
const COLUMN_SHARE: f32 = 0.75;

/// For each table that shares a word with `question`, the share of the question's words that the
/// table names, each word weighted by its rarity: from 0 to 1, 1 when every word of the question
/// (function words and numbers aside) is in the table's own name. Tables naming none are absent.
pub fn name_scores(question: &str, catalog: &Catalog) -> BTreeMap<String, f32> {
    let asked: BTreeSet<String> =
        stems(question).into_iter().filter(|w| !FUNCTION_WORDS.contains(&w.as_str())).collect();
    if asked.is_empty() {
        return BTreeMap::new();
    }
    let vocabularies: Vec<(&Table, Vocabulary)> = catalog.tables().map(|t| (t, Vocabulary::of(t))).collect();
    let mut document_frequency: HashMap<&str, usize> = HashMap::new();
    for (_, vocabulary) in &vocabularies {
        for word in vocabulary.all() {
            if asked.contains(word) {
                *document_frequency.entry(word).or_default() += 1;
            }
        }
    }
    let tables = vocabularies.len() as f32;
    let rarity: HashMap<&str, f32> = document_frequency
        .iter()
        .map(|(word, df)| (*word, ((tables + 1.0) / (*df as f32 + 0.5)).ln().max(0.0)))
        .collect();
    // A word no table holds weighs as the rarest: a question that says little in the
    // catalog's words gets little from them. Numbers are values, never names.
    let unnamed = asked
        .iter()
        .filter(|w| !document_frequency.contains_key(w.as_str()) && !w.chars().all(|c| c.is_ascii_digit()))
        .count();
    let rarest = ((tables + 1.0) / 0.5).ln();
    let said: f32 = rarity.values().sum::<f32>() + unnamed as f32 * rarest;
    if said <= 0.0 {
        return BTreeMap::new();
    }
    let mut scores = BTreeMap::new();
    for (table, vocabulary) in &vocabularies {
        let mut matched = 0.0;
        for (word, weight) in &rarity {
            if vocabulary.name.contains(*word) {
                matched += weight;
            } else if vocabulary.columns.contains(*word) {
                matched += COLUMN_SHARE * weight;
            }
        }
        if matched > 0.0 {
            scores.insert(table.name.clone(), matched / said);
        }
    }
    scores
}

/// A table's words: those of its name and those of its columns' names.
struct Vocabulary {
    name: BTreeSet<String>,
    columns: BTreeSet<String>,
}

impl Vocabulary {
    fn of(table: &Table) -> Vocabulary {
        let name: BTreeSet<String> = stems(&split_camel_case(&table.name)).into_iter().collect();
        let columns = table
            .columns
            .iter()
            .flat_map(|c| stems(&split_camel_case(&c.name)))
            .filter(|w| !name.contains(w))
            .collect();
        Vocabulary { name, columns }
    }

    fn all(&self) -> impl Iterator<Item = &str> {
        self.name.iter().chain(&self.columns).map(String::as_str)
    }
}

/// `StuID` and `songName` as `Stu ID` and `song Name`: a break before an upper-case letter that
/// follows a lower-case one.
fn split_camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_uppercase() && previous_lower {
            out.push(' ');
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        out.push(c);
    }
    out
}

/// The words of `text`, lower case, singular: `ies` → `y`, `-ses`/`-xes`/`-hes` and a final `s`
/// (not `ss`) dropped from words longer than three letters; `_` and every other
/// non-alphanumeric character separate words.
pub fn stems(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            if w.len() > 4 {
                if let Some(stem) = w.strip_suffix("ies") {
                    return format!("{stem}y");
                }
                if let Some(stem) = w.strip_suffix("es").filter(|s| s.ends_with(['s', 'x', 'h'])) {
                    return stem.to_string();
                }
            }
            match w.strip_suffix('s') {
                Some(stem) if w.len() > 3 && !w.ends_with("ss") => stem.to_string(),
                _ => w.to_string(),
            }
        })
        .collect()
}

/// Whether `phrase` occurs in `words` as consecutive words.
pub fn names_phrase(words: &[String], phrase: &[String]) -> bool {
    !phrase.is_empty() && words.windows(phrase.len()).any(|w| w == phrase)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Column;

    fn table(name: &str, columns: &[&str]) -> Table {
        Table::new(name, columns.iter().map(|c| Column::new(*c, "TEXT")).collect())
    }

    fn catalog() -> Catalog {
        Catalog::from_tables(vec![
            table("flight_2.airlines", &["uid", "Airline", "Abbreviation", "Country"]),
            table("flight_4.airlines", &["alid", "name", "iata", "icao", "callsign", "country", "active"]),
            table("flight_4.airports", &["apid", "name", "city", "country", "elevation"]),
            table("concert_singer.stadium", &["Stadium_ID", "Location", "Name", "Capacity"]),
            table("game.station_company", &["Station_ID", "Company_ID", "Rank_of_the_Year"]),
        ])
    }

    #[test]
    fn a_column_the_question_names_tells_look_alike_tables_apart() {
        let scores = name_scores("Which airline has abbreviation 'UAL'?", &catalog());
        let of = |t: &str| scores.get(t).copied().unwrap_or_default();
        assert!(of("flight_2.airlines") > of("flight_4.airlines"), "{scores:?}");
        assert!(of("flight_4.airlines") > 0.0, "the table's name is said: {scores:?}");
        assert!(!scores.contains_key("concert_singer.stadium"), "{scores:?}");
        assert!(scores.values().all(|s| (0.0..=1.0).contains(s)), "{scores:?}");
    }

    #[test]
    fn a_word_in_the_tables_name_counts_more_than_one_among_its_columns() {
        let catalog = Catalog::from_tables(vec![table("capacity", &["id"]), table("stadium", &["capacity"])]);
        let scores = name_scores("capacity", &catalog);
        assert!((scores["capacity"] - 1.0).abs() < 1e-6, "{scores:?}");
        assert!((scores["stadium"] - COLUMN_SHARE).abs() < 1e-6, "{scores:?}");
    }

    #[test]
    fn words_no_table_holds_leave_less_to_the_names() {
        let catalog = Catalog::from_tables(vec![table("capacity", &["id"]), table("stadium", &["name"])]);
        let said = |q: &str| name_scores(q, &catalog).get("capacity").copied().unwrap_or_default();
        assert!(said("capacity") > said("average capacity rounded"), "unknown words dilute");
        assert!((said("capacity in 2026") - said("capacity")).abs() < 1e-6, "numbers are values, not names");
    }

    #[test]
    fn function_words_are_not_names_even_where_a_column_holds_them() {
        // `Rank_of_the_Year` holds "of" and "the": rare in a catalog, so they would weigh a lot.
        let scores = name_scores("What is the capacity of the stadium?", &catalog());
        assert!(!scores.contains_key("game.station_company"), "{scores:?}");
        assert!(name_scores("what is the of", &catalog()).is_empty());
    }

    #[test]
    fn words_most_tables_have_weigh_little() {
        let catalog = Catalog::from_tables(vec![table("a", &["name", "size"]), table("b", &["name"])]);
        let scores = name_scores("the name and the size", &catalog);
        assert!(scores.get("b").copied().unwrap_or_default() < scores["a"], "{scores:?}");
    }

    #[test]
    fn stems_drop_plurals() {
        assert_eq!(
            stems("Authors, addresses and boxes of users; bus, class, categories"),
            ["author", "address", "and", "box", "of", "user", "bus", "class", "category"]
        );
    }

    #[test]
    fn camel_case_and_underscores_separate_words() {
        assert_eq!(stems(&split_camel_case("StuID")), ["stu", "id"]);
        assert_eq!(stems(&split_camel_case("AirportCode")), ["airport", "code"]);
        assert_eq!(stems(&split_camel_case("Home_Games")), ["home", "game"]);
        assert_eq!(stems(&split_camel_case("country")), ["country"]);
    }
}
