//! Schema linking by name: how much of a question is said in a table's own words (its name and
//! its columns' names). Dense embeddings of whole table documents blur names that a question
//! states outright ("stadium capacity", "pets of students"), and in a large catalog a table
//! that is named can rank below look-alikes from other schemas; this signal lifts it.
//!
//! Each word is weighted by its rarity among the catalog's tables (inverse document
//! frequency), so `id` or `name`, which nearly every table has, count for little.
//!
//! In a catalog of several schemas (`schema.table` names, or several sources), each schema is
//! scored the same way over all its tables' names: a question's words are often spread over
//! several tables of the one schema it is about.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::catalog::{Catalog, Table};

/// English function words and the verbs that instruct ("count", "list", "show"): never a name,
/// though a few table or column names hold them
/// (`rank_of_the_year`), which would make them rare and so weighty. Spelled as `stems` leaves
/// them (`this` → `thi`, `does` → `doe`).
const FUNCTION_WORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been", "before",
    "but", "by", "can", "count", "did", "do", "doe", "each", "find", "for", "from", "give", "had", "has",
    "have", "her", "his", "how", "i", "if", "in", "into", "is", "it", "its", "list", "many", "me", "much",
    "my", "no", "not", "of", "on", "or", "our", "return", "show", "so", "than", "that", "the", "their",
    "them", "then", "there", "these", "they", "thi", "those", "to", "was", "we", "were", "what", "when",
    "where", "which", "who", "whom", "whose", "why", "will", "with", "you", "your",
];

/// What a word found only among a table's columns counts, beside one in the table's name.
const COLUMN_SHARE: f32 = 0.75;

/// How much of a question the catalog's names say: per table, and per schema.
#[derive(Debug, Default)]
pub struct NameScores {
    /// For each table that shares a word with the question, the share of the question's words
    /// (function words and numbers aside) that the table names, each word weighted by its
    /// rarity: from 0 to 1, 1 when every word is in the table's own name.
    pub tables: BTreeMap<String, f32>,
    /// The same share for each schema (`schema_of`), over the words any of its tables names:
    /// which schema the question is about, when words are spread over several of its tables.
    /// Empty when the catalog has one schema only.
    pub schemas: BTreeMap<String, f32>,
}

impl NameScores {
    /// The score of `table`'s schema (0 when it names nothing of the question).
    pub fn schema_of_table(&self, table: &Table) -> f32 {
        self.schemas.get(schema_of(table)).copied().unwrap_or_default()
    }
}

/// The schema a table lives in: the qualifier of a `schema.table` name, else its source.
pub fn schema_of(table: &Table) -> &str {
    table.name.rsplit_once('.').map(|(schema, _)| schema).unwrap_or(&table.source)
}

/// Scores the catalog's tables and schemas by the words of `question` they name.
pub fn name_scores(question: &str, catalog: &Catalog) -> NameScores {
    let asked: BTreeSet<String> =
        stems(question).into_iter().filter(|w| !FUNCTION_WORDS.contains(&w.as_str())).collect();
    if asked.is_empty() {
        return NameScores::default();
    }
    let vocabularies: Vec<(&Table, Vocabulary)> = catalog.tables().map(|t| (t, Vocabulary::of(t))).collect();
    // `ordered` asks about `order`, `booking` about `book`, where the catalog has the stem.
    let known: BTreeSet<&str> = vocabularies.iter().flat_map(|(_, v)| v.all()).collect();
    let asked: BTreeSet<String> = asked.into_iter().map(|w| base_form(w, &known)).collect();
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
        return NameScores::default();
    }
    let mut scores = NameScores::default();
    // Per schema, the weight each word gets from the best of its tables.
    let mut by_schema: BTreeMap<&str, HashMap<&str, f32>> = BTreeMap::new();
    for (table, vocabulary) in &vocabularies {
        let words = by_schema.entry(schema_of(table)).or_default();
        let mut matched = 0.0;
        for (word, weight) in &rarity {
            let share = vocabulary.share(word);
            matched += share.unwrap_or_default() * weight;
            // The schema's own name speaks for it as a table's name does.
            let for_schema = if vocabulary.schema.contains(*word) { Some(1.0) } else { share };
            if let Some(share) = for_schema {
                let best = words.entry(word).or_default();
                *best = best.max(share * weight);
            }
        }
        if matched > 0.0 {
            scores.tables.insert(table.name.clone(), matched / said);
        }
    }
    if by_schema.len() > 1 {
        scores.schemas = by_schema
            .into_iter()
            .map(|(schema, words)| (schema.to_string(), words.values().sum::<f32>() / said))
            .filter(|(_, score)| *score > 0.0)
            .collect();
    }
    scores
}

