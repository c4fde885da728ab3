//! Answering a question: the kept answer, retrieval, verified queries, then the model's
//! first round (greedy and sampled candidates together), repairs with specific feedback,
//! checks, the vote and the answer with its confidence.

use super::*;

impl Quarry {
    /// Answers a question in plain language.
    pub fn ask(&self, question: &str, principal: &Principal) -> Result<Answer, AskError> {
        self.ask_with(question, principal, &AskOptions::default())
    }

    /// Answers a question, with `options` (picked tables, samples, the evaluation's leakage
    /// guard).
    pub fn ask_with(
        &self,
        question: &str,
        principal: &Principal,
        options: &AskOptions,
    ) -> Result<Answer, AskError> {
        self.ask_with_progress(question, principal, options, &|_| {})
    }

    /// Answers a question, telling `progress` as each stage starts.
    pub fn ask_with_progress(
        &self,
        question: &str,
        principal: &Principal,
        options: &AskOptions,
        progress: &(dyn Fn(Stage) + Sync),
    ) -> Result<Answer, AskError> {
        let started = Instant::now();
        let outcome = self.authorize(principal, Action::Ask).map_err(AskError::from).and_then(|policy| {
            let Some(choice) = &options.thread else {
                return self.ask_inner(question, principal, policy, options, progress);
            };
            let thread = self.open_thread(choice, principal)?;
            let options = AskOptions { follows: thread.follows.clone(), ..options.clone() };
            let mut answer = self.ask_inner(question, principal, policy, &options, progress)?;
            answer.thread = self.record_turn(&thread, principal, &answer);
            Ok(answer)
        });
        self.audit_ask(principal, question, started, outcome)
    }

    /// Audits an ask (or a choice of reading) of `question` begun at `started`, and gives its
    /// outcome with the total time; no answer is given when the audit record cannot be written.
    pub(super) fn audit_ask(
        &self,
        principal: &Principal,
        question: &str,
        started: Instant,
        outcome: Result<Answer, AskError>,
    ) -> Result<Answer, AskError> {
        let total_ms = started.elapsed().as_millis() as u64;
        let (audit_outcome, sql, rows, detail) = match &outcome {
            Ok(a) => (
                Outcome::Answered,
                Some(a.sql.clone()),
                Some(a.result.rows.len()),
                serde_json::json!({
                    "tables": a.tables.iter().map(|t| &t.name).collect::<Vec<_>>(),
                    "repairs": a.repairs.len(),
                    "model": a.model,
                    "adapter": a.adapter,
                    "governance": a.governance,
                    "thread": a.thread,
                    "readings_offered": a.choices.len(),
                    "reading_shown": a.choices.iter().position(|c| c.shown),
                    "timings": a.timings,
                }),
            ),
            Err(AskError::Refused { sql, refusal }) => (
                Outcome::Refused,
                Some(sql.clone()),
                None,
                serde_json::json!({ "violations": refusal.violations }),
            ),
            Err(e @ AskError::Unanswerable { sql, refusal, .. }) => (
                Outcome::Failed,
                Some(sql.clone()),
                None,
                serde_json::json!({ "unanswerable": e.to_string(), "violations": refusal.violations }),
            ),
            Err(AskError::Execution { sql, source }) => {
                (Outcome::Failed, Some(sql.clone()), None, serde_json::json!({ "error": source.to_string() }))
            }
            Err(e @ AskError::Forbidden(_)) => {
                (Outcome::Refused, None, None, serde_json::json!({ "error": e.to_string() }))
            }
            Err(e) => (Outcome::Failed, None, None, serde_json::json!({ "error": e.to_string() })),
        };
        tracing::debug!(principal = %principal.name, kind = "ask", outcome = audit_outcome.as_str(), total_ms, "request");
        let record = Quarry::request_audit(principal, AuditKind::Ask, Some(question), sql, total_ms);
        self.metadata.audit(&AuditRecord { outcome: audit_outcome, row_count: rows, detail, ..record })?;
        let outcome = outcome.map(|mut a| {
            a.timings.total_ms = total_ms;
            a
        });
        self.metrics.record_ask(audit_outcome, &outcome);
        outcome
    }

