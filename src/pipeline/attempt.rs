//! One round of generation and what becomes of it: each generation's SQL validated and run
//! as a `Candidate`, and the vote over candidates by their results.

use super::*;

impl Quarry {
    /// One generation, validated and run: a candidate answer, or why it is not one.
    pub(super) fn attempt<'a>(
        &'a self,
        context: &Attempting<'a>,
        chat: &crate::llm::ChatPrompt,
        params: &GenerationParams,
        timings: &mut Timings,
    ) -> Result<Candidate, AskError> {
        let (attempt, generation) = self
            .generate(context, chat, std::slice::from_ref(params), timings)?
            .pop()
            .ok_or_else(|| LlmError::Inference("the model returned no generation".into()))?;
        self.consider(context, attempt, generation, params.temperature == 0.0, timings)
    }

    /// One generation per entry of `params` from one prompt, numbered as attempts.
    pub(super) fn generate<'a>(
        &'a self,
        context: &Attempting<'a>,
        chat: &crate::llm::ChatPrompt,
        params: &[GenerationParams],
        timings: &mut Timings,
    ) -> Result<Vec<(usize, Generation)>, AskError> {
        tracing::debug!(system = %chat.system, user = %chat.user, "prompt");
        let first = context.attempts.get() + 1;
        context.attempts.set(first + params.len() - 1);
        // A turn on the model at the ask's first generation, held through its repairs: an ask
        // under way is never turned away half done.
        if context.turn.borrow().is_none() {
            let deadline = Instant::now() + self.config.llm_queue_wait;
            let place = |place: usize| (context.progress)(Stage::Queued { place });
            let turn = self.admission.enter(context.cancel, Some(deadline), &place)?;
            *context.turn.borrow_mut() = Some(turn);
        }
        (context.progress)(Stage::Generating { attempt: first });
        let stage = Instant::now();
        let writing =
            |piece: &str| (context.progress)(Stage::Writing { attempt: first, text: piece.to_string() });
        let generations = context.llm.generate_batch_streaming(chat, params, &writing, context.cancel)?;
        timings.generate_ms += stage.elapsed().as_millis() as u64;
        for generation in &generations {
            timings.prompt_tokens += generation.prompt_tokens;
            timings.cached_tokens += generation.cached_tokens;
            timings.completion_tokens += generation.completion_tokens;
        }
        Ok((first..).zip(generations).collect())
    }

    /// What the model wrote, validated and run: a candidate answer, or why it is not one.
    pub(super) fn consider(
        &self,
        context: &Attempting,
        attempt: usize,
        generation: Generation,
        greedy: bool,
        timings: &mut Timings,
    ) -> Result<Candidate, AskError> {
        let draft = prompt::extract_sql(&generation.text);
        let draft =
            crate::amend::year_numbers(draft.text(), context.catalog).map(DraftSql::new).unwrap_or(draft);
        let sorted = context
            .sort_groups
            .then(|| crate::amend::sort_groups(context.question, draft.text(), context.catalog))
            .flatten();
        let draft = sorted.map(DraftSql::new).unwrap_or(draft);
        (context.progress)(Stage::Validating { attempt });
        let stage = Instant::now();
        // A shape that cannot give what was asked, rewritten; kept only when it validates, and
        // never around a policy refusal (dropping an unread join to a table the role may not
        // read would turn the refusal into an answer).
        let refused_by_policy = validate(&draft, context.catalog, context.policy, context.principal)
            .is_err_and(|refusal| refusal.is_policy());
        let rewritten = (context.rewrites && !refused_by_policy)
            .then(|| crate::amend::rewrites(context.question, draft.text(), context.visible, context.said))
            .flatten()
            .map(DraftSql::new)
            .filter(|sql| validate(sql, context.catalog, context.policy, context.principal).is_ok());
        let draft = rewritten.unwrap_or(draft);
        let mut verdict = validate(&draft, context.catalog, context.policy, context.principal);
        // A name the select list gives, read in that same list: the expression it names.
        let written_out = verdict.as_ref().err().and_then(|refusal| {
            crate::amend::aliases_written_out(draft.text(), &refusal.aliases_read_in_their_list())
        });
        let draft = match written_out {
            Some(sql) => {
                let amended = DraftSql::new(sql);
                verdict = validate(&amended, context.catalog, context.policy, context.principal);
                amended
            }
            None => draft,
        };
        timings.validate_ms += stage.elapsed().as_millis() as u64;
        let query =
            verdict.map_err(|refusal| AskError::Refused { sql: draft.text().to_string(), refusal })?;
        if let Some(refusal) = context.picked.and_then(|picked| outside_picks(&query, picked)) {
            return Err(AskError::Refused { sql: draft.text().to_string(), refusal });
        }
        (context.progress)(Stage::Running { attempt });
        let stage = Instant::now();
        let executed = self.executor.run_cancellable(&query, context.cancel);
        timings.execute_ms += stage.elapsed().as_millis() as u64;
        match executed {
            Ok(result) => Ok(Candidate { draft: draft.text().to_string(), query, result, greedy }),
            Err(source) => Err(AskError::Execution { sql: query.sql().to_string(), source }),
        }
    }
}

