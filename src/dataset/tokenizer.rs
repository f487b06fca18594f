//! What prepare_dataset needs from a Hugging Face tokenizer, read offline.
//!
//! Synthetic data needs only the base vocabulary size (`tokenizer.vocab_size`, which excludes
//! added tokens) and the ids of the EOS token. Loading a whole `tokenizers::Tokenizer` takes about
//! 0.3 s for a 128k BPE (it builds the merges table), longer than generating 20,000 requests, so
//! [`Vocab::from_tokenizer`] reads those two facts straight from `tokenizer.json` instead. The
//! full tokenizer ([`load_tokenizer`]) is used where text is encoded (real prompts).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::error::DatasetError;

/// The vocabulary facts synthetic generation depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    /// Token ids are drawn from `0..vocab_size`.
    pub vocab_size: u32,
    /// `encode(eos_token, add_special_tokens=False)`; empty turns EOS avoidance off.
    pub eos_ids: Vec<u32>,
}

/// Where a tokenizer's files are: `tokenizer.json` and the directory holding its config files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizerFiles {
    pub tokenizer_json: PathBuf,
    pub dir: PathBuf,
}

impl TokenizerFiles {
    /// Accepts a directory holding `tokenizer.json` or the path of a tokenizer JSON file.
    pub fn locate(path: &Path) -> Result<TokenizerFiles, DatasetError> {
        let meta = std::fs::metadata(path).map_err(|e| {
            DatasetError::tokenizer(
                path,
                format!(
                    "cannot access it ({e}); give a local tokenizer directory or \
                         tokenizer.json file (Hugging Face hub names are not fetched)"
                ),
            )
        })?;
        if meta.is_dir() {
            let json = path.join("tokenizer.json");
            if !json.is_file() {
                return Err(DatasetError::tokenizer(
                    path,
                    "the directory has no tokenizer.json (only Hugging Face fast tokenizers \
                     are supported, and no network access is made)",
                ));
            }
            Ok(TokenizerFiles {
                tokenizer_json: json,
                dir: path.to_path_buf(),
            })
        } else {
            let dir = path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."));
            let dir = if dir.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                dir
            };
            Ok(TokenizerFiles {
                tokenizer_json: path.to_path_buf(),
                dir,
            })
        }
    }
}

impl Vocab {
    pub fn new(vocab_size: u32, eos_ids: Vec<u32>) -> Vocab {
        Vocab {
            vocab_size,
            eos_ids,
        }
    }

    /// Vocabulary size and EOS ids of a tokenizer directory or `tokenizer.json` file.
    /// A tokenizer without an EOS token is an error ([`DatasetError::NoEosToken`]).
    pub fn from_tokenizer(path: &Path) -> Result<Vocab, DatasetError> {
        Self::from_tokenizer_with(path, EosPolicy::Required)
    }

    pub fn from_tokenizer_with(path: &Path, policy: EosPolicy) -> Result<Vocab, DatasetError> {
        let files = TokenizerFiles::locate(path)?;
        let eos_token = match &policy {
            EosPolicy::Required | EosPolicy::IfPresent => eos_token(&files)?,
            EosPolicy::Ignore => None,
        };
        let scan = TokenizerScan::read(&files.tokenizer_json, eos_token.as_deref())?;
        let vocab_size = u32::try_from(scan.vocab_size).map_err(|_| {
            DatasetError::tokenizer(&files.tokenizer_json, "vocabulary larger than 2^32 entries")
        })?;
        let eos_ids = match (policy, eos_token) {
            (EosPolicy::Ignore, _) => Vec::new(),
            (_, Some(_)) => vec![scan.eos_id.unwrap_or(scan.next_free_id)],
            (EosPolicy::Required, None) => {
                return Err(DatasetError::NoEosToken { path: files.dir });
            }
            (_, None) => Vec::new(),
        };
        Ok(Vocab {
            vocab_size,
            eos_ids,
        })
    }
}

/// What to do about the EOS token when reading a tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EosPolicy {
    /// Like upstream, which cannot work without one: no EOS token is an error.
    Required,
    /// Avoid the EOS token if there is one, else generate without avoidance.
    IfPresent,
    /// Do not look for one (`--no-eos-avoidance`).
    Ignore,
}