    /// What retrieval offers for `question`: tables, examples, a reusable verified query; as
    /// `ask` would use them (the evaluation records it for answers that failed).
    pub fn retrieval(
        &self,
        question: &str,
        principal: &Principal,
        options: &AskOptions,
    ) -> Result<crate::retrieve::Retrieved, AskError> {
        let policy = self.authorize(principal, Action::Ask)?;
        let catalog = self.catalog();
        let visible = policy.visible_catalog(&catalog);
        let options = self.scoped(options, &catalog, &visible, policy, principal);
        let question = self.question(question)?;
        let history = self.history();
        let trust = self.trust_signals(&catalog, &history);
        let snapshot = Snapshot {
            catalog: &catalog,
            visible: &visible,
            history: &history,
            trust: &trust,
            policy,
            principal,
        };
        self.retrieve_for(question, &snapshot, &options)
    }

    /// The first prompt `ask` would show the model for `question` (no verified query reused;
    /// the fine-tuning export writes it as training data).
    pub fn first_prompt(
        &self,
        question: &str,
        principal: &Principal,
        options: &AskOptions,
    ) -> Result<crate::llm::ChatPrompt, AskError> {
        let policy = self.authorize(principal, Action::Ask)?;
        let question = self.question(question)?;
        let catalog = self.catalog();
        let visible = policy.visible_catalog(&catalog);
        let history = self.history();
        let options = &self.scoped(options, &catalog, &visible, policy, principal);
        let trust = self.trust_signals(&catalog, &history);
        let snapshot = Snapshot {
            catalog: &catalog,
            visible: &visible,
            history: &history,
            trust: &trust,
            policy,
            principal,
        };
        let retrieved = self.retrieve_for(question, &snapshot, options)?;
        let question = question.text();
        let build = self.prompt_builder(question, &retrieved, &visible, &history, options);
        let prompt = build(&[]);
        Ok(prompt)
    }

