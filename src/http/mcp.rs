//! The MCP server: five read-only tools over the same pipeline, policy and audit as the HTTP
//! API — `ask`, `run_sql`, `search_tables`, `search_queries`, `describe_table`. Mounted at
//! `/mcp` (Streamable HTTP, the API key as bearer, checked before any tool runs) and served on
//! stdio by `quarry mcp` (the key from `QUARRY_API_KEY`). A refusal is a tool error carrying the
//! violations, as the HTTP error body has them.

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::pipeline::{Answer, AskOptions, CatalogRequestError, Principal, Quarry};
use crate::warehouse::{Cancel, ResultSet};

/// Rows a tool returns at most: tool output costs the calling model's context.
const MAX_ROWS: usize = 100;

/// What the server tells a client about itself.
const INSTRUCTIONS: &str = "Quarry answers questions about the organisation's warehouse with governed SQL. \
Prefer `ask` for questions in plain language; use `search_tables` and `describe_table` to explore, and \
`run_sql` for SQL you wrote. Every query is validated under your role's policy; refusals say why and how to fix.";

/// The MCP service of one workspace. Over HTTP the principal comes with each request (set by
/// the HTTP layer from the API key); on stdio it is fixed at start.
#[derive(Clone)]
pub struct QuarryMcp {
    quarry: Arc<Quarry>,
    stdio_principal: Option<Principal>,
    /// Over HTTP, the per-key limit on asking that `POST /ask` has (`[server] asks_per_minute`).
    ask_gate: Option<AskGate>,
    tool_router: ToolRouter<QuarryMcp>,
}

/// Takes one ask from a principal's allowance, or says why not (as a tool error).
pub type AskGate = Arc<dyn Fn(&Principal) -> Result<(), ToolError> + Send + Sync>;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AskArgs {
    /// The question in plain language.
    pub question: String,
    /// Only these tables may be read (optional).
    #[serde(default)]
    pub tables: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SqlArgs {
    /// One SELECT statement (SQLite dialect).
    pub sql: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchArgs {
    /// A question or words.
    pub query: String,
    /// How many results, 1 to 20 (default 5).
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct TableArgs {
    /// The table's name.
    pub name: String,
}

/// A tool failure as the HTTP API would send it: `error` code, `message`, and the `violations`
/// of a refusal.
pub type ToolError = (u16, Value);

impl QuarryMcp {
    /// The service for HTTP: each request's principal is read from the request, and each ask
    /// passes `ask_gate` first.
    pub fn over_http(quarry: Arc<Quarry>, ask_gate: AskGate) -> QuarryMcp {
        QuarryMcp {
            quarry,
            stdio_principal: None,
            ask_gate: Some(ask_gate),
            tool_router: Self::tool_router(),
        }
    }

    /// The service for stdio, acting as `principal` throughout (one local client: no limit).
    pub fn over_stdio(quarry: Arc<Quarry>, principal: Principal) -> QuarryMcp {
        QuarryMcp {
            quarry,
            stdio_principal: Some(principal),
            ask_gate: None,
            tool_router: Self::tool_router(),
        }
    }

    fn principal(&self, context: &RequestContext<RoleServer>) -> Result<Principal, ErrorData> {
        if let Some(principal) = &self.stdio_principal {
            return Ok(principal.clone());
        }
        context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Principal>())
            .cloned()
            .ok_or_else(|| ErrorData::invalid_request("no authenticated principal on this request", None))
    }

    /// Runs `work` off the async threads as the request's principal; its result, or its error
    /// as a tool error. `work` sees a `Cancel` raised when the client goes away.
    async fn call<T: serde::Serialize + Send + 'static>(
        &self,
        context: &RequestContext<RoleServer>,
        work: impl FnOnce(&Quarry, &Principal, &Cancel) -> Result<T, ToolError> + Send + 'static,
    ) -> Result<CallToolResult, ErrorData> {
        let principal = self.principal(context)?;
        let quarry = self.quarry.clone();
        let cancel = Cancel::new();
        let watcher = cancel.clone();
        let token = context.ct.clone();
        let watch = tokio::spawn(async move {
            token.cancelled().await;
            watcher.cancel();
        });
        let outcome = tokio::task::spawn_blocking(move || work(&quarry, &principal, &cancel)).await;
        watch.abort();
        match outcome {
            Ok(Ok(value)) => Ok(CallToolResult::structured(
                serde_json::to_value(value).map_err(|e| ErrorData::internal_error(e.to_string(), None))?,
            )),
            Ok(Err((_, body))) => Ok(CallToolResult::structured_error(body)),
            Err(e) => Err(ErrorData::internal_error(format!("the tool failed: {e}"), None)),
        }
    }
}

/// What a search tool finds, as `{ <key>: [...] }`.
type Search<T> = fn(&Quarry, &Principal, &str, usize) -> Result<Vec<T>, CatalogRequestError>;

impl QuarryMcp {
    /// A search tool: `run` with the query and a limit of 1 to 20 (default 5).
    async fn search<T: serde::Serialize + Send + 'static>(
        &self,
        context: &RequestContext<RoleServer>,
        args: SearchArgs,
        key: &'static str,
        run: Search<T>,
    ) -> Result<CallToolResult, ErrorData> {
        let limit = args.limit.unwrap_or(5).clamp(1, 20);
        self.call(context, move |quarry, principal, _| {
            run(quarry, principal, &args.query, limit)
                .map(|found| json!({ key: found }))
                .map_err(super::error_body)
        })
        .await
    }
}