/// The EOS token as transformers' `AutoTokenizer` resolves it: `eos_token` of
/// `tokenizer_config.json` (a string or an `AddedToken` object); when that file has no
/// `added_tokens_decoder` (the legacy layout), a `special_tokens_map.json` entry overrides it.
pub fn eos_token(files: &TokenizerFiles) -> Result<Option<String>, DatasetError> {
    let config = read_json_object(&files.dir.join("tokenizer_config.json"))?;
    let mut eos = config
        .as_ref()
        .and_then(|c| c.get("eos_token"))
        .map(token_content);
    let legacy = config
        .as_ref()
        .is_none_or(|c| !c.contains_key("added_tokens_decoder"));
    if legacy {
        let map = read_json_object(&files.dir.join("special_tokens_map.json"))?;
        if let Some(value) = map.as_ref().and_then(|m| m.get("eos_token")) {
            eos = Some(token_content(value));
        }
    }
    Ok(eos.flatten())
}

fn token_content(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(String::from),
        _ => None,
    }
}

fn read_json_object(
    path: &Path,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, DatasetError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(DatasetError::Read {
                path: path.to_path_buf(),
                source: e,
            });
        }
    };
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(DatasetError::tokenizer(path, "expected a JSON object")),
        Err(e) => Err(DatasetError::tokenizer(path, format!("invalid JSON: {e}"))),
    }
}

/// The facts read from `tokenizer.json` without building the tokenizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizerScan {
    /// Entries of the model's vocabulary: `get_vocab_size(with_added_tokens=False)`.
    pub vocab_size: usize,
    /// The id `encode(eos)` gives when the EOS text is an added token or a vocabulary entry.
    pub eos_id: Option<u32>,
    /// The id transformers gives a special token that is in neither (it adds it at load time).
    pub next_free_id: u32,
}

impl TokenizerScan {
    pub fn read(path: &Path, eos: Option<&str>) -> Result<TokenizerScan, DatasetError> {
        let bytes = std::fs::read(path).map_err(|e| DatasetError::Read {
            path: path.to_path_buf(),
            source: e,
        })?;
        Self::parse(&bytes, eos).map_err(|e| DatasetError::tokenizer(path, e))
    }

    /// An EOS that is an added token encodes to that token's id alone (added tokens are split
    /// out before the model runs, normalised the same way as the text); otherwise transformers
    /// registers it as a special added token, reusing its vocabulary id if it has one.
    pub fn parse(bytes: &[u8], eos: Option<&str>) -> Result<TokenizerScan, String> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let raw = TopSeed { eos }
            .deserialize(&mut de)
            .and_then(|raw| de.end().map(|()| raw))
            .map_err(|e| format!("not a tokenizer.json: {e}"))?;
        let (vocab_size, model_id) = raw.vocab.ok_or("the \"model\" has no \"vocab\"")?;
        let added_id = eos.and_then(|eos| {
            raw.added_tokens
                .iter()
                .find(|t| t.content == eos)
                .map(|t| t.id)
        });
        let max_added = raw
            .added_tokens
            .iter()
            .map(|t| t.id as u64 + 1)
            .max()
            .unwrap_or(0);
        let next_free = (vocab_size as u64).max(max_added);
        Ok(TokenizerScan {
            vocab_size,
            eos_id: added_id.or(model_id),
            next_free_id: u32::try_from(next_free).unwrap_or(u32::MAX),
        })
    }
}

#[derive(Deserialize)]
struct RawAddedToken {
    id: u32,
    content: String,
}

struct RawTokenizer {
    added_tokens: Vec<RawAddedToken>,
    /// Entry count of the model vocabulary, and the id of the entry equal to the EOS text.
    vocab: Option<(usize, Option<u32>)>,
}

