//! Text embeddings: the `Embedder` trait and its default, fastembed running the local
//! all-MiniLM-L6-v2 ONNX model (mean pooling) on ONNX Runtime loaded from the asset cache.
//!
//! It owns turning text into unit-length vectors, nothing else: what gets embedded is decided
//! by `index` and `retrieve`. `Remembering` keeps the vectors of texts already embedded, so a
//! re-index after a steward edit embeds only the documents that changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use fastembed::{InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel};

/// Turns texts into vectors of `dimension()` floats, unit length, comparable by cosine.
pub trait Embedder: Send + Sync {
    /// A stable name of the model; part of the index's identity.
    fn model_id(&self) -> &str;
    fn dimension(&self) -> usize;
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// Errors from the embedding model.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A model file is missing.
    #[error("embedding model file {0} is missing: run `make assets` (scripts/fetch-assets.sh) to fetch it")]
    MissingFile(PathBuf),
    /// ONNX Runtime's shared library is missing.
    #[error("ONNX Runtime library {0} is missing: run `make assets` (scripts/fetch-assets.sh) to fetch it")]
    MissingRuntime(PathBuf),
    /// A model file could not be read.
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The model failed to load or to run.
    #[error("embedding model failed: {0}")]
    Model(String),
}

/// all-MiniLM-L6-v2 (int8 ONNX) through fastembed.
pub struct FastEmbedder {
    model: Mutex<TextEmbedding>,
}

/// File names inside the embedding model's asset folder.
const MODEL_FILES: [&str; 5] =
    ["model.onnx", "tokenizer.json", "config.json", "special_tokens_map.json", "tokenizer_config.json"];

impl FastEmbedder {
    pub const MODEL_ID: &'static str = "all-minilm-l6-v2-int8";
    pub const DIMENSION: usize = 384;

    /// Loads the model from `model_dir` with ONNX Runtime from `onnxruntime_lib`.
    pub fn load(model_dir: &Path, onnxruntime_lib: &Path, threads: usize) -> Result<Self, EmbedError> {
        if !onnxruntime_lib.is_file() {
            return Err(EmbedError::MissingRuntime(onnxruntime_lib.to_path_buf()));
        }
        // fastembed panics when it cannot find ONNX Runtime; the path is checked above, and
        // the variable is only set when the caller has not chosen one already.
        if std::env::var_os("ORT_DYLIB_PATH").is_none() {
            std::env::set_var("ORT_DYLIB_PATH", onnxruntime_lib);
        }
        let mut bytes = Vec::new();
        for name in MODEL_FILES {
            let path = model_dir.join(name);
            if !path.is_file() {
                return Err(EmbedError::MissingFile(path));
            }
            bytes.push(std::fs::read(&path).map_err(|source| EmbedError::Io { path, source })?);
        }
        let mut bytes = bytes.into_iter();
        let mut next = || bytes.next().unwrap_or_default();
        let onnx = next();
        let tokenizer_files = TokenizerFiles {
            tokenizer_file: next(),
            config_file: next(),
            special_tokens_map_file: next(),
            tokenizer_config_file: next(),
        };
        let model = UserDefinedEmbeddingModel::new(onnx, tokenizer_files).with_pooling(Pooling::Mean);
        let options = InitOptionsUserDefined::new().with_max_length(256).with_intra_threads(threads.max(1));
        let model = TextEmbedding::try_new_from_user_defined(model, options)
            .map_err(|e| EmbedError::Model(e.to_string()))?;
        Ok(FastEmbedder { model: Mutex::new(model) })
    }
}

impl Embedder for FastEmbedder {
    fn model_id(&self) -> &str {
        Self::MODEL_ID
    }

    fn dimension(&self) -> usize {
        Self::DIMENSION
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mut model = self.model.lock().map_err(|_| EmbedError::Model("embedder lock poisoned".into()))?;
        let vectors = model.embed(texts, Some(32)).map_err(|e| EmbedError::Model(e.to_string()))?;
        Ok(vectors.into_iter().map(normalize).collect())
    }
}

/// An embedder that remembers the vectors of the texts it embedded (up to `capacity` texts;
/// when full it forgets them all and starts again). Re-indexing after one steward edit, or a
/// second workspace over the same catalog in one process, then embeds only the new texts.
/// The vectors are the inner embedder's, unchanged: it is deterministic.
pub struct Remembering<E> {
    inner: E,
    capacity: usize,
    known: Mutex<HashMap<String, Vec<f32>>>,
}

impl<E: Embedder> Remembering<E> {
    pub fn new(inner: E, capacity: usize) -> Self {
        Remembering { inner, capacity, known: Mutex::new(HashMap::new()) }
    }
}

impl<E: Embedder> Embedder for Remembering<E> {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    fn dimension(&self) -> usize {
        self.inner.dimension()
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let lock = || self.known.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut missing: Vec<String> = {
            let known = lock();
            texts.iter().filter(|t| !known.contains_key(*t)).cloned().collect()
        };
        missing.sort_unstable();
        missing.dedup();
        // Embedded outside the lock: a long batch does not hold up texts already known.
        let vectors = self.inner.embed(&missing)?;
        let mut known = lock();
        let mut fresh: HashMap<String, Vec<f32>> = missing.into_iter().zip(vectors).collect();
        let out = texts
            .iter()
            .map(|t| known.get(t).or_else(|| fresh.get(t)).cloned())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                EmbedError::Model("the embedding model returned fewer vectors than texts".into())
            })?;
        if known.len() + fresh.len() > self.capacity {
            known.clear();
        }
        known.extend(fresh.drain().take(self.capacity));
        Ok(out)
    }
}

fn normalize(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A vector per text from its length; counts the texts it was asked to embed.
    struct Counting(AtomicUsize);

    impl Embedder for Counting {
        fn model_id(&self) -> &str {
            "counting"
        }
        fn dimension(&self) -> usize {
            2
        }
        fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
            self.0.fetch_add(texts.len(), Ordering::SeqCst);
            Ok(texts.iter().map(|t| vec![t.len() as f32, 1.0]).collect())
        }
    }

    fn texts(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn remembered_texts_are_not_embedded_again_and_vectors_keep_their_order() {
        let embedder = Remembering::new(Counting(AtomicUsize::new(0)), 100);
        let first = embedder.embed(&texts(&["a", "bb", "a"])).unwrap();
        assert_eq!(first, vec![vec![1.0, 1.0], vec![2.0, 1.0], vec![1.0, 1.0]]);
        assert_eq!(embedder.inner.0.load(Ordering::SeqCst), 2, "a text repeated in a batch is embedded once");
        let second = embedder.embed(&texts(&["ccc", "bb"])).unwrap();
        assert_eq!(second, vec![vec![3.0, 1.0], vec![2.0, 1.0]]);
        assert_eq!(embedder.inner.0.load(Ordering::SeqCst), 3, "only the new text is embedded");
    }

    #[test]
    fn a_full_memory_starts_again_and_answers_stay_right() {
        let embedder = Remembering::new(Counting(AtomicUsize::new(0)), 2);
        embedder.embed(&texts(&["a", "bb"])).unwrap();
        let third = embedder.embed(&texts(&["ccc"])).unwrap();
        assert_eq!(third, vec![vec![3.0, 1.0]]);
        assert!(embedder.known.lock().unwrap().len() <= 2);
        assert_eq!(embedder.embed(&texts(&["a"])).unwrap(), vec![vec![1.0, 1.0]]);
    }
}
