//! Finding memory entries and document passages again: keyword search
//! (BM25) and vector search (cosine similarity of embeddings) merged with
//! OpenClaw's weights (0.7 vector, 0.3 keyword) over cosines spread as
//! each embedding model's profile says ([`profile`]), dated notes fading with a
//! 30-day half-life, a minimum score that still lets exact keyword matches
//! through when nothing else passes, and maximal marginal relevance (λ 0.7)
//! so near-duplicates do not crowd out the rest. Only items the caller's
//! `visible` filter admits are ever scored: what a member may not see is
//! not a candidate, whatever the query.
//!
//! In memory, built at start from the store and kept in step with it;
//! brute force over the vectors (10,000 passages of 384 dimensions is
//! about four million multiply-adds, a few milliseconds). Item vectors are
//! kept as bytes (one scale per vector, [`Quantized`]): a quarter of the
//! memory, cosines within about 0.01 of the exact ones.

use std::collections::HashMap;
use std::hash::Hash;

use jiff::civil::Date;

use crate::language::is_hangul;

/// OpenClaw's default number of results.
pub const MAX_RESULTS: usize = 6;
/// OpenClaw's default minimum score.
pub const MIN_SCORE: f32 = 0.35;
/// Weight of the vector score in OpenClaw's hybrid score.
pub const VECTOR_WEIGHT: f32 = 0.7;
/// Weight of the keyword score in OpenClaw's hybrid score.
pub const TEXT_WEIGHT: f32 = 0.3;
/// Days over which a dated note's score halves.
pub const HALF_LIFE_DAYS: f32 = 30.0;
/// Relevance against diversity in the final ordering.
pub const MMR_LAMBDA: f32 = 0.7;

const BM25_K1: f32 = 1.2;
const BM25_B: f32 = 0.75;
/// Longest term kept; longer runs of letters are not words.
const MAX_TERM: usize = 48;

/// Words too common to say anything about a passage.
const STOP_WORDS: [&str; 48] = [
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "do", "does", "for", "from", "has",
    "have", "how", "i", "if", "in", "is", "it", "its", "me", "my", "no", "not", "of", "on", "or",
    "our", "so", "that", "the", "their", "there", "this", "to", "was", "we", "what", "when",
    "where", "which", "who", "why", "will", "with", "you",
];

/// How text is cut into search terms. Korean attaches particles and
/// endings to its words ("보일러를", "보일러는", "초기화하려면"), so a question's
/// words rarely equal a passage's; the analysers below were measured on
/// household documents with questions worded unlike them (docs/
/// benchmarks.md, `cargo test -p hearth-assistant --test recall`), and
/// [`ANALYSER`] is the one used. Latin letters and digits are cut the same
/// way by all of them: lower-cased words without stop words, lightly
/// stemmed ([`stem`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Analyser {
    /// Hangul words whole, as written.
    Words,
    /// Overlapping pairs of Hangul syllables (Lucene's CJK analyser).
    Bigrams,
    /// Hangul words without their particles and endings ([`korean_stem`]).
    Stems,
    /// Pairs of syllables of the words without their particles and endings.
    StemBigrams,
    /// Both: the stems whole and their pairs of syllables.
    StemsAndBigrams,
}

/// The analyser Hearth searches with.
pub const ANALYSER: Analyser = Analyser::StemsAndBigrams;

/// Korean words too common to say anything about a passage (questions'
/// words, mostly), compared after [`korean_stem`].
const KOREAN_STOP_WORDS: [&str; 30] = [
    "뭐",
    "뭐야",
    "어떻게",
    "어디",
    "언제",
    "얼마나",
    "얼마",
    "몇",
    "왜",
    "누가",
    "누구",
    "무슨",
    "어느",
    "어떤",
    "있어",
    "있",
    "없어",
    "돼",
    "되",
    "해",
    "줘",
    "알려",
    "우리",
    "이",
    "그",
    "저",
    "좀",
    "거",
    "것",
    "수",
];

/// The search terms of `text`, cut by [`ANALYSER`].
pub fn terms(text: &str) -> Vec<String> {
    terms_as(text, ANALYSER)
}

/// The search terms of `text` cut by `analyser`: lower-cased runs of
/// letters and digits, without stop words, lightly stemmed; Hangul as the
/// analyser says.
pub fn terms_as(text: &str, analyser: Analyser) -> Vec<String> {
    let mut terms = Vec::new();
    for run in text.split(|c: char| !c.is_alphanumeric()) {
        if run.is_empty() || run.chars().count() > MAX_TERM {
            continue;
        }
        // Hangul and other letters apart: "4711이야" is "4711" and "이야".
        let mut start = 0;
        let mut korean = None;
        for (at, c) in run.char_indices() {
            let is_korean = crate::language::is_syllable(c);
            if korean.is_some_and(|was| was != is_korean) {
                push_terms(&run[start..at], korean == Some(true), analyser, &mut terms);
                start = at;
            }
            korean = Some(is_korean);
        }
        push_terms(&run[start..], korean == Some(true), analyser, &mut terms);
    }
    terms
}