/// Walks the top level of tokenizer.json, skipping everything but `added_tokens` and `model`
/// (the merges list, the bulk of a BPE file, is skipped without being built).
struct TopSeed<'a> {
    eos: Option<&'a str>,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = RawTokenizer;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<RawTokenizer, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = RawTokenizer;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tokenizer.json object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawTokenizer, A::Error> {
        let mut raw = RawTokenizer {
            added_tokens: Vec::new(),
            vocab: None,
        };
        let mut has_model = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "added_tokens" => {
                    raw.added_tokens = map
                        .next_value::<Option<Vec<RawAddedToken>>>()?
                        .unwrap_or_default();
                }
                "model" => {
                    has_model = true;
                    raw.vocab = map.next_value_seed(ModelSeed { eos: self.eos })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !has_model {
            return Err(de::Error::missing_field("model"));
        }
        Ok(raw)
    }
}

struct ModelSeed<'a> {
    eos: Option<&'a str>,
}

impl<'de> DeserializeSeed<'de> for ModelSeed<'_> {
    type Value = Option<(usize, Option<u32>)>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ModelSeed<'_> {
    type Value = Option<(usize, Option<u32>)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a model object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut vocab = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "vocab" {
                vocab = Some(map.next_value_seed(VocabSeed { eos: self.eos })?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(vocab)
    }
}

/// Counts a model vocabulary (a `{token: id}` map for BPE/WordPiece/WordLevel, a list of
/// `[piece, score]` for Unigram, where the id is the position) and finds the EOS entry, without
/// allocating a string per entry.
struct VocabSeed<'a> {
    eos: Option<&'a str>,
}

impl<'de> DeserializeSeed<'de> for VocabSeed<'_> {
    type Value = (usize, Option<u32>);
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for VocabSeed<'_> {
    type Value = (usize, Option<u32>);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a vocabulary map or list")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut len = 0usize;
        let mut eos_id = None;
        while let Some(is_eos) = map.next_key_seed(IsText(self.eos))? {
            len += 1;
            if is_eos {
                eos_id = Some(map.next_value::<u32>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok((len, eos_id))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut len = 0usize;
        let mut eos_id = None;
        while let Some(is_eos) = seq.next_element_seed(UnigramEntry(self.eos))? {
            if is_eos && eos_id.is_none() {
                eos_id = u32::try_from(len).ok();
            }
            len += 1;
        }
        Ok((len, eos_id))
    }
}

/// Deserializes a string into "is it equal to the EOS text?".
struct IsText<'a>(Option<&'a str>);

impl<'de> DeserializeSeed<'de> for IsText<'_> {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for IsText<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a token string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(self.0 == Some(v))
    }
}

/// A Unigram `[piece, score]` pair, reduced to "is the piece the EOS text?".
struct UnigramEntry<'a>(Option<&'a str>);

impl<'de> DeserializeSeed<'de> for UnigramEntry<'_> {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for UnigramEntry<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a [piece, score] pair")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let is_eos = seq
            .next_element_seed(IsText(self.0))?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(is_eos)
    }
}

/// The full tokenizer, for encoding text. Padding and truncation stored in `tokenizer.json` are
/// switched off, as transformers does for a plain `encode` call.
pub fn load_tokenizer(path: &Path) -> Result<tokenizers::Tokenizer, DatasetError> {
    let files = TokenizerFiles::locate(path)?;
    let mut tok = tokenizers::Tokenizer::from_file(&files.tokenizer_json)
        .map_err(|e| DatasetError::tokenizer(&files.tokenizer_json, e.to_string()))?;
    tok.with_padding(None)
        .with_truncation(None)
        .map_err(|e| DatasetError::tokenizer(&files.tokenizer_json, e.to_string()))?;
    Ok(tok)
}

/// The tokenizer's class name as transformers would report it, for workload metadata.
pub fn tokenizer_class(files: &TokenizerFiles) -> String {
    read_json_object(&files.dir.join("tokenizer_config.json"))
        .ok()
        .flatten()
        .and_then(|c| {
            c.get("tokenizer_class")
                .and_then(|v| v.as_str())
                .map(String::from)
        })
        .map(|c| {
            if c.ends_with("Fast") {
                c
            } else {
                format!("{c}Fast")
            }
        })
        .unwrap_or_else(|| "PreTrainedTokenizerFast".to_string())
}
