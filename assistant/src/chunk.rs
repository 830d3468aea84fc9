//! Household documents cut into passages that a search can find and an
//! answer can cite: about 400 tokens each with 80 tokens carried over from
//! the passage before (OpenClaw's memory chunks), never across a Markdown
//! heading, each with the heading it sits under and its lines (or its PDF
//! page), so an answer can say "boiler.md, Resetting the boiler, lines
//! 12-20".

/// Characters aimed at per passage (about 400 tokens).
pub const TARGET_CHARS: usize = 1_600;
/// Characters carried over into the next passage (about 80 tokens).
pub const OVERLAP_CHARS: usize = 320;

/// One passage of a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Passage {
    /// Its text.
    pub text: String,
    /// The Markdown heading it sits under, if any.
    pub heading: Option<String>,
    /// Its first and last line (from 1), within its page.
    pub lines: (usize, usize),
    /// Its PDF page (from 1), if the document has pages.
    pub page: Option<usize>,
}

impl Passage {
    /// How an answer cites it: `boiler.md › Resetting, lines 12-20` or
    /// `manual.pdf, page 3`.
    pub fn citation(&self, document: &str) -> String {
        let mut citation = document.to_owned();
        if let Some(heading) = &self.heading {
            citation.push_str(" › ");
            citation.push_str(heading);
        }
        match self.page {
            Some(page) => citation.push_str(&format!(", page {page}")),
            None if self.lines.0 == self.lines.1 => {
                citation.push_str(&format!(", line {}", self.lines.0));
            }
            None => citation.push_str(&format!(", lines {}-{}", self.lines.0, self.lines.1)),
        }
        citation
    }
}

/// The passages of a document given page by page (one page for text and
/// Markdown; `markdown` makes `#` lines headings; `paged` documents, PDFs,
/// are cited by page).
pub fn passages(pages: &[String], markdown: bool, paged: bool) -> Vec<Passage> {
    let mut all = Vec::new();
    for (index, page) in pages.iter().enumerate() {
        let number = paged.then_some(index + 1);
        all.extend(page_passages(page, markdown, number));
    }
    all
}

/// A block of consecutive non-blank lines.
struct Block {
    text: String,
    first: usize,
    last: usize,
}

fn page_passages(text: &str, markdown: bool, page: Option<usize>) -> Vec<Passage> {
    let mut passages = Vec::new();
    let mut heading: Option<String> = None;
    let mut current: Option<Block> = None;
    let mut section: Vec<Block> = Vec::new();
    let flush_section =
        |section: &mut Vec<Block>, heading: &Option<String>, out: &mut Vec<Passage>| {
            if !section.is_empty() {
                out.extend(pack(std::mem::take(section), heading.clone(), page));
            }
        };
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let title = markdown.then(|| heading_of(line)).flatten();
        if (line.trim().is_empty() || title.is_some())
            && let Some(block) = current.take()
        {
            section.push(block);
        }
        if let Some(title) = title {
            flush_section(&mut section, &heading, &mut passages);
            heading = Some(title);
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        match &mut current {
            Some(block) => {
                block.text.push('\n');
                block.text.push_str(line.trim_end());
                block.last = number;
            }
            None => {
                current = Some(Block {
                    text: line.trim_end().to_owned(),
                    first: number,
                    last: number,
                });
            }
        }
    }
    if let Some(block) = current.take() {
        section.push(block);
    }
    flush_section(&mut section, &heading, &mut passages);
    passages
}

/// A Markdown ATX heading's text (`## Resetting` → `Resetting`).
fn heading_of(line: &str) -> Option<String> {
    let trimmed = line.trim_start();
    let hashes = trimmed.chars().take_while(|c| *c == '#').count();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let rest = &trimmed[hashes..];
    if !rest.is_empty() && !rest.starts_with(' ') {
        return None;
    }
    let title = rest.trim().trim_end_matches('#').trim();
    (!title.is_empty()).then(|| title.to_owned())
}

/// Packs a section's blocks into passages of about [`TARGET_CHARS`],
/// carrying about [`OVERLAP_CHARS`] of each passage's end into the next.
fn pack(blocks: Vec<Block>, heading: Option<String>, page: Option<usize>) -> Vec<Passage> {
    let mut pieces = Vec::new();
    for block in blocks {
        pieces.extend(split_long(block));
    }
    let mut passages: Vec<Passage> = Vec::new();
    let mut text = String::new();
    let mut lines = (0, 0);
    let mut included: Vec<&Block> = Vec::new();
    let mut index = 0;
    while index < pieces.len() {
        let piece = &pieces[index];
        let length = text.chars().count();
        if length > 0 && length + piece.text.chars().count() > TARGET_CHARS {
            passages.push(Passage {
                text: std::mem::take(&mut text),
                heading: heading.clone(),
                lines,
                page,
            });
            // Carry the last pieces over, up to the overlap and only as
            // much as still leaves room for the next piece.
            let room = TARGET_CHARS
                .saturating_sub(piece.text.chars().count())
                .min(OVERLAP_CHARS);
            let mut carried: Vec<&Block> = Vec::new();
            let mut size = 0;
            for earlier in included.iter().rev() {
                let more = earlier.text.chars().count() + 2;
                if size + more > room || carried.len() + 1 == included.len() {
                    break;
                }
                size += more;
                carried.push(earlier);
            }
            carried.reverse();
            included = carried;
            for earlier in &included {
                append(&mut text, &mut lines, earlier);
            }
            continue;
        }
        append(&mut text, &mut lines, piece);
        included.push(piece);
        index += 1;
    }
    if !text.is_empty() {
        passages.push(Passage {
            text,
            heading,
            lines,
            page,
        });
    }
    passages
}