fn push_terms(word: &str, korean: bool, analyser: Analyser, terms: &mut Vec<String>) {
    if word.is_empty() {
        return;
    }
    if !korean {
        let word = word.to_lowercase();
        if !STOP_WORDS.contains(&word.as_str()) {
            terms.push(stem(&word));
        }
        return;
    }
    let bigrams = |word: &str, terms: &mut Vec<String>| {
        let syllables: Vec<char> = word.chars().collect();
        if syllables.len() == 1 {
            terms.push(word.to_owned());
        }
        for pair in syllables.windows(2) {
            terms.push(pair.iter().collect());
        }
    };
    match analyser {
        Analyser::Words => terms.push(word.to_owned()),
        Analyser::Bigrams => bigrams(word, terms),
        Analyser::Stems | Analyser::StemBigrams | Analyser::StemsAndBigrams => {
            let stem = korean_stem(word);
            if stem.is_empty() || KOREAN_STOP_WORDS.contains(&stem) {
                return;
            }
            if analyser != Analyser::StemBigrams {
                terms.push(stem.to_owned());
            }
            if analyser != Analyser::Stems && stem.chars().count() > 1 {
                bigrams(stem, terms);
            }
        }
    }
}

/// Particles and endings taken off a Korean word, longest first.
const KOREAN_ENDINGS: [&str; 48] = [
    "에서는",
    "에게서",
    "으로는",
    "이라는",
    "이라고",
    "이에요",
    "이었어",
    "입니다",
    "에서",
    "에게",
    "한테",
    "께서",
    "까지",
    "부터",
    "처럼",
    "보다",
    "으로",
    "이나",
    "이랑",
    "하고",
    "에는",
    "에도",
    "이야",
    "이고",
    "이면",
    "예요",
    "이요",
    "은",
    "는",
    "이",
    "가",
    "을",
    "를",
    "에",
    "의",
    "도",
    "로",
    "와",
    "과",
    "만",
    "나",
    "랑",
    "요",
    "야",
    "고",
    "면",
    "게",
    "지",
];

/// Syllables that start a verb's or adjective's ending after a noun
/// ("초기화하려면", "청소해야", "고장났어", "설치되어"): cut there.
const VERB_STARTS: [char; 14] = [
    '하', '해', '했', '할', '한', '합', '함', '되', '돼', '됐', '된', '될', '됩', '났',
];

/// A Korean word without its particle or ending: "보일러를" and "보일러는"
/// are "보일러", "초기화하려면" is "초기화". A word is never cut to nothing,
/// and a verb ending only after a noun of two syllables or more.
pub fn korean_stem(word: &str) -> &str {
    let syllables: Vec<(usize, char)> = word.char_indices().collect();
    if let Some((at, _)) = syllables
        .iter()
        .skip(2)
        .find(|(_, c)| VERB_STARTS.contains(c))
    {
        return &word[..*at];
    }
    for ending in KOREAN_ENDINGS {
        if let Some(stem) = word.strip_suffix(ending)
            && !stem.is_empty()
        {
            return stem;
        }
    }
    word
}

/// Whether `text` says everything `asked` names: each of `asked`'s search
/// terms is one of `text`'s (how "forget the bike lock code" finds the
/// entry that says it). Nothing is said by an `asked` without terms.
pub fn says_all(text: &str, asked: &str) -> bool {
    let wanted = terms(asked);
    if wanted.is_empty() {
        return false;
    }
    let have = terms(text);
    wanted.iter().all(|term| have.contains(term))
}

/// English endings taken off, the same for queries and passages, so that
/// "resetting" finds "reset" and "batteries" "battery": `-ies` becomes
/// `-y`; `-ing`, `-ed`, `-es` (after s, x, z, ch, sh) and `-s` go, with a
/// doubled final consonant undone ("stopped", "running"). Words of four
/// letters or fewer, and words not in plain ASCII, are kept as they are.
pub fn stem(word: &str) -> String {
    let length = word.len();
    if length <= 4 || !word.bytes().all(|byte| byte.is_ascii_lowercase()) {
        return word.to_owned();
    }
    let undouble = |base: &str| -> String {
        let bytes = base.as_bytes();
        let doubled = bytes.len() >= 3
            && bytes[bytes.len() - 1] == bytes[bytes.len() - 2]
            && !b"aeioulsz".contains(&bytes[bytes.len() - 1]);
        if doubled {
            base[..base.len() - 1].to_owned()
        } else {
            base.to_owned()
        }
    };
    if let Some(base) = word.strip_suffix("ies") {
        return format!("{base}y");
    }
    if let Some(base) = word.strip_suffix("ing")
        && base.len() >= 3
    {
        return undouble(base);
    }
    if let Some(base) = word.strip_suffix("ed")
        && base.len() >= 3
    {
        return undouble(base);
    }
    if let Some(base) = word.strip_suffix("es")
        && ["s", "x", "z", "ch", "sh"]
            .iter()
            .any(|end| base.ends_with(end))
    {
        return base.to_owned();
    }
    if let Some(base) = word.strip_suffix('s')
        && !base.ends_with('s')
        && !base.ends_with('u')
        && !base.ends_with('i')
    {
        return base.to_owned();
    }
    word.to_owned()
}

