//! The household's documents: the configured folders, indexed into
//! passages (kept in the [`DocumentStore`], searchable in memory) and read
//! only by the conversations their folder is for
//! (`hearth_assistant::scope::Folder`). Files are walked and read beneath
//! their folder ([`library`]); PDFs by a confined child process.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use hearth_assistant::api::{DocumentItem, RefusedDocument};
use hearth_assistant::scope::{Access, Asker, Folder};
use hearth_assistant::search::Query;

use super::clock::Clock;
use super::embedder::Embedder;
use super::library::{self, Library, PassageInfo};
use super::store::{DocumentStore, KnownDocument, StoreError, StoredPassage};
use crate::config::DocumentFolder;

/// The documents service.
pub struct Documents {
    store: DocumentStore,
    embedder: Arc<Embedder>,
    clock: Clock,
    library: RwLock<Library>,
    folders: Vec<(DocumentFolder, Folder)>,
    /// This gateway's executable, which reads PDFs (`extract pdf`).
    program: PathBuf,
}

impl Documents {
    /// Loads the passages of `store` for the configured `folders`.
    pub async fn load(
        store: DocumentStore,
        folders: &[DocumentFolder],
        program: PathBuf,
        embedder: Arc<Embedder>,
        clock: Clock,
    ) -> Result<Documents, StoreError> {
        let mut library = Library::default();
        store.passages(|passage| library.add(passage)).await?;
        library.shrink_to_fit();
        let folders = folders
            .iter()
            .map(|folder| {
                let access = match (&folder.room, &folder.member, folder.granted) {
                    (Some(room), _, _) => Access::Room(room.clone()),
                    (_, Some(member), _) => Access::Member(member.clone()),
                    (_, _, true) => Access::Granted,
                    _ => Access::Household,
                };
                (
                    folder.clone(),
                    Folder {
                        name: folder.name.clone(),
                        access,
                    },
                )
            })
            .collect();
        Ok(Documents {
            store,
            embedder,
            clock,
            library: RwLock::new(library),
            folders,
            program,
        })
    }

    /// Whether any folder is configured.
    pub fn any_folders(&self) -> bool {
        !self.folders.is_empty()
    }

    /// How many passages are indexed.
    pub fn passages(&self) -> usize {
        hearth_runtime::read(&self.library).len()
    }

    /// The folders `asker`'s conversation may read.
    pub fn readable(&self, asker: &Asker) -> HashSet<String> {
        self.folders
            .iter()
            .filter(|(_, folder)| folder.readable_by(asker))
            .map(|(_, folder)| folder.name.clone())
            .collect()
    }

    /// The passages best matching `query` in the folders `asker`'s
    /// conversation may read, best first, with their texts.
    pub async fn find(&self, asker: &Asker, query: &Query<'_>) -> Vec<(PassageInfo, String)> {
        let readable = self.readable(asker);
        if readable.is_empty() {
            return Vec::new();
        }
        let found = hearth_runtime::read(&self.library).search(query, &readable);
        let ids: Vec<i64> = found.iter().map(|(id, _)| *id).collect();
        // A passage taken out since (its file changed) is left out.
        let Ok(mut texts) = self.store.passage_texts(&ids).await else {
            return Vec::new();
        };
        found
            .into_iter()
            .filter_map(|(id, passage)| Some((passage, texts.remove(&id)?)))
            .collect()
    }

    /// The documents `asker`'s conversation may read: those indexed, and
    /// those refused with why.
    pub async fn list(
        &self,
        asker: &Asker,
    ) -> Result<(Vec<DocumentItem>, Vec<RefusedDocument>), StoreError> {
        let readable = self.readable(asker);
        let mut documents = Vec::new();
        let mut refused = Vec::new();
        for document in self
            .store
            .documents()
            .await?
            .into_iter()
            .filter(|document| readable.contains(&document.folder))
        {
            match document.refused {
                Some(reason) => refused.push(RefusedDocument {
                    folder: document.folder,
                    path: document.path,
                    reason,
                }),
                None => documents.push(DocumentItem {
                    folder: document.folder,
                    path: document.path,
                    passages: usize::try_from(document.passages).unwrap_or(0),
                }),
            }
        }
        Ok((documents, refused))
    }

    /// Looks at every folder once: new and changed documents are indexed
    /// (or refused), removed ones forgotten.
    pub async fn index_folders(&self) {
        let Ok(known) = self.store.documents().await else {
            return;
        };
        let known: HashMap<(String, String), KnownDocument> = known
            .into_iter()
            .map(|document| ((document.folder.clone(), document.path.clone()), document))
            .collect();
        let mut seen: HashSet<(String, String)> = HashSet::new();
        let (mut indexed, mut refused) = (0, 0);
        for (config, folder) in &self.folders {
            let root = config.path.clone();
            let Ok(found) = tokio::task::spawn_blocking(move || library::walk(&root)).await else {
                continue;
            };
            for file in found {
                let key = (folder.name.clone(), file.path.clone());
                let before = known.get(&key);
                seen.insert(key);
                if library::unchanged(&file, before) {
                    continue;
                }
                match self.index_one(&folder.name, &file).await {
                    Some(true) => indexed += 1,
                    Some(false) => refused += 1,
                    None => {}
                }
            }
        }
        for (key, _) in known.iter().filter(|(key, _)| !seen.contains(*key)) {
            if let Ok(ids) = self.store.passage_ids(&key.0, &key.1).await {
                hearth_runtime::write(&self.library).remove(&ids);
            }
            let _ = self.store.drop_document(&key.0, &key.1).await;
        }
        if indexed + refused > 0 {
            tracing::info!(
                indexed,
                refused,
                passages = self.passages(),
                "household documents indexed"
            );
        }
    }