/// What an attempt needs beside the prompt.
pub(super) struct Attempting<'a> {
    pub(super) question: &'a str,
    /// What the analyst said beyond the question (`prompt::said`).
    pub(super) said: &'a crate::amend::Said,
    pub(super) llm: &'a dyn Llm,
    pub(super) catalog: &'a Catalog,
    /// The catalog as the role sees it (`Policy::visible_catalog`): what the rewrites read, so
    /// that no value the role may not see is written into its SQL.
    pub(super) visible: &'a Catalog,
    pub(super) policy: &'a Policy,
    pub(super) principal: &'a Principal,
    pub(super) progress: &'a (dyn Fn(Stage) + Sync),
    /// Generations so far, for the progress report.
    pub(super) attempts: Cell<usize>,
    /// A breakdown the model left unordered gets its order (`[answer] sort_groups`).
    pub(super) sort_groups: bool,
    /// A shape that cannot give what was asked is rewritten (`[answer] rewrites`).
    pub(super) rewrites: bool,
    /// The analyst's picked tables, when there are picks: the SQL may read no other.
    pub(super) picked: Option<&'a [String]>,
    pub(super) cancel: &'a Cancel,
    /// The ask's turn on the model, once it has one (`admission`); given back when the ask ends.
    pub(super) turn: std::cell::RefCell<Option<crate::admission::Turn<'a>>>,
}

/// A generated query that passed validation and ran.
pub(super) struct Candidate {
    /// The SQL as the model wrote it.
    pub(super) draft: String,
    pub(super) query: ValidatedQuery,
    pub(super) result: ResultSet,
    /// Written by greedy decoding (the first candidate), not sampled.
    pub(super) greedy: bool,
}

/// How the candidates split by their results: each distinct result with its first candidate
/// and how many share it, most shared first (ties: the earliest, so the greedy answer wins a
/// tie), and the tally. Results compare as the evaluation compares them: rows as a multiset of
/// canonical cells.
pub(super) fn vote(candidates: &[Candidate], generated: usize) -> (Vec<Group>, Votes) {
    let mut keyed: Vec<(Vec<Vec<String>>, Group)> = Vec::new();
    for (i, candidate) in candidates.iter().enumerate() {
        let key = candidate.result.canonical_rows(false);
        match keyed.iter_mut().find(|(k, _)| *k == key) {
            Some((_, group)) => group.count += 1,
            None => keyed.push((key, Group { first: i, count: 1 })),
        }
    }
    let mut groups: Vec<Group> = keyed.into_iter().map(|(_, g)| g).collect();
    groups.sort_by(|a, b| b.count.cmp(&a.count).then(a.first.cmp(&b.first)));
    let votes = Votes {
        generated,
        ran: candidates.len(),
        agreeing: groups.first().map_or(0, |g| g.count),
        distinct_results: groups.len(),
    };
    (groups, votes)
}

/// Candidates that returned the same result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Group {
    /// The first candidate with this result (its index).
    pub(super) first: usize,
    /// How many candidates returned it.
    pub(super) count: usize,
}