/// Most characters an embedding model is given at once. Models of the
/// BERT kind read at most 512 tokens (the E5 family's and MiniLM's
/// position tables end there, and llama-server refuses a longer input
/// rather than cut it); a character gives at most one of multilingual-e5's
/// tokens, about one for a Hangul syllable and a quarter for English, so a
/// window of 480 leaves room for the prefix and the markers.
pub const WINDOW_CHARS: usize = 480;

/// `text` cut into windows of at most `most` characters, each ending at a
/// space or line end where there is one in its last quarter, in order;
/// the whole text when it fits. Each window is embedded on its own and
/// the vectors pooled ([`pooled`]), as a model reading a long text in
/// windows would: the mean of the windows' vectors, each weighed by its
/// length.
pub fn windows(text: &str, most: usize) -> Vec<&str> {
    let most = most.max(1);
    let mut windows = Vec::new();
    let mut rest = text.trim();
    while rest.chars().count() > most {
        let end = rest
            .char_indices()
            .nth(most)
            .map_or(rest.len(), |(at, _)| at);
        let earliest = rest
            .char_indices()
            .nth(most - most / 4)
            .map_or(0, |(at, _)| at);
        let cut = rest[..end]
            .rfind(char::is_whitespace)
            .filter(|at| *at >= earliest && *at > 0)
            .unwrap_or(end);
        windows.push(rest[..cut].trim_end());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() || windows.is_empty() {
        windows.push(rest);
    }
    windows
}

/// The mean of `vectors` weighed by `weights` (the windows' lengths),
/// scaled to length one; `None` when there is nothing to pool.
pub fn pooled(vectors: &[Vec<f32>], weights: &[usize]) -> Option<Vec<f32>> {
    let width = vectors.first()?.len();
    let mut sum = vec![0.0_f32; width];
    for (vector, weight) in vectors.iter().zip(weights) {
        if vector.len() != width {
            return None;
        }
        for (total, value) in sum.iter_mut().zip(vector) {
            *total += value * (*weight).max(1) as f32;
        }
    }
    normalized(&sum).map(Vec::from)
}

/// Texts as an embedding model is asked for them: each with its prefix,
/// long ones in windows ([`windows`]); and their vectors again from the
/// windows' ([`Windowed::pool`]).
#[derive(Clone, Debug)]
pub struct Windowed {
    /// What to embed, in order.
    pub inputs: Vec<String>,
    /// Each input's text and length.
    owners: Vec<(usize, usize)>,
    texts: usize,
}

impl Windowed {
    /// `texts`, each window after `prefix`.
    pub fn of(texts: &[String], prefix: &str) -> Windowed {
        let mut inputs = Vec::new();
        let mut owners = Vec::new();
        for (owner, text) in texts.iter().enumerate() {
            for window in windows(text, WINDOW_CHARS) {
                inputs.push(format!("{prefix}{window}"));
                owners.push((owner, window.chars().count()));
            }
        }
        Windowed {
            inputs,
            owners,
            texts: texts.len(),
        }
    }

    /// One vector a text from the inputs' `vectors` (in order); `None`
    /// when they do not fit.
    pub fn pool(&self, vectors: &[Vec<f32>]) -> Option<Vec<Vec<f32>>> {
        if vectors.len() != self.inputs.len() {
            return None;
        }
        (0..self.texts)
            .map(|owner| {
                let (mine, weights): (Vec<Vec<f32>>, Vec<usize>) = vectors
                    .iter()
                    .zip(&self.owners)
                    .filter(|(_, (of, _))| *of == owner)
                    .map(|(vector, (_, weight))| (vector.clone(), *weight))
                    .unzip();
                pooled(&mine, &weights)
            })
            .collect()
    }
}

/// `vector` scaled to length one (so a dot product is the cosine);
/// `None` for an empty or zero vector, or one with a non-finite value.
pub fn normalized(vector: &[f32]) -> Option<Box<[f32]>> {
    let length = vector.iter().map(|value| value * value).sum::<f32>().sqrt();
    if vector.is_empty() || !length.is_finite() || length == 0.0 {
        return None;
    }
    Some(vector.iter().map(|value| value / length).collect())
}

/// A unit vector kept as one signed byte a dimension and a scale.
pub struct Quantized {
    scale: f32,
    values: Box<[i8]>,
}

impl Quantized {
    /// `unit` (of length one) in bytes: each value rounded to a step of
    /// the largest one's 1/127.
    pub fn of(unit: &[f32]) -> Quantized {
        let largest = unit
            .iter()
            .fold(0.0_f32, |most, value| most.max(value.abs()));
        let scale = if largest > 0.0 { largest / 127.0 } else { 1.0 };
        let values = unit
            .iter()
            // In -127..=127 by construction.
            .map(|value| (value / scale).round().clamp(-127.0, 127.0) as i8)
            .collect();
        Quantized { scale, values }
    }

    /// The dot product with a vector of floats.
    pub fn dot(&self, other: &[f32]) -> f32 {
        let sum: f32 = self
            .values
            .iter()
            .zip(other)
            .map(|(value, other)| f32::from(*value) * other)
            .sum();
        sum * self.scale
    }

    /// The dot product with another quantized vector.
    pub fn dot_quantized(&self, other: &Quantized) -> f32 {
        let sum: i32 = self
            .values
            .iter()
            .zip(other.values.iter())
            .map(|(one, two)| i32::from(*one) * i32::from(*two))
            .sum();
        sum as f32 * self.scale * other.scale
    }
}

struct Slot<K> {
    key: K,
    length: u32,
    vector: Option<Quantized>,
    dated: Option<Date>,
    alive: bool,
}

/// The searchable items, keyed by `K` (an entry id, a passage id).
pub struct Index<K> {
    analyser: Analyser,
    slots: Vec<Slot<K>>,
    at: HashMap<K, usize>,
    postings: HashMap<String, Vec<(u32, u16)>>,
    total_length: u64,
    dead: usize,
}

impl<K> Default for Index<K> {
    fn default() -> Self {
        Index::with_analyser(ANALYSER)
    }
}

impl<K> Index<K> {
    /// An empty index cutting text with `analyser` (measurements compare
    /// them; Hearth uses [`ANALYSER`]).
    pub fn with_analyser(analyser: Analyser) -> Index<K> {
        Index {
            analyser,
            slots: Vec::new(),
            at: HashMap::new(),
            postings: HashMap::new(),
            total_length: 0,
            dead: 0,
        }
    }
}

/// How an item's meaning (cosine) and keyword scores become one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scoring {
    /// Weight of the cosine.
    pub vector_weight: f32,
    /// Weight of the keyword score.
    pub text_weight: f32,
    /// Cosines are first spread over 0 to 1 for each query, from this
    /// one, the model's "unrelated", to the highest among the items
    /// searched: a model whose cosines bunch together (multilingual-e5's
    /// lie between 0.7 and 0.9 for any two household texts) would otherwise
    /// add nearly the same amount to every item and leave the order to the
    /// keywords. The floor is the model's, not the query's, so that among
    /// a few items (a member's handful of memories, a folder of two notes)
    /// an unrelated one is not made to look like the best of matches.
    pub cosine_floor: f32,
    /// The spread ends at the highest cosine, or at this one when no item
    /// reaches it.
    pub cosine_ceiling: f32,
    /// Whether the model's vectors mean anything for Korean: a question
    /// with Hangul in it is searched by keywords alone when they do not.
    pub reads_hangul: bool,
}