    /// Indexes one document whole: `Some(true)` indexed, `Some(false)`
    /// refused (with the reason stored), `None` to try again later (the
    /// embedding model did not answer).
    async fn index_one(&self, folder: &str, file: &library::Found) -> Option<bool> {
        let mut document = KnownDocument {
            folder: folder.to_owned(),
            path: file.path.clone(),
            size: i64::try_from(file.size).unwrap_or(i64::MAX),
            modified: file.modified,
            refused: None,
            passages: 0,
        };
        let refuse = |reason: String, mut document: KnownDocument| async move {
            document.refused = Some(reason);
            if let Ok(ids) = self
                .store
                .passage_ids(&document.folder, &document.path)
                .await
            {
                hearth_runtime::write(&self.library).remove(&ids);
            }
            let _ = self.store.refuse_document(&document).await;
            Some(false)
        };
        if file.link {
            return refuse(
                "it is a symbolic link, and links are not followed: put the document itself in the folder".into(),
                document,
            )
            .await;
        }
        let pages = match library::extract_text(file, &self.program).await {
            Ok(pages) => pages,
            Err(reason) => return refuse(reason.to_string(), document).await,
        };
        let mut passages = library::passages_of(&file.path, file.format, &pages);
        if passages.is_empty() {
            return refuse(
                hearth_assistant::extract::ExtractError::Empty.to_string(),
                document,
            )
            .await;
        }
        if self.embedder.model().is_some() {
            let texts: Vec<String> = passages
                .iter()
                .map(|passage| passage.text.clone())
                .collect();
            let mut vectors = Vec::with_capacity(texts.len());
            for batch in library::batches(&texts) {
                vectors.extend(self.embedder.embed(batch).await?);
            }
            for (passage, vector) in passages.iter_mut().zip(vectors) {
                passage.vector = Some(vector);
            }
        }
        let old = self
            .store
            .passage_ids(folder, &file.path)
            .await
            .unwrap_or_default();
        document.passages = i64::try_from(passages.len()).unwrap_or(0);
        let ids = self
            .store
            .index_document(&document, &passages, self.clock.now().as_millisecond())
            .await
            .ok()?;
        let mut library = hearth_runtime::write(&self.library);
        library.remove(&old);
        for (id, passage) in ids.into_iter().zip(passages) {
            library.add(StoredPassage {
                id,
                folder: folder.to_owned(),
                path: file.path.clone(),
                citation: passage.citation,
                text: passage.text,
                vector: passage.vector,
            });
        }
        Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assistant::store::Database;
    use crate::assistant::testing::query;

    fn folder(name: &str, path: &std::path::Path, member: Option<&str>) -> DocumentFolder {
        DocumentFolder {
            name: name.into(),
            path: path.into(),
            room: None,
            member: member.map(str::to_owned),
            granted: false,
        }
    }

    fn asker(member: &str) -> Asker {
        Asker {
            member: member.into(),
            ..Asker::default()
        }
    }

    #[tokio::test]
    async fn a_folder_is_indexed_read_by_whom_it_is_for_and_a_removed_file_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let house = dir.path().join("house");
        let ada = dir.path().join("ada");
        std::fs::create_dir_all(&house).unwrap();
        std::fs::create_dir_all(&ada).unwrap();
        std::fs::write(
            house.join("boiler.md"),
            "# Boiler\n\nThe boiler's pressure should read 1.5 bar.\n",
        )
        .unwrap();
        std::fs::write(
            ada.join("diary.txt"),
            "The boiler engineer owes me a call.\n",
        )
        .unwrap();
        std::fs::write(house.join("broken.pdf"), "not a pdf at all").unwrap();
        // A link in the household's folder to ada's diary: listed as
        // refused, with why, and never read.
        std::os::unix::fs::symlink(ada.join("diary.txt"), house.join("shortcut.txt")).unwrap();
        let db = Database::open(dir.path(), None).await.unwrap();
        let documents = Documents::load(
            DocumentStore::new(db),
            &[
                folder("house", &house, None),
                folder("ada", &ada, Some("ada")),
            ],
            // No PDF reader here: the PDF is refused, with why.
            dir.path().join("no-such-program"),
            Arc::new(Embedder::none()),
            Clock::System,
        )
        .await
        .unwrap();
        documents.index_folders().await;

        let found = |member: &str| {
            let documents = &documents;
            let member = member.to_owned();
            async move {
                documents
                    .find(&asker(&member), &query("boiler"))
                    .await
                    .into_iter()
                    .map(|(passage, _)| passage.citation)
                    .collect::<Vec<_>>()
            }
        };
        let for_ben = found("ben").await;
        assert_eq!(for_ben.len(), 1, "{for_ben:?}");
        assert!(for_ben[0].starts_with("boiler.md"), "{for_ben:?}");
        assert_eq!(found("ada").await.len(), 2, "ada reads her own folder too");

        let (listed, refused) = documents.list(&asker("ben")).await.unwrap();
        assert_eq!(listed.len(), 1);
        let refused: Vec<(&str, &str)> = refused
            .iter()
            .map(|document| (document.path.as_str(), document.reason.as_str()))
            .collect();
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert_eq!(refused[0].0, "broken.pdf");
        assert!(!refused[0].1.is_empty());
        assert_eq!(refused[1].0, "shortcut.txt");
        assert!(refused[1].1.contains("symbolic link"), "{refused:?}");
        assert!(
            documents.readable(&asker("ben")).contains("house")
                && !documents.readable(&asker("ben")).contains("ada")
        );

        std::fs::remove_file(house.join("boiler.md")).unwrap();
        documents.index_folders().await;
        assert!(found("ben").await.is_empty());
    }
}