fn append(text: &mut String, lines: &mut (usize, usize), block: &Block) {
    if text.is_empty() {
        *lines = (block.first, block.last);
    } else {
        text.push_str("\n\n");
        lines.1 = block.last;
    }
    text.push_str(&block.text);
}

/// A block longer than a passage, cut at line ends where it can be and
/// at sentence or word ends within a long line.
fn split_long(block: Block) -> Vec<Block> {
    if block.text.chars().count() <= TARGET_CHARS {
        return vec![block];
    }
    let mut pieces = Vec::new();
    let mut piece = String::new();
    let mut first = block.first;
    for (offset, line) in block.text.lines().enumerate() {
        let number = block.first + offset;
        for part in cut_line(line) {
            if !piece.is_empty() && piece.chars().count() + part.chars().count() > TARGET_CHARS {
                pieces.push(Block {
                    text: std::mem::take(&mut piece),
                    first,
                    last: number,
                });
                first = number;
            }
            if !piece.is_empty() {
                piece.push('\n');
            }
            piece.push_str(part);
        }
    }
    if !piece.is_empty() {
        pieces.push(Block {
            text: piece,
            first,
            last: block.last,
        });
    }
    pieces
}

/// A line cut into parts of at most [`TARGET_CHARS`], at sentence ends,
/// else at spaces, else anywhere.
fn cut_line(line: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = line;
    while rest.chars().count() > TARGET_CHARS {
        let limit = rest
            .char_indices()
            .nth(TARGET_CHARS)
            .map_or(rest.len(), |(index, _)| index);
        let window = &rest[..limit];
        let cut = window
            .rfind(". ")
            .map(|index| index + 2)
            .or_else(|| window.rfind(' ').map(|index| index + 1))
            .filter(|index| *index > 0)
            .unwrap_or(limit);
        parts.push(rest[..cut].trim_end());
        rest = &rest[cut..];
    }
    if !rest.is_empty() {
        parts.push(rest);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Vec<String> {
        vec![text.to_owned()]
    }

    #[test]
    fn headings_start_passages_and_name_them() {
        let document = "# Boiler\n\nIt is in the cellar.\n\n## Resetting\n\nHold the red button\nfor ten seconds.\n\n## Pressure\n\nKeep it at 1.5 bar.\n";
        let found = passages(&one(document), true, false);
        let summary: Vec<(Option<&str>, &str, (usize, usize))> = found
            .iter()
            .map(|passage| {
                (
                    passage.heading.as_deref(),
                    passage.text.as_str(),
                    passage.lines,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (Some("Boiler"), "It is in the cellar.", (3, 3)),
                (
                    Some("Resetting"),
                    "Hold the red button\nfor ten seconds.",
                    (7, 8)
                ),
                (Some("Pressure"), "Keep it at 1.5 bar.", (12, 12)),
            ]
        );
        assert_eq!(
            found[1].citation("boiler.md"),
            "boiler.md › Resetting, lines 7-8"
        );
        // Not Markdown: a `#` line is text.
        assert_eq!(
            passages(&one("# not a heading\nx"), false, false)[0].heading,
            None
        );
        assert_eq!(heading_of("#hashtag"), None);
        assert_eq!(heading_of("### Three ###"), Some("Three".into()));
    }

    #[test]
    fn long_sections_are_cut_near_the_target_with_overlap() {
        let paragraphs: Vec<String> = (0..40)
            .map(|index| format!("Paragraph {index:02}. {}", "word ".repeat(40)))
            .collect();
        let document = paragraphs.join("\n\n");
        let found = passages(&one(&document), true, false);
        // About 8,600 characters: 7 passages of 6-7 paragraphs, one carried over.
        assert_eq!(found.len(), 7, "{} passages", found.len());
        for passage in &found {
            assert!(
                passage.text.chars().count() <= TARGET_CHARS + 10,
                "{} characters",
                passage.text.chars().count()
            );
        }
        // Each passage after the first begins with the previous one's end.
        for pair in found.windows(2) {
            let last_paragraph = pair[0].text.rsplit("\n\n").next().unwrap();
            assert!(
                pair[1].text.starts_with(last_paragraph),
                "no overlap between\n{}\nand\n{}",
                pair[0].text,
                pair[1].text
            );
        }
        // Every paragraph is somewhere, in order.
        let all: String = found.iter().map(|passage| passage.text.as_str()).collect();
        for index in 0..40 {
            assert!(all.contains(&format!("Paragraph {index:02}.")));
        }
    }

    #[test]
    fn a_paragraph_longer_than_a_passage_is_cut_at_sentences() {
        let sentence = "The quick brown fox jumps over the lazy dog again. ";
        let long = sentence.repeat(100);
        let found = passages(&one(&long), false, false);
        assert!(found.len() >= 3);
        for passage in &found {
            assert!(passage.text.chars().count() <= TARGET_CHARS);
            assert!(passage.text.trim_end().ends_with('.'), "{:?}", passage.text);
        }
        // One endless word is still cut.
        let endless = "x".repeat(5_000);
        let found = passages(&one(&endless), false, false);
        assert_eq!(
            found
                .iter()
                .map(|passage| passage.text.len())
                .sum::<usize>(),
            5_000
        );
    }

    #[test]
    fn pdf_pages_are_cited_by_page() {
        let pages = vec!["Page one text.".to_owned(), "Second page.".to_owned()];
        let found = passages(&pages, false, true);
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].page, Some(2));
        assert_eq!(found[1].citation("manual.pdf"), "manual.pdf, page 2");
        let single = passages(&one("One page only."), false, true);
        assert_eq!(single[0].citation("leaflet.pdf"), "leaflet.pdf, page 1");
        assert_eq!(
            passages(&one("just one line"), false, false)[0].citation("a.txt"),
            "a.txt, line 1"
        );
    }
}