impl Scoring {
    /// OpenClaw's: 0.7 of the cosine and 0.3 of the keyword score.
    pub const OPENCLAW: Scoring = Scoring {
        vector_weight: VECTOR_WEIGHT,
        text_weight: TEXT_WEIGHT,
        cosine_floor: 0.0,
        cosine_ceiling: 1.0,
        reads_hangul: true,
    };

    /// `cosine` spread over 0 to 1 when the items' best is `highest`
    /// (see [`Scoring::cosine_floor`]).
    pub fn spread(&self, cosine: f32, highest: f32) -> f32 {
        let ceiling = highest.max(self.cosine_ceiling);
        let width = (ceiling - self.cosine_floor).max(f32::EPSILON);
        ((cosine - self.cosine_floor) / width).clamp(0.0, 1.0)
    }
}

/// What an embedding model needs from its caller and how its scores are
/// read, by the model's kind (from its name).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelProfile {
    /// Put before a question (the E5 family: "query: ").
    pub query_prefix: &'static str,
    /// Put before a passage or memory entry (the E5 family: "passage: ").
    pub passage_prefix: &'static str,
    /// How its cosines join the keyword scores.
    pub scoring: Scoring,
}

/// The profile of the embedding model `name` (a model id such as
/// `multilingual-e5-small` or `all-MiniLM-L6-v2`, with or without its
/// provider). The E5 family was trained with "query: " and "passage: "
/// before its inputs and gives poor vectors without them. Both kinds'
/// cosines are spread per query and weighed as measured on the household
/// sets (docs/benchmarks.md, `cargo test -p hearth-assistant --test
/// recall`); a model of another kind is taken to know English only.
pub fn profile(name: &str) -> ModelProfile {
    let id = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
    let e5 = id
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|part| part == "e5");
    if e5 {
        ModelProfile {
            query_prefix: "query: ",
            passage_prefix: "passage: ",
            scoring: E5_SCORING,
        }
    } else {
        ModelProfile {
            query_prefix: "",
            passage_prefix: "",
            scoring: ENGLISH_SCORING,
        }
    }
}

/// The E5 family's: OpenClaw's weights over cosines spread from 0.75
/// (measured: docs/benchmarks.md).
pub const E5_SCORING: Scoring = Scoring {
    cosine_floor: 0.75,
    cosine_ceiling: 0.8,
    ..Scoring::OPENCLAW
};

/// Other models' (all-MiniLM-L6-v2 measured): OpenClaw's weights over
/// cosines spread from 0.1; English-only vectors, so Korean questions go
/// by keywords.
pub const ENGLISH_SCORING: Scoring = Scoring {
    cosine_floor: 0.1,
    cosine_ceiling: 0.5,
    reads_hangul: false,
    ..Scoring::OPENCLAW
};