/// A table's words: those of its schema's name (the qualifier of a `schema.table` name; a
/// source's name is not read as words), its own name and its columns' names.
struct Vocabulary {
    schema: BTreeSet<String>,
    name: BTreeSet<String>,
    columns: BTreeSet<String>,
}

impl Vocabulary {
    fn of(table: &Table) -> Vocabulary {
        let own_name = table.name.rsplit_once('.').map(|(_, name)| name).unwrap_or(&table.name);
        let name: BTreeSet<String> = stems(&split_camel_case(own_name)).into_iter().collect();
        let schema = table
            .name
            .rsplit_once('.')
            .map(|(schema, _)| {
                stems(&split_camel_case(schema)).into_iter().filter(|w| !name.contains(w)).collect()
            })
            .unwrap_or_default();
        let columns = table
            .columns
            .iter()
            .flat_map(|c| stems(&split_camel_case(&c.name)))
            .filter(|w| !name.contains(w))
            .collect();
        Vocabulary { schema, name, columns }
    }

    /// Each word once, wherever it is.
    fn all(&self) -> BTreeSet<&str> {
        self.schema.iter().chain(&self.name).chain(&self.columns).map(String::as_str).collect()
    }

    /// What `word` counts for the table: 1 in its name, `COLUMN_SHARE` among its columns.
    fn share(&self, word: &str) -> Option<f32> {
        if self.name.contains(word) {
            Some(1.0)
        } else if self.columns.contains(word) {
            Some(COLUMN_SHARE)
        } else {
            None
        }
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

/// `word` as the catalog spells it: itself when some name holds it, else without an `-ed` or
/// `-ing` ending when that is a name (`ordered` → `order`, `located` → `locate`), else itself.
fn base_form(word: String, known: &BTreeSet<&str>) -> String {
    if known.contains(word.as_str()) || word.len() < 5 {
        return word;
    }
    let candidates = [
        word.strip_suffix("ed").map(str::to_string),
        word.strip_suffix('d').map(str::to_string),
        word.strip_suffix("ing").map(str::to_string),
        word.strip_suffix("ing").map(|w| format!("{w}e")),
    ];
    candidates.into_iter().flatten().find(|c| c.len() > 2 && known.contains(c.as_str())).unwrap_or(word)
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
        let scores = name_scores("Which airline has abbreviation 'UAL'?", &catalog()).tables;
        let of = |t: &str| scores.get(t).copied().unwrap_or_default();
        assert!(of("flight_2.airlines") > of("flight_4.airlines"), "{scores:?}");
        assert!(of("flight_4.airlines") > 0.0, "the table's name is said: {scores:?}");
        assert!(!scores.contains_key("concert_singer.stadium"), "{scores:?}");
        assert!(scores.values().all(|s| (0.0..=1.0).contains(s)), "{scores:?}");
    }

    #[test]
    fn a_word_in_the_tables_name_counts_more_than_one_among_its_columns() {
        let catalog = Catalog::from_tables(vec![table("capacity", &["id"]), table("stadium", &["capacity"])]);
        let scores = name_scores("capacity", &catalog).tables;
        assert!((scores["capacity"] - 1.0).abs() < 1e-6, "{scores:?}");
        assert!((scores["stadium"] - COLUMN_SHARE).abs() < 1e-6, "{scores:?}");
    }

    #[test]
    fn words_no_table_holds_leave_less_to_the_names() {
        let catalog = Catalog::from_tables(vec![table("capacity", &["id"]), table("stadium", &["name"])]);
        let said = |q: &str| name_scores(q, &catalog).tables.get("capacity").copied().unwrap_or_default();
        assert!(said("capacity") > said("average capacity rounded"), "unknown words dilute");
        assert!((said("capacity in 2026") - said("capacity")).abs() < 1e-6, "numbers are values, not names");
    }

    #[test]
    fn function_words_are_not_names_even_where_a_column_holds_them() {
        // `Rank_of_the_Year` holds "of" and "the": rare in a catalog, so they would weigh a lot.
        let scores = name_scores("What is the capacity of the stadium?", &catalog()).tables;
        assert!(!scores.contains_key("game.station_company"), "{scores:?}");
        assert!(name_scores("what is the of", &catalog()).tables.is_empty());
    }

    #[test]
    fn words_most_tables_have_weigh_little() {
        let catalog = Catalog::from_tables(vec![table("a", &["name", "size"]), table("b", &["name"])]);
        let scores = name_scores("the name and the size", &catalog).tables;
        assert!(scores.get("b").copied().unwrap_or_default() < scores["a"], "{scores:?}");
    }

    #[test]
    fn the_schema_that_holds_the_questions_words_scores_above_a_look_alike() {
        let catalog = Catalog::from_tables(vec![
            table("singer.singer", &["Singer_ID", "Name", "Age"]),
            table("singer.song", &["Song_ID", "Singer_ID", "Title"]),
            table("concert_singer.singer", &["Singer_ID", "Name", "Age"]),
            table("concert_singer.concert", &["concert_ID", "Stadium_ID", "Year"]),
            table("concert_singer.stadium", &["Stadium_ID", "Capacity"]),
            table("pets_1.pets", &["PetID", "PetType", "weight"]),
            table("pets_1.student", &["StuID", "Age", "Sex"]),
        ]);
        let scores = name_scores("How many singers performed in concerts at each stadium?", &catalog);
        // The two singer tables say the same of the question; their schemas do not.
        assert_eq!(scores.tables["singer.singer"], scores.tables["concert_singer.singer"], "{scores:?}");
        assert!(scores.schemas["concert_singer"] > scores.schemas["singer"], "{scores:?}");
        assert!(scores.schemas.values().all(|s| (0.0..=1.0).contains(s)), "{scores:?}");
        let concert_singer = &catalog.table("concert_singer.singer").expect("table");
        assert_eq!(scores.schema_of_table(concert_singer), scores.schemas["concert_singer"]);
    }

    #[test]
    fn a_schemas_name_speaks_for_the_schema_not_for_each_of_its_tables() {
        let catalog = Catalog::from_tables(vec![
            table("driving_school.addresses", &["address_id", "city"]),
            table("school_player.school", &["School_ID", "Enrollment"]),
        ]);
        let scores = name_scores("Count the number of schools.", &catalog);
        assert!(!scores.tables.contains_key("driving_school.addresses"), "{scores:?}");
        assert!(scores.tables["school_player.school"] > 0.0, "{scores:?}");
        assert!(scores.schemas["driving_school"] > 0.0, "{scores:?}");
    }

    #[test]
    fn a_catalog_of_one_schema_has_no_schema_scores() {
        let catalog =
            Catalog::from_tables(vec![table("orders", &["order_id"]), table("refunds", &["order_id"])]);
        let scores = name_scores("How many orders were refunded?", &catalog);
        assert!(scores.schemas.is_empty(), "{scores:?}");
        assert!(scores.tables["orders"] > 0.0, "{scores:?}");
    }

    #[test]
    fn endings_fold_to_the_words_the_catalog_has() {
        let catalog =
            Catalog::from_tables(vec![table("orders", &["order_id", "located_at"]), table("books", &["id"])]);
        let scores = name_scores("products ordered", &catalog).tables;
        assert!(scores.contains_key("orders"), "ordered asks about orders: {scores:?}");
        let known: BTreeSet<&str> = ["order", "book", "locate"].into_iter().collect();
        assert_eq!(base_form("ordered".into(), &known), "order");
        assert_eq!(base_form("booking".into(), &known), "book");
        assert_eq!(base_form("locating".into(), &known), "locate");
        assert_eq!(base_form("located".into(), &known), "locate");
        assert_eq!(base_form("shipped".into(), &known), "shipped", "no name holds `shipp`");
        assert_eq!(base_form("red".into(), &known), "red", "short words stay");
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