/// The rows of a result, at most `MAX_ROWS` of them, saying when more were cut.
fn rows(result: &ResultSet) -> Value {
    let shown = result.rows.len().min(MAX_ROWS);
    json!({
        "columns": result.columns,
        "rows": &result.rows[..shown],
        "row_count": result.rows.len(),
        "truncated": result.truncated || shown < result.rows.len(),
    })
}

/// An answer as a calling model needs it: the SQL, the rows, the tables with their evidence,
/// and how far to trust it.
fn compact(answer: &Answer) -> Value {
    json!({
        "sql": answer.sql,
        "result": rows(&answer.result),
        "tables": answer.tables.iter().map(|t| json!({
            "name": t.name, "tier": t.tier, "owner": t.owner, "deprecated_for": t.deprecated_for, "evidence": t.evidence,
        })).collect::<Vec<_>>(),
        "confidence": answer.confidence,
        "findings": answer.findings.iter().map(|f| &f.message).collect::<Vec<_>>(),
        "periods": answer.periods,
        "reused_verified_query": answer.reused.is_some(),
        "other_readings": answer.choices.iter().filter(|c| !c.shown).map(|c| json!({
            "reading": c.reading, "sql": c.sql, "row_count": c.row_count, "votes": c.votes,
        })).collect::<Vec<_>>(),
    })
}

#[tool_router]
impl QuarryMcp {
    #[tool(
        description = "Answer a question about the warehouse: governed SQL, its rows, the tables with evidence, and a confidence.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn ask(
        &self,
        Parameters(args): Parameters<AskArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let gate = self.ask_gate.clone();
        self.call(&context, move |quarry, principal, cancel| {
            if let Some(gate) = gate {
                gate(principal)?;
            }
            let options = AskOptions { tables: args.tables, cancel: cancel.clone(), ..AskOptions::default() };
            quarry
                .ask_with(&args.question, principal, &options)
                .map(|a| compact(&a))
                .map_err(super::error_body)
        })
        .await
    }

    #[tool(
        description = "Validate and run one SELECT under your role's policy (masks, row filters and the row cap applied).",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn run_sql(
        &self,
        Parameters(args): Parameters<SqlArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        self.call(&context, move |quarry, principal, cancel| {
            quarry
                .run_sql_with(&args.sql, principal, cancel)
                .map(|a| json!({ "sql": a.sql, "result": rows(&a.result), "governance": a.governance }))
                .map_err(super::error_body)
        })
        .await
    }

    #[tool(
        description = "Tables that fit a question, trustworthy first, with tier, owner and evidence.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn search_tables(
        &self,
        Parameters(args): Parameters<SearchArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        self.search(&context, args, "tables", Quarry::search_tables).await
    }

    #[tool(
        description = "Past queries close to a question in intent, among those you may run.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn search_queries(
        &self,
        Parameters(args): Parameters<SearchArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        self.search(&context, args, "queries", Quarry::search_queries).await
    }

    #[tool(
        description = "A table as your role may see it: columns, types, tags, keys, governance; no samples of columns you may not read.",
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn describe_table(
        &self,
        Parameters(args): Parameters<TableArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        self.call(&context, move |quarry, principal, _| {
            quarry.table_detail(principal, &args.name).map_err(super::error_body)
        })
        .await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for QuarryMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("quarry", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }
}

/// Serves MCP on stdin and stdout until the client closes them.
pub async fn serve_stdio(quarry: Arc<Quarry>, principal: Principal) -> anyhow::Result<()> {
    use rmcp::ServiceExt;
    let running = QuarryMcp::over_stdio(quarry, principal).serve(rmcp::transport::stdio()).await?;
    running.waiting().await?;
    Ok(())
}