/// What to search for.
#[derive(Clone, Debug)]
pub struct Query<'a> {
    /// The words.
    pub text: &'a str,
    /// The query's embedding, when the embedding model answered.
    pub vector: Option<&'a [f32]>,
    /// Today, for the fading of dated notes.
    pub today: Date,
    /// Most results.
    pub limit: usize,
    /// Lowest hybrid score kept (keyword matches pass when nothing does).
    pub min_score: f32,
    /// How meaning and keywords are weighed.
    pub scoring: Scoring,
}

/// One result.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit<K> {
    /// The item.
    pub key: K,
    /// Its score (0 to 1).
    pub score: f32,
}

impl<K: Clone + Eq + Hash> Index<K> {
    /// How many items it holds.
    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// Adds (or replaces) `key` with its text, embedding and date.
    pub fn insert(&mut self, key: K, text: &str, vector: Option<&[f32]>, dated: Option<Date>) {
        self.remove(&key);
        let slot = self.slots.len();
        let slot_id = u32::try_from(slot).expect("fewer than 4 billion items");
        let words = terms_as(text, self.analyser);
        let mut counts: HashMap<&str, u16> = HashMap::new();
        for word in &words {
            let count = counts.entry(word.as_str()).or_insert(0);
            *count = count.saturating_add(1);
        }
        for (word, count) in counts {
            self.postings
                .entry(word.to_owned())
                .or_default()
                .push((slot_id, count));
        }
        let length = u32::try_from(words.len()).unwrap_or(u32::MAX);
        self.total_length += u64::from(length);
        self.slots.push(Slot {
            key: key.clone(),
            length,
            vector: vector.and_then(normalized).map(|unit| Quantized::of(&unit)),
            dated,
            alive: true,
        });
        self.at.insert(key, slot);
    }

    /// Gives back the room kept for growth (after loading many items at
    /// once: a posting list may hold twice what it needs).
    pub fn shrink_to_fit(&mut self) {
        self.slots.shrink_to_fit();
        self.at.shrink_to_fit();
        for postings in self.postings.values_mut() {
            postings.shrink_to_fit();
        }
        self.postings.shrink_to_fit();
    }

    /// Removes `key`, if present.
    pub fn remove(&mut self, key: &K) {
        let Some(slot) = self.at.remove(key) else {
            return;
        };
        let entry = &mut self.slots[slot];
        entry.alive = false;
        entry.vector = None;
        self.total_length -= u64::from(entry.length);
        self.dead += 1;
        if self.dead > 64 && self.dead * 2 > self.slots.len() {
            self.compact();
        }
    }

    /// Rebuilds the postings without removed items.
    fn compact(&mut self) {
        let old = std::mem::take(&mut self.slots);
        let mut renumber = vec![u32::MAX; old.len()];
        for (index, slot) in old.into_iter().enumerate() {
            if slot.alive {
                renumber[index] = u32::try_from(self.slots.len()).expect("fewer slots than before");
                self.at.insert(slot.key.clone(), self.slots.len());
                self.slots.push(slot);
            }
        }
        for postings in self.postings.values_mut() {
            postings.retain_mut(|(slot, _)| {
                let new = renumber[*slot as usize];
                *slot = new;
                new != u32::MAX
            });
        }
        self.postings.retain(|_, postings| !postings.is_empty());
        self.dead = 0;
    }

