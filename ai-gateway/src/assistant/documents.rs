//! The household's documents: the configured folders, indexed into
//! passages (kept in the [`DocumentStore`], searchable in memory) and read
//! only by the conversations their folder is for
//! (`hearth_assistant::scope::Folder`). Files are walked and read beneath
//! their folder ([`library`]); PDFs by a confined child process. Besides the
//! folders, each member has the documents they shared with the assistant
//! (`shared:MEMBER`, read only in their own conversations), kept in the
//! store alone: indexed or refused as a folder's file would be.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use hearth_assistant::api::{DocumentItem, RefusedDocument};
use hearth_assistant::scope::{Access, Asker, Folder, SHARED_PREFIX, shared_folder};
use hearth_assistant::search::Query;

use super::clock::Clock;
use super::embedder::Embedder;
use super::library::{self, Library, PassageInfo};
use super::store::{DocumentStore, KnownDocument, StoreError, StoredPassage};
use crate::config::DocumentFolder;

/// What became of a document given to be indexed.
#[derive(Debug, PartialEq, Eq)]
pub enum Indexed {
    /// Indexed into this many passages.
    Passages(usize),
    /// Refused, with why (stored, and listed).
    Refused(String),
    /// Not now: the embedding model did not answer.
    Later,
}

/// The documents service.
pub struct Documents {
    store: DocumentStore,
    embedder: Arc<Embedder>,
    clock: Clock,
    library: RwLock<Library>,
    folders: Vec<(DocumentFolder, Folder)>,
    /// This gateway's executable, which reads PDFs (`extract pdf`).
    program: PathBuf,
    /// Some member has shared a document (the document tool is offered).
    any_shared: std::sync::atomic::AtomicBool,
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
        let any_shared = store.any_in_folders_starting(SHARED_PREFIX).await?;
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
            any_shared: any_shared.into(),
        })
    }

    /// Whether any folder is configured, or any document shared.
    pub fn any_folders(&self) -> bool {
        !self.folders.is_empty() || self.any_shared.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many passages are indexed.
    pub fn passages(&self) -> usize {
        hearth_runtime::read(&self.library).len()
    }

    /// The folders `asker`'s conversation may read.
    pub fn readable(&self, asker: &Asker) -> HashSet<String> {
        let shared = shared_folder(&asker.member);
        self.folders
            .iter()
            .map(|(_, folder)| folder)
            .chain(std::iter::once(&shared))
            .filter(|folder| folder.readable_by(asker))
            .map(|folder| folder.name.clone())
            .collect()
    }

    /// Keeps the document `name` that `member` shared (`bytes`) among
    /// their documents, replacing one of that name: read and indexed as a
    /// folder's file would be, under the same limits, or refused with why.
    pub async fn add_shared(&self, member: &str, name: &str, bytes: &[u8]) -> Indexed {
        let (name, format) = match library::shared_name(name) {
            Ok(found) => found,
            Err(why) => return Indexed::Refused(why.to_string()),
        };
        let document = KnownDocument {
            folder: shared_folder(member).name,
            path: name,
            size: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
            modified: self.clock.now().as_millisecond(),
            refused: None,
            passages: 0,
        };
        self.any_shared
            .store(true, std::sync::atomic::Ordering::Relaxed);
        match library::extract_bytes(format, bytes, &self.program).await {
            Ok(pages) => self.index_pages(document, format, &pages).await,
            Err(reason) => self.refuse(document, reason.to_string()).await,
        }
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
                    Indexed::Passages(_) => indexed += 1,
                    Indexed::Refused(_) => refused += 1,
                    Indexed::Later => {}
                }
            }
        }
        // Shared documents are in no folder: they stay until replaced.
        let gone = known
            .iter()
            .filter(|(key, _)| !seen.contains(*key) && !key.0.starts_with(SHARED_PREFIX));
        for (key, _) in gone {
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

    /// Indexes one file of a folder whole.
    async fn index_one(&self, folder: &str, file: &library::Found) -> Indexed {
        let document = KnownDocument {
            folder: folder.to_owned(),
            path: file.path.clone(),
            size: i64::try_from(file.size).unwrap_or(i64::MAX),
            modified: file.modified,
            refused: None,
            passages: 0,
        };
        if file.link {
            return self
                .refuse(document, hearth_assistant::extract::LINK_REFUSAL.into())
                .await;
        }
        match library::extract_text(file, &self.program).await {
            Ok(pages) => self.index_pages(document, file.format, &pages).await,
            Err(reason) => self.refuse(document, reason.to_string()).await,
        }
    }

    /// Records `document` as refused for `reason`, dropping what was
    /// indexed of an earlier version.
    async fn refuse(&self, mut document: KnownDocument, reason: String) -> Indexed {
        document.refused = Some(reason.clone());
        if let Ok(ids) = self
            .store
            .passage_ids(&document.folder, &document.path)
            .await
        {
            hearth_runtime::write(&self.library).remove(&ids);
        }
        let _ = self.store.refuse_document(&document).await;
        Indexed::Refused(reason)
    }

    /// Cuts `pages` of `document` into passages, embeds them, and stores
    /// them in place of an earlier version's, all or nothing.
    async fn index_pages(
        &self,
        mut document: KnownDocument,
        format: hearth_assistant::extract::Format,
        pages: &[String],
    ) -> Indexed {
        let mut passages = library::passages_of(&document.path, format, pages);
        if passages.is_empty() {
            return self
                .refuse(
                    document,
                    hearth_assistant::extract::ExtractError::Empty.to_string(),
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
                match self.embedder.embed_passages(batch).await {
                    Some(batch) => vectors.extend(batch),
                    None => return Indexed::Later,
                }
            }
            for (passage, vector) in passages.iter_mut().zip(vectors) {
                passage.vector = Some(vector);
            }
        }
        let old = self
            .store
            .passage_ids(&document.folder, &document.path)
            .await
            .unwrap_or_default();
        document.passages = i64::try_from(passages.len()).unwrap_or(0);
        let Ok(ids) = self
            .store
            .index_document(
                &document,
                &passages,
                document.folder.starts_with(SHARED_PREFIX),
                self.clock.now().as_millisecond(),
            )
            .await
        else {
            return Indexed::Later;
        };
        let mut library = hearth_runtime::write(&self.library);
        library.remove(&old);
        let count = passages.len();
        for (id, passage) in ids.into_iter().zip(passages) {
            library.add(StoredPassage {
                id,
                folder: document.folder.clone(),
                path: document.path.clone(),
                citation: passage.citation,
                text: passage.text,
                vector: passage.vector,
            });
        }
        Indexed::Passages(count)
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

    /// The store in `dir` (sealed with a test key) read with no folders.
    async fn shared_only(dir: &std::path::Path) -> (Database, Documents) {
        let key = hearth_files::sealed::AtRestKey::new(&[7; 32]);
        let db = Database::open(dir, Some(key)).await.unwrap();
        let documents = Documents::load(
            DocumentStore::new(db.clone()),
            &[],
            dir.join("no-such-program"),
            Arc::new(Embedder::none()),
            Clock::System,
        )
        .await
        .unwrap();
        (db, documents)
    }

    #[tokio::test]
    async fn a_shared_document_is_its_members_alone_replaced_by_name_and_kept_through_rescans() {
        let dir = tempfile::tempdir().unwrap();
        let (db, documents) = shared_only(dir.path()).await;
        assert!(!documents.any_folders(), "nothing shared, no folders");
        let said = documents
            .add_shared(
                "ada",
                " boiler.md ",
                b"# Boiler\n\nThe boiler's pressure should read 1.5 bar.\n",
            )
            .await;
        assert_eq!(said, Indexed::Passages(1));
        assert!(documents.any_folders(), "the document tool is offered now");
        let found = |asker: Asker| {
            let documents = &documents;
            async move {
                documents
                    .find(&asker, &query("boiler pressure"))
                    .await
                    .len()
            }
        };
        assert_eq!(
            found(asker("ada")).await,
            1,
            "ada's own conversation reads it"
        );
        assert_eq!(found(asker("ben")).await, 0, "ben's does not");
        let in_room = Asker {
            room: Some(hearth_roster::RoomId::parse("household").unwrap()),
            ..asker("ada")
        };
        assert_eq!(found(in_room).await, 0, "nor does a room ada asks in");

        // Shared again under the same name: replaced, not added.
        let said = documents
            .add_shared("ada", "boiler.md", b"The boiler was serviced in May.\n")
            .await;
        assert_eq!(said, Indexed::Passages(1));
        assert_eq!(documents.passages(), 1);
        // Sealed at rest: the text is nowhere in the store's file.
        db.close().await;
        let stored: Vec<u8> = ["assistant.db", "assistant.db-wal"]
            .iter()
            .flat_map(|name| std::fs::read(dir.path().join(name)).unwrap_or_default())
            .collect();
        assert!(
            stored.windows(10).any(|window| window == b"shared:ada"),
            "the folder's name is stored as it is: the store is read"
        );
        assert!(
            !stored.windows(8).any(|window| window == b"serviced"),
            "a shared document's text is sealed"
        );
        // In no folder, it stays through a restart and a rescan.
        let (_db, documents) = shared_only(dir.path()).await;
        assert!(documents.any_folders());
        documents.index_folders().await;
        assert!(
            documents
                .find(&asker("ada"), &query("pressure"))
                .await
                .is_empty(),
            "the old text is gone"
        );
        assert_eq!(
            documents
                .find(&asker("ada"), &query("serviced"))
                .await
                .len(),
            1
        );
        let (listed, _) = documents.list(&asker("ada")).await.unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|item| (item.folder.as_str(), item.path.as_str()))
                .collect::<Vec<_>>(),
            [("shared:ada", "boiler.md")]
        );

        // Refused, with why: a folder in the name, another kind of file,
        // nothing to read, a PDF that is none; each listed for ada.
        for (name, bytes, why) in [
            ("../ben/notes.md", &b"x"[..], "file name"),
            ("photo.png", &b"x"[..], "PDF, text"),
            ("empty.txt", &b"   "[..], ""),
            ("broken.pdf", &b"not a pdf"[..], ""),
        ] {
            match documents.add_shared("ada", name, bytes).await {
                Indexed::Refused(reason) => assert!(reason.contains(why), "{name}: {reason}"),
                other => panic!("{name}: {other:?}"),
            }
        }
        let (_, refused) = documents.list(&asker("ada")).await.unwrap();
        let refused: Vec<&str> = refused.iter().map(|item| item.path.as_str()).collect();
        assert_eq!(
            refused,
            ["broken.pdf", "empty.txt"],
            "bad names are not stored"
        );
        assert!(documents.list(&asker("ben")).await.unwrap().1.is_empty());
    }
}