    /// Builds the prompt for `question` from what retrieval found, given the failed attempts
    /// so far: the tables and examples, the join keys analysts used between the offered tables
    /// (deprecated ones are not offered), today's date, within the model's budget.
    pub(super) fn prompt_builder<'a>(
        &self,
        question: &'a str,
        retrieved: &'a crate::retrieve::Retrieved,
        visible: &'a Catalog,
        history: &HistoryState,
        options: &AskOptions,
    ) -> impl Fn(&[FailedAttempt]) -> crate::llm::ChatPrompt + 'a {
        let offered: Vec<&str> =
            retrieved.tables.iter().filter(|c| c.deprecated_for.is_none()).map(|c| c.name.as_str()).collect();
        let joins =
            prompt::join_hints(&history.join_counts, &offered, visible, self.config.retrieval_join_hints);
        let today = options.today.clone().unwrap_or_else(crate::calendar::today);
        let budget = PromptBudget::for_model(
            self.config.context_tokens as usize,
            self.config.max_tokens,
            self.config.max_repairs,
            self.config.retrieval_columns,
        );
        let grounding = self.config.answer;
        let follows = options.follows.clone();
        let table_reads: std::collections::BTreeMap<String, usize> =
            history.table_usage.iter().map(|(table, usage)| (table.clone(), usage.queries)).collect();
        move |failed: &[FailedAttempt]| {
            let context = prompt::Context {
                question,
                retrieved,
                catalog: visible,
                today: &today,
                joins: &joins,
                grounding,
                follows: &follows,
                table_reads: &table_reads,
            };
            prompt::build(&context, failed, budget)
        }
    }

    /// What the analyst said beyond the question, as the rewrites read it (`prompt::said`).
    fn said(
        &self,
        question: &str,
        retrieved: &crate::retrieve::Retrieved,
        visible: &Catalog,
        options: &AskOptions,
    ) -> crate::amend::Said {
        let table_reads = std::collections::BTreeMap::new();
        let context = prompt::Context {
            question,
            retrieved,
            catalog: visible,
            today: "",
            joins: &[],
            grounding: self.config.answer,
            follows: &options.follows,
            table_reads: &table_reads,
        };
        prompt::said(&context)
    }

    pub(super) fn retrieve_for(
        &self,
        question: Question,
        snapshot: &Snapshot,
        options: &AskOptions,
    ) -> Result<crate::retrieve::Retrieved, AskError> {
        let Snapshot { catalog, visible, history, trust, policy, principal } = *snapshot;
        let question = question.text();
        let budget = RetrievalBudget {
            tables: self.config.retrieval_tables,
            joined: self.config.retrieval_joined_tables,
            examples: self.config.retrieval_examples,
            reuse: self.config.retrieval_reuse,
        };
        // Past queries with the excluded SQL are not searched, and their reads of tables do
        // not count as usage.
        let mut scope = Scope::default();
        let mut excluded_reads: BTreeMap<String, usize> = BTreeMap::new();
        for key in &options.exclude_sql_keys {
            scope.exclude.push(Equals { field: "sql_key", value: key.clone().into() });
            for q in history.history.usable().filter(|q| crate::history::sql_key(&q.logged.sql) == *key) {
                for table in &q.tables {
                    *excluded_reads.entry(table.to_lowercase()).or_default() += 1;
                }
            }
        }
        let trust = match excluded_reads.is_empty() {
            true => std::borrow::Cow::Borrowed(trust),
            false => std::borrow::Cow::Owned(trust.less_reads(&excluded_reads)),
        };
        // A follow-up ("only the refunded ones") means little alone: retrieval reads it with
        // the question it follows.
        let searched = match options.follows.last() {
            Some(turn) => format!("{} {question}", turn.question),
            None => question.to_string(),
        };
        let mut retrieved = retrieve(
            &searched,
            visible,
            crate::retrieve::VectorSearch { embedder: self.embedder.as_ref(), store: self.store.as_ref() },
            budget,
            &scope,
            &trust,
            // Past queries the principal may not be shown are neither examples nor evidence.
            &|sql| crate::history::visible_to(sql, catalog, policy, principal),
        )?;
        if let Some(picked) = &options.tables {
            retrieved.tables = picked_tables(picked, retrieved.tables, visible)?;
            retrieved.reusable.clear();
        } else if let Some(turn) = options.follows.last() {
            retrieved.tables = followed_tables(&turn.tables, retrieved.tables, visible);
        }
        // A verified query answers a question alone, never a follow-up that changes another.
        if !options.follows.is_empty() {
            retrieved.reusable.clear();
        }
        // A verified query is reused only while its pair is verified now, naming who said so.
        retrieved.reusable.retain_mut(|reuse| {
            let pair = history.history.queries.iter().find(|q| q.hash == reuse.hash).map(|q| q.pair_key());
            match pair.and_then(|pair| history.reviews.get(&pair)).map(|r| &r.standing) {
                Some(crate::history::verdict::Standing::Verified { by, at }) => {
                    reuse.verified_by = Some(by.clone());
                    reuse.verified_at = Some(at.clone());
                    true
                }
                _ => false,
            }
        });
        Ok(retrieved)
    }

    pub(super) fn ask_inner(
        &self,
        question: &str,
        principal: &Principal,
        policy: &Policy,
        options: &AskOptions,
        progress: &(dyn Fn(Stage) + Sync),
    ) -> Result<Answer, AskError> {
        let asked = self.question(question)?;
        let question = asked.text();
        progress(Stage::Retrieving);
        // One snapshot of the catalog for the whole request, even if a steward edits meanwhile.
        let catalog = self.catalog();
        // The model is shown only what the role may read.
        let visible = policy.visible_catalog(&catalog);
        let options = &self.scoped(options, &catalog, &visible, policy, principal);
        let mut timings = Timings::default();
        let history = self.history();
        let today = options.today.clone().unwrap_or_else(crate::calendar::today);
        let cache_key = answer_cache::Key::new(question, principal, options, &today);
        if let Some(kept) = self.answers.get(&cache_key, &catalog, &history) {
            if let Some(answer) = self.serve_kept(question, kept, &catalog, policy, principal, options) {
                return Ok(answer);
            }
        }
        let trust = self.trust_signals(&catalog, &history);
        let snapshot = Snapshot {
            catalog: &catalog,
            visible: &visible,
            history: &history,
            trust: &trust,
            policy,
            principal,
        };
        let mut retrieved = self.retrieve_for(asked, &snapshot, options)?;
        timings.embed_ms = retrieved.embed_ms;
        timings.retrieve_ms = retrieved.search_ms;

        // Asset first: a verified past query asking the same, or the same with other literals,
        // is the answer, when this principal may run it.
        let context = Reusing { snapshot, today: &today, cancel: &options.cancel };
        for reuse in std::mem::take(&mut retrieved.reusable) {
            match self.reuse(question, reuse, &retrieved, &context, timings.clone()) {
                Ok(answer) => return Ok(answer),
                Err(reason) => tracing::debug!("not reusing the verified query: {reason}"),
            }
        }

        let llm = self.llm.as_deref().ok_or(LlmError::NotLoaded)?;
        let params = GenerationParams::greedy(self.config.max_tokens, prompt::STOP);
        let build = self.prompt_builder(question, &retrieved, &visible, &history, options);
        let picked: Option<Vec<String>> =
            options.tables.as_ref().map(|_| retrieved.tables.iter().map(|t| t.name.clone()).collect());
        let said = self.said(question, &retrieved, &visible, options);
        let context = Attempting {
            question,
            said: &said,
            llm,
            sort_groups: self.config.answer.sort_groups,
            rewrites: self.config.answer.rewrites,
            catalog: &catalog,
            visible: &visible,
            policy,
            principal,
            progress,
            attempts: Cell::new(0),
            picked: picked.as_deref(),
            cancel: &options.cancel,
            turn: Default::default(),
        };

        // The first round: the greedy answer and, with `[llm] samples` above 1, sampled
        // candidates from the same prompt, generated together (one prefill, one batch).
        let samples = options.samples.unwrap_or(self.config.samples()).max(1);
        let first_params: Vec<GenerationParams> = std::iter::once(params.clone())
            .chain((1..samples).map(|seed| params.sampled(SAMPLE_TEMPERATURE, seed as u32)))
            .collect();
        let mut first_round = self.generate(&context, &build(&[]), &first_params, &mut timings)?.into_iter();
        let mut greedy_first = first_round.next();
        let sampled: Vec<(usize, Generation)> = first_round.collect();

        // The greedy answer, repaired when refused or when it fails to run.
        let mut failed: Vec<FailedAttempt> = Vec::new();
        let mut candidates = Vec::new();
        let mut last_error = None;
        for _attempt in 0..=self.config.max_repairs {
            let tried = match greedy_first.take() {
                Some((attempt, generation)) => {
                    self.consider(&context, attempt, generation, true, &mut timings)
                }
                None => self.attempt(&context, &build(&failed), &params, &mut timings),
            };
            match tried {
                Ok(candidate) => {
                    candidates.push(candidate);
                    break;
                }
                // A policy refusal is final: a repair round would search for a way around it.
                Err(AskError::Refused { sql, refusal }) if refusal.is_policy() => {
                    return Err(AskError::Refused { sql, refusal });
                }
                Err(AskError::Refused { sql, refusal }) => {
                    failed.push(FailedAttempt { sql: sql.clone(), error: repair_feedback(&refusal) });
                    last_error = Some(AskError::Refused { sql, refusal });
                }
                Err(AskError::Execution { sql, source }) => {
                    failed.push(FailedAttempt { sql: sql.clone(), error: source.to_string() });
                    last_error = Some(AskError::Execution { sql, source });
                }
                Err(other) => return Err(other),
            }
        }

        // What a careful analyst would check; one repair round on a finding that names a fix.
        let periods = crate::timeframe::resolve(question, &today);
        let checks = self.config.answer.checks;
        let findings_of = |candidate: &Candidate| -> Vec<Finding> {
            if !checks {
                return Vec::new();
            }
            check(&Subject {
                question,
                sql: &candidate.draft,
                result: &candidate.result,
                catalog: &visible,
                periods: &periods,
            })
        };
        let mut corrected = None;
        if let Some(first) = candidates.first() {
            let found = findings_of(first);
            let repairable: Vec<&str> =
                found.iter().filter(|f| f.repairable()).map(|f| f.message.as_str()).collect();
            if !repairable.is_empty() {
                let message = repairable.join("\n");
                let mut retry = failed.clone();
                retry.push(FailedAttempt {
                    sql: first.draft.clone(),
                    error: format!("It ran, but: {message}"),
                });
                match self.attempt(&context, &build(&retry), &params, &mut timings) {
                    Ok(candidate) => {
                        let left = findings_of(&candidate).iter().filter(|f| f.repairable()).count();
                        if left < repairable.len() {
                            candidates[0] = candidate;
                            failed = retry;
                            corrected = Some(message);
                        }
                    }
                    Err(AskError::Llm(e)) => return Err(AskError::Llm(e)),
                    Err(_) => {}
                }
            }
        }

        // The sampled candidates of the first round; the result most of them agree on wins
        // (among those the checks find nothing to fix on, when there are such, and among
        // those that returned rows).
        let mut votes = None;
        let mut choices = Vec::new();
        if samples > 1 {
            for (attempt, generation) in sampled {
                match self.consider(&context, attempt, generation, false, &mut timings) {
                    Ok(candidate) => candidates.push(candidate),
                    Err(AskError::Llm(e)) => return Err(AskError::Llm(e)),
                    Err(_) => {}
                }
            }
            // Every candidate that ran counts in the tally, those the filters below set aside
            // too: an answer two of five agree on says so, whatever the other three returned.
            let ran = candidates.len();
            let clean: Vec<bool> =
                candidates.iter().map(|c| findings_of(c).iter().all(|f| !f.repairable())).collect();
            if clean.iter().any(|c| *c) && clean.iter().any(|c| !*c) {
                let mut keep = clean.iter();
                candidates.retain(|_| *keep.next().unwrap_or(&true));
            }
            // And among those with rows, when some returned rows: an empty result is most
            // often a filter that matched nothing (a value spelled otherwise, two values
            // required of one column), rarely the answer while other readings find rows.
            if candidates.iter().any(|c| !c.result.rows.is_empty()) {
                candidates.retain(|c| !c.result.rows.is_empty());
            }
            let (groups, mut tally) = vote(&candidates, samples);
            tally.ran = ran;
            choices = choices::offered(&candidates, &groups);
            if let Some(leader) = groups.first() {
                candidates.swap(0, leader.first);
            }
            votes = Some(tally);
        }
        let Some(chosen) = candidates.into_iter().next() else {
            return Err(match last_error {
                // The model kept reaching for what is not there: say so, not "refused".
                Some(AskError::Refused { sql, refusal }) if reads_missing_tables(&sql, &refusal) => {
                    let offered = retrieved.tables.iter().map(|t| t.name.clone()).collect();
                    AskError::Unanswerable { sql, refusal, offered }
                }
                Some(other) => other,
                None => AskError::InvalidQuestion("no attempt was made".into()),
            });
        };
        // Repairs belong to the greedy answer; a sampled winner had none.
        let repairs = if chosen.greedy { failed } else { Vec::new() };
        let corrected = if chosen.greedy { corrected } else { None };
        let findings = findings_of(&chosen);
        let agreement = votes.as_ref().map(|v: &Votes| (v.agreeing, v.ran));
        let confidence = Confidence::assess(&findings, agreement, corrected.as_deref());
        let draft = chosen.draft.clone();
        let tables = self.table_uses(&catalog, &chosen.query, Some(&retrieved.tables));
        let answer = Answer {
            candidates: retrieved.tables.clone(),
            examples: retrieved.examples.clone(),
            repairs: repairs.into_iter().map(|f| RepairNote { sql: f.sql, error: f.error }).collect(),
            votes,
            choices,
            findings,
            confidence,
            periods,
            model: llm.model_id().to_string(),
            adapter: llm.adapter().map(str::to_string),
            ..Answer::plain(question, &chosen.query, chosen.result, tables, timings)
        };
        // The model's turn goes back to the line before the answer is kept.
        drop(context);
        // Kept only while what it was made from is still in force.
        if Arc::ptr_eq(&catalog, &self.catalog()) && Arc::ptr_eq(&history, &self.history()) {
            self.answers.put(cache_key, catalog, history, draft, answer.clone());
        }
        Ok(answer)
    }

    /// A kept answer served again: its SQL validated for this principal and run; None (answer
    /// from scratch) when it no longer validates or its rows changed.
    pub(super) fn serve_kept(
        &self,
        question: &str,
        kept: answer_cache::Kept,
        catalog: &Catalog,
        policy: &Policy,
        principal: &Principal,
        options: &AskOptions,
    ) -> Option<Answer> {
        let stage = Instant::now();
        let query = validate(&DraftSql::new(&kept.draft), catalog, policy, principal).ok()?;
        if options.tables.as_deref().is_some_and(|picked| outside_picks(&query, picked).is_some()) {
            return None;
        }
        let validate_ms = stage.elapsed().as_millis() as u64;
        let stage = Instant::now();
        let result = self.executor.run_cancellable(&query, &options.cancel).ok()?;
        if result.columns != kept.answer.result.columns || result.rows != kept.answer.result.rows {
            return None;
        }
        let mut answer = kept.answer;
        // The key folds case and spacing: the answer names the question as this caller asked it.
        answer.question = question.to_string();
        answer.sql = query.sql().to_string();
        answer.reading = crate::reading::read(query.sql());
        answer.result = result;
        answer.warnings = query.warnings().to_vec();
        answer.governance = query.governance().clone();
        answer.timings = Timings {
            answer_cached: true,
            validate_ms,
            execute_ms: stage.elapsed().as_millis() as u64,
            ..Timings::default()
        };
        Some(answer)
    }
}