    /// The best items for `query` among those `visible` admits, best first.
    pub fn search(&self, query: &Query<'_>, visible: impl Fn(&K) -> bool) -> Vec<Hit<K>> {
        if query.limit == 0 {
            return Vec::new();
        }
        let alive = self.at.len().max(1) as f32;
        let average = (self.total_length as f32 / alive).max(1.0);
        let admitted: Vec<bool> = self
            .slots
            .iter()
            .map(|slot| slot.alive && visible(&slot.key))
            .collect();

        // Keyword scores, and how much of the query each item covers.
        let mut query_terms = terms_as(query.text, self.analyser);
        query_terms.sort();
        query_terms.dedup();
        // Postings of removed items stay until the next compaction: count
        // the live ones.
        let frequency = |term: &str| {
            self.postings.get(term).map_or(0, |postings| {
                postings
                    .iter()
                    .filter(|(slot, _)| self.slots[*slot as usize].alive)
                    .count()
            })
        };
        let idf = |frequency: usize| {
            let frequency = frequency as f32;
            (1.0 + (alive - frequency + 0.5) / (frequency + 0.5)).ln()
        };
        let weights: HashMap<&str, f32> = query_terms
            .iter()
            .map(|term| (term.as_str(), idf(frequency(term))))
            .collect();
        let all_weight: f32 = weights.values().sum();
        let mut text_scores: HashMap<usize, (f32, f32)> = HashMap::new();
        for term in &query_terms {
            let Some(postings) = self.postings.get(term) else {
                continue;
            };
            let weight = weights[term.as_str()];
            for (slot, count) in postings {
                let slot = *slot as usize;
                if !admitted[slot] {
                    continue;
                }
                let count = f32::from(*count);
                let length = self.slots[slot].length as f32;
                let bm25 = weight * count * (BM25_K1 + 1.0)
                    / (count + BM25_K1 * (1.0 - BM25_B + BM25_B * length / average));
                let entry = text_scores.entry(slot).or_insert((0.0, 0.0));
                entry.0 += bm25;
                entry.1 += weight;
            }
        }
        let best_bm25 = text_scores
            .values()
            .map(|(bm25, _)| *bm25)
            .fold(0.0_f32, f32::max);
        let text_score = |slot: usize| -> f32 {
            match text_scores.get(&slot) {
                Some((bm25, covered)) if best_bm25 > 0.0 && all_weight > 0.0 => {
                    (bm25 / best_bm25) * (covered / all_weight)
                }
                _ => 0.0,
            }
        };

        // Hybrid scores for every admitted item that matched either way.
        let scoring = query.scoring;
        let query_vector = query
            .vector
            .filter(|_| scoring.reads_hangul || !query.text.chars().any(is_hangul))
            .and_then(normalized);
        let cosines: Vec<Option<f32>> = self
            .slots
            .iter()
            .enumerate()
            .map(|(slot, item)| {
                let query = query_vector.as_ref().filter(|_| admitted[slot])?;
                Some(item.vector.as_ref()?.dot(query))
            })
            .collect();
        let highest = cosines
            .iter()
            .flatten()
            .fold(f32::MIN, |high, cosine| high.max(*cosine));
        let mut candidates: Vec<(usize, f32, f32)> = Vec::new();
        for (slot, item) in self.slots.iter().enumerate() {
            if !admitted[slot] {
                continue;
            }
            let text = text_score(slot);
            let score = match cosines[slot] {
                Some(cosine) => {
                    let meaning = scoring.spread(cosine, highest);
                    scoring.vector_weight * meaning + scoring.text_weight * text
                }
                // Without embeddings on both sides, keywords alone.
                _ => text,
            };
            if score <= 0.0 {
                continue;
            }
            let faded = match item.dated {
                Some(date) => {
                    let age = query
                        .today
                        .since(date)
                        .map_or(0, |span| span.get_days())
                        .max(0);
                    score * 0.5_f32.powf(age as f32 / HALF_LIFE_DAYS)
                }
                None => score,
            };
            candidates.push((slot, faded, text));
        }
        // The minimum filters weak meaning matches; without a query
        // embedding every keyword match counts.
        let minimum = if query_vector.is_some() {
            query.min_score
        } else {
            0.0
        };
        let mut passing: Vec<(usize, f32)> = candidates
            .iter()
            .filter(|(_, score, _)| *score >= minimum)
            .map(|(slot, score, _)| (*slot, *score))
            .collect();
        if passing.is_empty() {
            // Exact words still count when nothing reaches the minimum.
            passing = candidates
                .iter()
                .filter(|(_, _, text)| *text > 0.0)
                .map(|(slot, _, text)| (*slot, *text))
                .collect();
        }
        passing.sort_by(|one, other| other.1.total_cmp(&one.1).then(one.0.cmp(&other.0)));
        passing.truncate(query.limit * 4);
        self.diversify(passing, query.limit)
    }

