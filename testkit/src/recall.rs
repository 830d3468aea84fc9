//! The household search sets (`assistant/tests/recall/{en,ko}`): short
//! household documents in Markdown (boiler, rubbish, internet, car, dog,
//! appliances, emergencies, plants) and questions worded as people ask,
//! unlike the documents, each with the document and section that answers
//! it. What the assistant's search is measured on: how often the right
//! passage comes first, and how often it is among the six given to the
//! model (`cargo test -p hearth-assistant --test recall`, and the
//! embedding models in `cargo bench -p hearth-gateway --bench assistant`).

use crate::llama::workspace_root;

/// A question and where its answer is.
#[derive(Clone, Debug)]
pub struct Question {
    /// As a member asks it.
    pub text: String,
    /// The document that answers it.
    pub document: String,
    /// The section (Markdown heading) whose passage answers it.
    pub section: String,
}

/// One language's set.
#[derive(Clone, Debug)]
pub struct RecallSet {
    /// Its documents: file name and Markdown text.
    pub documents: Vec<(String, String)>,
    /// Its questions.
    pub questions: Vec<Question>,
}

/// The set of `language` (`en`, `ko`).
pub fn recall_set(language: &str) -> RecallSet {
    let dir = workspace_root()
        .join("assistant/tests/recall")
        .join(language);
    let mut documents: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("the recall set")
        .map(|entry| entry.expect("a file").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .map(|path| {
            let name = path
                .file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read_to_string(&path).expect("a document"))
        })
        .collect();
    documents.sort();
    let questions = std::fs::read_to_string(dir.join("questions.tsv"))
        .expect("the questions")
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let [text, document, section] = fields.as_slice() else {
                panic!("a question line has three fields: {line}");
            };
            Question {
                text: (*text).to_owned(),
                document: (*document).to_owned(),
                section: (*section).to_owned(),
            }
        })
        .collect();
    RecallSet {
        documents,
        questions,
    }
}

/// How often the right passage was found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recall {
    /// First.
    pub first: usize,
    /// Among those given.
    pub within: usize,
    /// Of how many questions.
    pub asked: usize,
}

impl Recall {
    /// Counts one question's results, best first, each its document and
    /// section.
    pub fn count(&mut self, question: &Question, ranked: &[(String, String)]) {
        let right = |(document, section): &(String, String)| {
            *document == question.document && *section == question.section
        };
        self.asked += 1;
        if ranked.first().is_some_and(right) {
            self.first += 1;
        }
        if ranked.iter().any(right) {
            self.within += 1;
        }
    }

    /// "52/60 first (87%), 59/60 within"
    pub fn summary(&self) -> String {
        let percent = |count: usize| count * 100 / self.asked.max(1);
        format!(
            "{}/{} first ({}%), {}/{} within ({}%)",
            self.first,
            self.asked,
            percent(self.first),
            self.within,
            self.asked,
            percent(self.within)
        )
    }
}