impl Quarry {
    /// `options` with the conversation it follows cut to what this principal may be shown.
    fn scoped<'o>(
        &self,
        options: &'o AskOptions,
        catalog: &Catalog,
        visible: &Catalog,
        policy: &Policy,
        principal: &Principal,
    ) -> std::borrow::Cow<'o, AskOptions> {
        if options.follows.is_empty() {
            return std::borrow::Cow::Borrowed(options);
        }
        let follows = self.visible_turns(&options.follows, catalog, visible, policy, principal);
        std::borrow::Cow::Owned(AskOptions { follows, ..options.clone() })
    }
}

/// `table` offered for `reason`: retrieval's candidate (its evidence kept after the reason)
/// when retrieval found it too.
fn offered(table: &crate::catalog::Table, retrieved: &[TableCandidate], reason: &str) -> TableCandidate {
    let mut candidate =
        retrieved.iter().find(|c| c.name == table.name).cloned().unwrap_or_else(|| TableCandidate::of(table));
    candidate.evidence.insert(0, reason.to_string());
    candidate
}

/// Retrieval's tables for a follow-up: the tables the answer it follows read come first (the
/// follow-up is about the same data), then retrieval's others.
fn followed_tables(
    read: &[String],
    retrieved: Vec<TableCandidate>,
    visible: &Catalog,
) -> Vec<TableCandidate> {
    let mut tables: Vec<TableCandidate> = Vec::with_capacity(read.len() + retrieved.len());
    for name in read {
        let Some(table) = visible.table(name) else { continue };
        if tables.iter().any(|c| c.name == table.name) {
            continue;
        }
        tables.push(offered(table, &retrieved, "read by the answer this question follows up"));
    }
    tables.extend(retrieved.into_iter().filter(|c| !read.iter().any(|r| r.eq_ignore_ascii_case(&c.name))));
    tables
}