    /// Maximal marginal relevance over `ranked` (best first).
    fn diversify(&self, mut ranked: Vec<(usize, f32)>, limit: usize) -> Vec<Hit<K>> {
        let mut chosen: Vec<(usize, f32)> = Vec::new();
        while chosen.len() < limit && !ranked.is_empty() {
            let mut best = 0;
            let mut best_value = f32::MIN;
            for (index, (slot, score)) in ranked.iter().enumerate() {
                let redundancy = chosen
                    .iter()
                    .filter_map(|(other, _)| {
                        let one = self.slots[*slot].vector.as_ref()?;
                        let two = self.slots[*other].vector.as_ref()?;
                        Some(one.dot_quantized(two))
                    })
                    .fold(0.0_f32, f32::max);
                let value = MMR_LAMBDA * score - (1.0 - MMR_LAMBDA) * redundancy;
                if value > best_value {
                    best_value = value;
                    best = index;
                }
            }
            chosen.push(ranked.remove(best));
        }
        chosen
            .into_iter()
            .map(|(slot, score)| Hit {
                key: self.slots[slot].key.clone(),
                score,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        "2026-11-24".parse().unwrap()
    }

    fn query(text: &str) -> Query<'_> {
        Query {
            text,
            vector: None,
            today: today(),
            limit: MAX_RESULTS,
            min_score: MIN_SCORE,
            scoring: Scoring::OPENCLAW,
        }
    }

    fn keys(hits: &[Hit<u32>]) -> Vec<u32> {
        hits.iter().map(|hit| hit.key).collect()
    }

    #[test]
    fn vectors_kept_as_bytes_give_nearly_the_exact_cosines() {
        // Deterministic pseudo-random unit vectors of 384 dimensions.
        let mut state = 7_u64;
        let mut unit = || {
            let raw: Vec<f32> = (0..384)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1);
                    ((state >> 33) % 2000) as f32 / 1000.0 - 1.0
                })
                .collect();
            normalized(&raw).unwrap()
        };
        for _ in 0..50 {
            let (one, two) = (unit(), unit());
            let exact: f32 = one.iter().zip(two.iter()).map(|(a, b)| a * b).sum();
            let (kept_one, kept_two) = (Quantized::of(&one), Quantized::of(&two));
            assert!((kept_one.dot(&two) - exact).abs() < 0.01);
            assert!((kept_one.dot_quantized(&kept_two) - exact).abs() < 0.01);
            assert!((kept_one.dot(&one) - 1.0).abs() < 0.01);
        }
        assert_eq!(Quantized::of(&[0.0; 4]).dot(&[1.0; 4]), 0.0);
    }

    #[test]
    fn keywords_find_the_item_that_says_them() {
        let mut index = Index::default();
        index.insert(1, "The boiler is in the cellar", None, None);
        index.insert(2, "Reset the boiler by holding the red button", None, None);
        index.insert(3, "The cat eats twice a day", None, None);
        let hits = index.search(&query("how do I reset the boiler?"), |_| true);
        assert_eq!(keys(&hits)[0], 2);
        assert!(keys(&hits).contains(&1));
        assert!(!keys(&hits).contains(&3));
        assert_eq!(terms("What's the Wi-Fi code?"), ["s", "wi", "fi", "code"]);
        assert_eq!(
            terms("Resetting boilers, batteries, boxes, stopped running"),
            ["reset", "boiler", "battery", "box", "stop", "run"]
        );
        assert_eq!(terms("glass status bus"), ["glass", "status", "bus"]);
    }

    #[test]
    fn what_is_not_visible_is_never_a_result() {
        let mut index = Index::default();
        index.insert(1, "ada's bike lock code is 4711", None, None);
        index.insert(2, "ben's bike lock code is 1234", None, None);
        let hits = index.search(&query("bike lock code"), |key| *key == 2);
        assert_eq!(keys(&hits), [2]);
        assert!(index.search(&query("4711"), |key| *key == 2).is_empty());
    }

    #[test]
    fn meaning_finds_what_words_miss_and_both_together_win() {
        let mut index = Index::default();
        // Dimensions stand for topics: [heating, pets, food].
        index.insert(
            1,
            "The boiler is in the cellar",
            Some(&[1.0, 0.0, 0.1]),
            None,
        );
        index.insert(2, "Feed the cat at six", Some(&[0.0, 1.0, 0.3]), None);
        index.insert(
            3,
            "Radiators need bleeding in autumn",
            Some(&[0.9, 0.0, 0.0]),
            None,
        );
        let mut warm = query("the house is cold");
        warm.vector = Some(&[1.0, 0.0, 0.0]);
        let hits = index.search(&warm, |_| true);
        let found = keys(&hits);
        assert!(found.contains(&1) && found.contains(&3), "{hits:?}");
        assert!(!found.contains(&2));
        let mut boiler = query("boiler");
        boiler.vector = Some(&[1.0, 0.0, 0.0]);
        assert_eq!(
            keys(&index.search(&boiler, |_| true))[0],
            1,
            "words and meaning agree"
        );
    }

    #[test]
    fn daily_notes_fade_and_long_term_memory_does_not() {
        let mut index = Index::default();
        let old: Date = "2026-08-26".parse().unwrap(); // 90 days: an eighth
        index.insert(1, "dentist appointment booked", None, Some(old));
        index.insert(2, "dentist is Dr Alvarez", None, None);
        let mut dentist = query("dentist");
        dentist.min_score = 0.0;
        let hits = index.search(&dentist, |_| true);
        assert_eq!(keys(&hits), [2, 1]);
        assert!(
            (hits[1].score * 8.0 - hits[0].score).abs() < 0.05,
            "{hits:?}"
        );
    }

    #[test]
    fn keyword_matches_pass_when_nothing_reaches_the_minimum() {
        let mut index = Index::default();
        index.insert(1, "alpha beta gamma delta epsilon", Some(&[0.0, 1.0]), None);
        let mut weak = query("alpha zeta eta theta");
        weak.vector = Some(&[1.0, 0.0]);
        let hits = index.search(&weak, |_| true);
        assert_eq!(keys(&hits), [1]);
        let mut none = query("zeta");
        none.vector = Some(&[1.0, 0.0]);
        assert!(index.search(&none, |_| true).is_empty());
    }

    #[test]
    fn near_duplicates_do_not_crowd_out_the_rest() {
        let mut index = Index::default();
        // Two copies of one note, and another note as relevant but about
        // something else (its embedding is at right angles to theirs).
        index.insert(1, "bins go out on monday", Some(&[1.0, 0.0]), None);
        index.insert(2, "bins go out on monday", Some(&[1.0, 0.0]), None);
        index.insert(
            3,
            "bins: recycling goes out monday",
            Some(&[0.0, 1.0]),
            None,
        );
        let mut bins = query("bins monday");
        bins.vector = Some(&[1.0, 1.0]);
        bins.limit = 2;
        let hits = index.search(&bins, |_| true);
        assert_eq!(keys(&hits)[0], 1);
        assert_eq!(
            keys(&hits)[1],
            3,
            "the copy yields to something new: {hits:?}"
        );
        bins.limit = 3;
        assert_eq!(keys(&index.search(&bins, |_| true)), [1, 3, 2]);
    }

    #[test]
    fn removed_items_are_gone_and_the_index_compacts() {
        let mut index = Index::default();
        for key in 0..200u32 {
            index.insert(key, &format!("note number {key} about tea"), None, None);
        }
        for key in 0..150u32 {
            index.remove(&key);
        }
        assert_eq!(index.len(), 50);
        assert!(index.slots.len() < 200, "compacted");
        let mut all = query("tea");
        all.limit = 100;
        let hits = index.search(&all, |_| true);
        assert_eq!(hits.len(), 50);
        assert!(hits.iter().all(|hit| hit.key >= 150));
        index.insert(7, "replaced", None, None);
        index.insert(7, "twice replaced", None, None);
        assert_eq!(index.len(), 51);
        assert!(normalized(&[0.0, 0.0]).is_none());
        assert!(normalized(&[f32::NAN]).is_none());
    }

    #[test]
    fn the_e5_family_gets_its_prefixes_and_other_models_none() {
        for name in [
            "multilingual-e5-small",
            "vectors/multilingual-e5-small",
            "intfloat/e5-base-v2",
        ] {
            let profile = profile(name);
            assert_eq!(profile.query_prefix, "query: ", "{name}");
            assert_eq!(profile.passage_prefix, "passage: ", "{name}");
            assert!(profile.scoring.reads_hangul, "{name}");
        }
        for name in ["all-MiniLM-L6-v2", "vectors/nomic-embed-text", "e5x"] {
            let profile = profile(name);
            assert_eq!(profile.query_prefix, "", "{name}");
            assert!(!profile.scoring.reads_hangul, "{name}");
        }
    }

    /// Unit vectors at a chosen cosine to the first axis.
    fn at_cosine(cosine: f32) -> Vec<f32> {
        vec![cosine, (1.0 - cosine * cosine).sqrt(), 0.0]
    }

    #[test]
    fn bunched_cosines_are_spread_but_a_lone_unrelated_item_is_not_lifted() {
        let axis = [1.0, 0.0, 0.0];
        let search = |index: &Index<u32>| {
            index.search(
                &Query {
                    vector: Some(&axis),
                    scoring: E5_SCORING,
                    ..query("")
                },
                |_| true,
            )
        };
        // e5-like cosines: all between 0.7 and 0.9; the best comes first
        // and clears the minimum, the lowest does not.
        let mut index = Index::default();
        for (key, cosine) in [(1, 0.72), (2, 0.88), (3, 0.80)] {
            index.insert(key, "", Some(&at_cosine(cosine)), None);
        }
        let hits = search(&index);
        assert_eq!(keys(&hits)[0], 2);
        assert!(!keys(&hits).contains(&1), "{hits:?}");
        // Two notes, both unrelated (0.69 and 0.77, as e5 gives two boiler
        // notes for a question about a bike lock): the spread starts at the
        // model's floor, not at the lower of them, so neither passes.
        let mut few = Index::default();
        few.insert(8, "", Some(&at_cosine(0.69)), None);
        few.insert(9, "", Some(&at_cosine(0.77)), None);
        assert!(search(&few).is_empty(), "{:?}", search(&few));
        // A Korean question to an English-only model goes by keywords.
        let mut korean = Index::default();
        korean.insert(1, "보일러 재시작", Some(&at_cosine(0.1)), None);
        korean.insert(2, "쓰레기 버리는 날", Some(&at_cosine(0.99)), None);
        let hits = korean.search(
            &Query {
                vector: Some(&axis),
                scoring: ENGLISH_SCORING,
                ..query("보일러 리셋")
            },
            |_| true,
        );
        assert_eq!(keys(&hits), vec![1]);
    }

    #[test]
    fn long_texts_are_cut_into_windows_at_spaces_and_pooled() {
        let short = "보일러 리셋은 어떻게 해?";
        assert_eq!(windows(short, WINDOW_CHARS), vec![short]);
        assert_eq!(windows("", 10), vec![""]);
        let long = "가나다 ".repeat(300);
        let cut = windows(&long, WINDOW_CHARS);
        assert!(cut.len() >= 3, "{}", cut.len());
        for window in &cut {
            assert!(window.chars().count() <= WINDOW_CHARS);
            assert!(window.ends_with('다'), "cut inside a word: {window:?}");
        }
        let rejoined: String = cut.join(" ");
        assert_eq!(rejoined, long.trim());
        // A run with no space is cut at the limit.
        let unbroken = "a".repeat(1000);
        let cut = windows(&unbroken, 480);
        assert_eq!(
            cut.iter().map(|window| window.len()).collect::<Vec<_>>(),
            vec![480, 480, 40]
        );
        let mean = pooled(&[vec![1.0, 0.0], vec![0.0, 1.0]], &[3, 1]).unwrap();
        assert!((mean[0] - 0.9487).abs() < 1e-3 && (mean[1] - 0.3162).abs() < 1e-3);
        assert!(pooled(&[], &[]).is_none());
        assert!(pooled(&[vec![1.0], vec![1.0, 2.0]], &[1, 1]).is_none());
    }
}
