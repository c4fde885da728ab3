//! Maintenance commands of the workspace: `keys`, `demo`, `ingest`, `audit`, `finetune
//! export`, `catalog`, `index` and `index migrate`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use quarry::config::Config;
use quarry::history::LogFormat;
use quarry::keys;
use quarry::metadata::{AuditFilter, AuditKind, Metadata, StoredKey};
use quarry::pipeline::{load_catalog, load_default_embedder, Quarry};

use super::{
    admin_principal, open, open_without_llm, AuditCommand, CatalogCommand, FinetuneCommand, IngestCommand,
    KeysCommand, ProgressBar, EXIT_CONFLICTS,
};

/// `quarry keys ...`: needs only the metadata database.
pub(super) fn keys(
    config: &Config,
    command: KeysCommand,
    role: Option<String>,
    attributes: Vec<(String, String)>,
) -> Result<ExitCode> {
    let metadata = Metadata::open_location(&config.metadata_location())?;
    let operator = format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "local".into()));
    match command {
        KeysCommand::Create { name } => {
            let role = role.context("give the key's role with --role (e.g. --role analyst)")?;
            let (stored, key) = keys::create(
                &metadata,
                &config.policy,
                &name,
                &role,
                attributes.into_iter().collect(),
                &operator,
            )?;
            eprintln!("created key for {} (role {}); it is shown only now:", stored.name, stored.role);
            println!("{key}");
        }
        KeysCommand::List => {
            for key in metadata.keys()? {
                let attrs: Vec<String> = key.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!(
                    "{:<24} {:<18} {:<12} {:<20} created {} by {}{}",
                    key.name,
                    key.role,
                    format!("{}…", key.prefix),
                    attrs.join(","),
                    key.created_at,
                    key.created_by,
                    key.revoked_at.map(|at| format!(", REVOKED {at}")).unwrap_or_default()
                );
            }
        }
        KeysCommand::Revoke { name } => {
            if !keys::revoke(&metadata, &name, &operator)? {
                anyhow::bail!("no active key is named '{name}'; `quarry keys list` shows them");
            }
            println!("revoked the key of {name}");
        }
        KeysCommand::Demo => print_demo_keys(config, &keys::create_demo_keys(&metadata, &config.policy)?)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints demo keys and keeps them in `<workspace>/demo-keys.txt` (owner-only) for later.
pub(super) fn print_demo_keys(config: &Config, created: &[(StoredKey, String)]) -> Result<()> {
    let mut text = String::from("# Demo API keys, one per role (quarry keys demo re-creates them).\n");
    for (stored, key) in created {
        text.push_str(&format!("{:<26} {key}\n", stored.name));
    }
    let path = config.workspace.join("demo-keys.txt");
    std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    println!("{text}(kept in {})", path.display());
    Ok(())
}

pub(super) fn demo(config: Config, seed: u64, postgres: Option<&str>, schema: &str) -> Result<ExitCode> {
    // The demo is generated as SQLite in the workspace, then copied where asked.
    let sqlite = config.workspace.join("warehouse.sqlite");
    let warehouse = config.warehouse.sqlite_path().unwrap_or(&sqlite);
    let summary = quarry::demo::create(warehouse, &config.history, seed)?;
    if let Some(url) = postgres {
        let url =
            quarry::warehouse::PostgresUrl::parse(url).map_err(|e| anyhow::anyhow!("--postgres: {e}"))?;
        let copied = quarry::warehouse::copy_sqlite(warehouse, &url, schema)?;
        println!("copied to {url}, schema {schema}: {} tables, {} rows", copied.tables, copied.rows);
        for note in &copied.notes {
            println!("  {note}");
        }
    }
    println!(
        "demo warehouse {}: {} tables, {} rows; query log {}: {} queries",
        warehouse.display(),
        summary.tables,
        summary.rows,
        config.history.display(),
        summary.history_queries
    );
    let metadata = Metadata::open_location(&config.metadata_location())?;
    print_demo_keys(&config, &keys::create_demo_keys(&metadata, &config.policy)?)?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn ingest(config: Config, command: IngestCommand) -> Result<ExitCode> {
    let IngestCommand::History { file, format, llm_intents, json } = command;
    let format = match format.as_deref() {
        None => LogFormat::of_path(&file),
        Some("jsonl") => LogFormat::Jsonl,
        Some("csv") => LogFormat::Csv,
        Some(other) => anyhow::bail!("--format '{other}' is not jsonl or csv"),
    };
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let quarry = if llm_intents { open(config)? } else { open_without_llm(config)? };
    let mut bar = ProgressBar::new("ingesting");
    let report = quarry
        .ingest_history(&admin_principal(), &text, format, llm_intents, &mut |done, total| {
            bar.update(done, total)
        })
        .context("ingesting")?;
    bar.finish();
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} entries read: {} new, {} already known, {} skipped; {} intents by the LLM; {} ms ({:.0} new queries/s)",
            report.read, report.new, report.duplicates, report.skipped.len(), report.llm_intents,
            report.elapsed_ms, report.queries_per_second
        );
        for skipped in &report.skipped {
            println!("  skipped line {}: {}", skipped.line, skipped.reason);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn audit(config: Config, command: AuditCommand) -> Result<ExitCode> {
    let AuditCommand::Export { principal, kind, since, until, limit } = command;
    let metadata = Metadata::open_location(&config.metadata_location())?;
    let kind = match kind.as_deref() {
        None => None,
        Some(text) => Some(
            AuditKind::parse(text)
                .with_context(|| format!("--kind '{text}' is not one of: ask, sql, edit"))?,
        ),
    };
    let filter = AuditFilter { principal, kind, since, until, limit };
    for record in metadata.search_audit(&filter)? {
        println!("{}", serde_json::to_string(&record)?);
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn finetune(config: Config, command: FinetuneCommand) -> Result<ExitCode> {
    let FinetuneCommand::Export {
        out,
        spider,
        no_spider,
        no_history,
        synthetic,
        limit,
        heldout_percent,
        seed,
        keep_out,
    } = command;
    let embedder = load_default_embedder(&config).context("loading the embedding model")?;
    let workspace = if no_history {
        None
    } else {
        Some(Quarry::open(config.clone(), embedder.clone(), None).context("opening the workspace")?)
    };
    let keep_out = quarry::finetune::evaluation_sets_beside(&spider).into_iter().chain(keep_out).collect();
    let options = quarry::finetune::ExportOptions {
        out: out.clone(),
        keep_out,
        spider: (!no_spider).then_some(spider),
        spider_limit: limit,
        heldout_percent: heldout_percent.min(100),
        seed,
        synthetic_per_table: synthetic,
    };
    let report = quarry::finetune::export(&options, &config, workspace.as_ref(), embedder, &mut |step| {
        eprintln!("{step}")
    })?;
    println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    eprintln!(
        "wrote {} training and {} held-out examples to {} ({} left out as evaluation questions, {} duplicates, {} failed)",
        report.train,
        report.heldout,
        out.display(),
        report.excluded_for_evaluation,
        report.duplicates,
        report.failed_count
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) fn catalog(config: Config, command: CatalogCommand) -> Result<ExitCode> {
    let metadata = Metadata::open_location(&config.metadata_location())?;
    let loaded = load_catalog(&config, &metadata).context("loading the catalog")?;
    match command {
        CatalogCommand::Check => {
            let tables = loaded.catalog.tables().count();
            let documented = loaded.catalog.tables().filter(|t| !t.description.is_empty()).count();
            println!(
                "catalog ok: {tables} tables ({documented} described), {} glossary terms, governance from {}",
                loaded.catalog.glossary().len(),
                config.governance.display()
            );
            for warning in config.policy.unfiltered_children(&loaded.catalog) {
                println!("warning: {warning}");
            }
            for conflict in &loaded.conflicts {
                println!(
                    "conflict: {} '{}' (revision {} by {} at {}): {}",
                    conflict.target_kind,
                    conflict.target,
                    conflict.revision,
                    conflict.edited_by,
                    conflict.edited_at,
                    conflict.message
                );
            }
            Ok(if loaded.conflicts.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_CONFLICTS) })
        }
        CatalogCommand::Export { dir } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, text) in quarry::catalog::governance::export(&loaded.catalog) {
                let path = dir.join(&name);
                std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
                println!("wrote {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(super) fn index(config: Config) -> Result<ExitCode> {
    let quarry = open_without_llm(config)?;
    let report = quarry.index_report();
    println!(
        "{} tables and {} past queries indexed ({}, {} ms)",
        report.tables,
        report.queries,
        if report.rebuilt { "rebuilt" } else { "already up to date" },
        report.elapsed_ms
    );
    for skipped in &report.skipped {
        println!("  skipped log line {}: {}", skipped.line, skipped.reason);
    }
    Ok(ExitCode::SUCCESS)
}

/// `quarry index migrate --to URL|embedded`: brings the index in use up to date, then copies
/// every point to the other store, checking the counts. The source is left as it was.
pub(super) fn migrate_index(config: Config, to: &str) -> Result<ExitCode> {
    use quarry::vector_store::{self, ServerSettings, VectorsLocation};
    let target = if to.trim() == "embedded" {
        VectorsLocation::Embedded(config.workspace.join("vectors"))
    } else {
        let url = quarry::config::parse_vectors_url(to).map_err(|message| {
            anyhow::anyhow!("--to: {message}, or `embedded` for the index in the workspace")
        })?;
        VectorsLocation::Server(ServerSettings {
            url,
            api_key: config.vectors_api_key.clone(),
            prefix: config.vectors_prefix.clone(),
            timeout: config.vectors_timeout,
        })
    };
    let source = config.vectors_location();
    let same = match (&source, &target) {
        (VectorsLocation::Embedded(a), VectorsLocation::Embedded(b)) => a == b,
        (VectorsLocation::Server(a), VectorsLocation::Server(b)) => a.url == b.url && a.prefix == b.prefix,
        _ => false,
    };
    if same {
        anyhow::bail!("the index is already there: --to names the store in use (see [vectors] url)");
    }
    let dimension = {
        // Indexes what changed since the last start, so the copy is current; then lets go of the
        // store (the embedded one is one process's at a time).
        let quarry = open_without_llm(config.clone())?;
        let report = quarry.index_report();
        eprintln!("{} tables and {} past queries in the index", report.tables, report.queries);
        quarry.embedding_dimension()
    };
    let from = vector_store::open(&source, dimension).context("opening the index in use")?;
    let into = vector_store::open(&target, dimension).context("opening the target store")?;
    let mut bars = [ProgressBar::new("tables"), ProgressBar::new("queries")];
    let report = vector_store::migrate(from.as_ref(), into.as_ref(), &mut |collection, done, total| {
        let bar = &mut bars[usize::from(collection == vector_store::Collection::Queries)];
        bar.update(done, total);
    })?;
    for bar in &bars {
        bar.finish();
    }
    let counts: Vec<String> =
        report.copied.iter().map(|(collection, n)| format!("{n} {}", collection.name())).collect();
    println!("copied {} from {} to {} (counts checked)", counts.join(" and "), report.source, report.target);
    match target {
        VectorsLocation::Server(settings) => println!(
            "to use it, set [vectors] url = \"{}\" in quarry.toml (or QUARRY_VECTORS_URL) and restart",
            settings.url
        ),
        VectorsLocation::Embedded(_) => {
            println!("to use it, remove [vectors] url from quarry.toml (and QUARRY_VECTORS_URL) and restart")
        }
    }
    Ok(ExitCode::SUCCESS)
}