/// True when every violation is a table the SQL reads (`FROM x`, `JOIN x`) that does not
/// exist: the model reached for data these tables do not hold (not an alias slip).
pub(super) fn reads_missing_tables(sql: &str, refusal: &Refusal) -> bool {
    let words: Vec<String> = sql
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let read_as_table = |name: &str| {
        let name = name.to_lowercase();
        words.windows(2).any(|w| matches!(w[0].as_str(), "from" | "join") && w[1] == name)
    };
    !refusal.violations.is_empty()
        && refusal
            .violations
            .iter()
            .all(|v| v.code == ViolationCode::UnknownTable && read_as_table(&v.fragment))
}

/// What the model is told about a refused attempt: each violation with its fix.
pub(super) fn repair_feedback(refusal: &Refusal) -> String {
    refusal
        .violations
        .iter()
        .map(
            |v| if v.hint.is_empty() { v.message.clone() } else { format!("{}. Fix: {}", v.message, v.hint) },
        )
        .collect::<Vec<_>>()
        .join("\n")
}

/// The tables an analyst picked, in their order, as candidates: retrieval's evidence where
/// retrieval found the table too. Every name must be a table the role may read.
pub(super) fn picked_tables(
    picked: &[String],
    retrieved: Vec<TableCandidate>,
    visible: &Catalog,
) -> Result<Vec<TableCandidate>, AskError> {
    if picked.is_empty() {
        return Err(AskError::InvalidQuestion(
            "no tables were picked: pick at least one table, or ask without picking".into(),
        ));
    }
    let mut chosen = Vec::with_capacity(picked.len());
    for name in picked {
        let Some(table) = visible.table(name) else {
            return Err(AskError::InvalidQuestion(format!(
                "'{name}' is not a table you may read; pick from the catalog (GET /api/v1/catalog/tables)"
            )));
        };
        if chosen.iter().any(|c: &TableCandidate| c.name == table.name) {
            continue;
        }
        chosen.push(offered(table, &retrieved, "picked by you"));
    }
    Ok(chosen)
}
