// Hearth's household app: plain JavaScript, no build step. Talks to the
// messaging service it was served by: JSON over HTTP for history, rooms,
// sending and search; a WebSocket for everything live. Installed (the
// manifest and sw.js), it opens offline from its cache; a message typed
// offline waits in an outbox and is sent once when the service answers
// again (the service keeps one message per client id, so a retry after a
// lost reply is not a second message).
"use strict";

// What the views draw from, beside the app's state (state.js): the
// messages on screen, the live connection, the outbox's sender.
const shown = {
  items: new Map(),          // message id -> <li>
  oldest: null,
  installPrompt: null,
};
const live = {
  socket: null,
  retry: 1000,
  typing: new Map(),         // user -> timer
  lastTypingSent: 0,
};
const sending = {flushing: false, flushTimer: null};
const $ = (id) => document.getElementById(id);

// ---- words -----------------------------------------------------------------

function applyLanguage(lang) {
  state.lang = lang;
  localStorage.setItem("hearth.lang", lang);
  document.documentElement.lang = lang;
  for (const element of document.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  for (const element of document.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of element.dataset.i18nAttr.split(",")) {
      const [attribute, key] = pair.split(":");
      element.setAttribute(attribute, t(key));
    }
  }
  $("language").value = lang;
  if ("speechSynthesis" in window) renderVoice();
  if (state.status) $("status").textContent = t(state.status);
  if (state.me) {
    $("me").textContent = t("onDevice", state.me.user, state.me.node);
    renderRooms();
    renderPeople();
    renderMute();
    renderNotify();
    for (const item of shown.items.values()) item.dispatchEvent(new Event("relabel"));
  }
}

// ---- the service -----------------------------------------------------------

async function api(path, options = {}) {
  const response = await fetch(path, {headers: {"content-type": "application/json"}, ...options});
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error(body && body.error ? body.error : response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

function clock(millis) {
  return new Date(millis).toLocaleTimeString(state.lang, {hour: "2-digit", minute: "2-digit"});
}

// The status line: a word of ours (`key`, said again in another
// language), or what the service said.
function setStatus(text, key) {
  state.status = key || null;
  $("status").textContent = key ? t(key) : text;
}

// ---- rooms and people ------------------------------------------------------

function renderRooms() {
  const list = $("rooms");
  list.replaceChildren();
  let total = 0;
  for (const room of state.rooms.values()) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label(room.id);
    button.dataset.room = room.id;
    if (room.id === state.room) button.setAttribute("aria-current", "true");
    if (room.unread > 0 && room.id !== state.room) {
      total += room.unread;
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = String(room.unread);
      badge.setAttribute("aria-label", t("unread", room.unread));
      button.append(" ", badge);
    }
    if (isMuted(room.id)) {
      const quiet = document.createElement("span");
      quiet.className = "visually-hidden";
      quiet.textContent = " (" + t("muted") + ")";
      button.append(quiet);
    }
    button.addEventListener("click", () => openRoom(room.id));
    item.append(button);
    list.append(item);
  }
  document.title = (total ? `(${total}) ` : "") + label(state.room) + " \u2013 Hearth";
  if (navigator.setAppBadge) (total ? navigator.setAppBadge(total) : navigator.clearAppBadge()).catch(() => {});
}

async function loadRooms() {
  const answer = await api("/api/rooms");
  setRooms(answer.rooms);
  // Rooms with nothing in them yet: the household's, and mine with the
  // assistant (the service described it).
  if (!isKnown("household")) addRoom({id: "household", kind: "room", unread: 0, last_id: 0});
  if (state.me.assistant_room && !isKnown(state.me.assistant_room.id)) addRoom(state.me.assistant_room);
  if (!isKnown(state.room)) state.room = "household";
  renderRooms();
}

let people = [];

async function loadPeople() {
  people = (await api("/api/users")).users;
  renderPeople();
}

function renderPeople() {
  const list = $("people");
  list.replaceChildren();
  for (const user of people.filter((user) => user !== state.me.user)) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = user === ASSISTANT ? t("assistantPerson") : "@" + user;
    button.addEventListener("click", async () => {
      const dm = await api("/api/dm", {method: "POST", body: JSON.stringify({user})});
      addRoom(dm.summary);
      openRoom(dm.room);
    });
    item.append(button);
    list.append(item);
  }
}

// ---- messages --------------------------------------------------------------

function render(message) {
  let item = shown.items.get(message.id);
  const fresh = !item;
  if (fresh) {
    item = document.createElement("li");
    shown.items.set(message.id, item);
    item.addEventListener("relabel", () => render(item.message));
  }
  item.message = message;
  item.className = "message";
  const mine = message.sender === state.me.user;
  if (mine) item.classList.add("mine");
  if (message.sender === ASSISTANT) item.classList.add("assistant");
  if (message.status === "error" || message.status === "interrupted") item.classList.add("error");
  if (message.status === "deleted") item.classList.add("deleted");
  item.dataset.id = String(message.id);
  item.dataset.status = message.status;
  if (message.client_id) item.dataset.client = message.client_id;
  const meta = document.createElement("div");
  meta.className = "meta";
  const who = document.createElement("strong");
  who.textContent = message.sender;
  const when = document.createElement("time");
  when.dateTime = new Date(message.created_at).toISOString();
  when.textContent = clock(message.created_at);
  meta.append(who, " ", when);
  if (message.edited_at && message.status !== "deleted") {
    const edited = document.createElement("span");
    edited.className = "edited";
    edited.textContent = " \u00b7 " + t("edited");
    meta.append(edited);
  }
  const body = document.createElement("div");
  body.className = "body";
  if (message.attachment && message.status !== "deleted") {
    body.append(fileView(message));
  } else {
    body.textContent = message.status === "deleted" ? t("deleted")
      : message.status === "interrupted" ? [message.body, t("interrupted")].filter(Boolean).join("\n\n")
      : message.body || (message.status === "streaming" ? "\u2026" : "");
  }
  item.replaceChildren(meta, body);
  if (mine && message.status === "sent") item.append(actions(message));
  if (message.sender === ASSISTANT && message.status === "done" && message.body && !message.attachment
      && "speechSynthesis" in window) item.append(readButton(message));
  if (message.status === "interrupted") {
    const question = askedBefore(message);
    if (question) item.append(askAgainButton(question));
  }
  if (message.status === "streaming") item.setAttribute("aria-busy", "true");
  else item.removeAttribute("aria-busy");
  if (fresh) place(item, message.id);
}

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

// A shared file: a link that downloads it, and a picture shown in place.
function fileView(message) {
  const file = message.attachment;
  const url = `/api/files/${message.id}`;
  const view = document.createElement("div");
  view.className = "file";
  if (file.type.startsWith("image/")) {
    const picture = document.createElement("img");
    picture.src = url;
    picture.alt = t("picture", file.name);
    picture.loading = "lazy";
    view.append(picture);
  }
  const link = document.createElement("a");
  link.href = url;
  link.download = file.name;
  link.textContent = t("download", file.name, size(file.size));
  view.append(link);
  return view;
}

// Shares `file` into `room`; the service answers with the message.
async function shareFile(room, file) {
  setStatus(t("sharing", file.name));
  const response = await fetch(`/api/rooms/${encodeURIComponent(room)}/files?name=${encodeURIComponent(file.name)}`,
    {method: "POST", body: file});
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error(body && body.error ? body.error : response.statusText);
  setStatus(null, "connected");
  if (room === state.room) render(body);
  return body;
}

// Files shared to the app from another (the system's share sheet): the
// worker kept them. Any web page can make a browser post to /share, so a
// share is shown and goes nowhere until the member sends it (or discards
// it): then its files go to their conversation with the assistant, and the
// words that came with them as a message after them.
async function pendingShare() {
  if (!("caches" in window)) return null;
  const kept = await (await caches.open(SHARED)).match("/shared/list");
  if (!kept) return null;
  const list = await kept.json();
  return list.files.length || list.text ? list : null;
}

async function showShared() {
  const list = await pendingShare();
  $("shared").hidden = !list;
  if (!list) return;
  const files = $("shared-files");
  files.replaceChildren(...list.files.map((entry) => {
    const item = document.createElement("li");
    item.textContent = entry.size ? `${entry.name} (${size(entry.size)})` : entry.name;
    return item;
  }));
  $("shared-words").textContent = list.text || "";
  $("shared-words").hidden = $("shared-words-label").hidden = !list.text;
  $("shared-heading").focus();
}

async function discardShared() {
  if ("caches" in window) await caches.delete(SHARED);
  $("shared").hidden = true;
}

async function sendShared() {
  const list = await pendingShare();
  $("shared").hidden = true;
  if (!list) return;
  const cache = await caches.open(SHARED);
  const room = assistantRoom();
  if (!room) throw new Error(t("noAssistant"));
  await openRoom(room);
  for (const entry of list.files) {
    const stored = await cache.match(entry.key);
    if (!stored) continue;
    const blob = await stored.blob();
    await shareFile(room, new File([blob], entry.name, {type: blob.type}));
    await cache.delete(entry.key);
  }
  if (list.text) {
    saveOutbox([...outbox(), {client_id: newClientId(), room, body: list.text, at: Date.now()}]);
    renderPending();
    flush();
  }
  await caches.delete(SHARED);
}

// Edit and delete, for one's own sent messages.
function actions(message) {
  const bar = document.createElement("div");
  bar.className = "actions";
  const edit = document.createElement("button");
  edit.type = "button";
  edit.className = "link";
  edit.textContent = t("edit");
  edit.addEventListener("click", () => startEdit(message));
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "link";
  remove.textContent = t("delete");
  remove.addEventListener("click", async () => {
    if (!window.confirm(t("deleteConfirm"))) return;
    try {
      render(await api(`/api/rooms/${encodeURIComponent(message.room)}/messages/${message.id}`, {method: "DELETE"}));
    } catch (error) {
      setStatus(error.message);
    }
  });
  // A shared file is deleted, not edited.
  if (message.attachment) bar.append(remove);
  else bar.append(edit, " ", remove);
  return bar;
}

// The member's own message just before `message` in the open room: the
// question an interrupted reply was answering.
function askedBefore(message) {
  const earlier = [...shown.items.entries()]
    .filter(([id, item]) => id < message.id && item.message && item.message.room === message.room)
    .sort(([a], [b]) => b - a);
  for (const [, item] of earlier) {
    const before = item.message;
    if (before.sender === ASSISTANT) return null;
    if (before.sender === state.me.user && before.status === "sent" && !before.attachment) return before.body;
  }
  return null;
}

// Asks `question` again, as if typed anew (through the outbox).
function askAgainButton(question) {
  const bar = document.createElement("div");
  bar.className = "actions";
  const again = document.createElement("button");
  again.type = "button";
  again.className = "link";
  again.textContent = t("askAgain");
  again.addEventListener("click", () => {
    again.disabled = true;
    queue(question);
  });
  bar.append(again);
  return bar;
}

function startEdit(message) {
  const item = shown.items.get(message.id);
  const form = document.createElement("form");
  form.className = "edit";
  const field = document.createElement("textarea");
  field.value = message.body;
  field.maxLength = 8000;
  field.required = true;
  field.setAttribute("aria-label", t("editMessage"));
  const save = document.createElement("button");
  save.type = "submit";
  save.textContent = t("save");
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "link";
  cancel.textContent = t("cancel");
  cancel.addEventListener("click", () => render(message));
  form.append(field, save, cancel);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      render(await api(`/api/rooms/${encodeURIComponent(message.room)}/messages/${message.id}`,
        {method: "PATCH", body: JSON.stringify({body: field.value})}));
    } catch (error) {
      setStatus(error.message);
    }
  });
  item.querySelector(".body").replaceWith(form);
  item.querySelector(".actions").remove();
  field.focus();
}

function place(item, id) {
  const list = $("messages");
  const later = [...list.children].find((other) => Number(other.dataset.id) > id);
  list.insertBefore(item, later || list.querySelector("li.pending"));
}

function scrollDown() {
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
}

async function loadHistory(before) {
  const query = before ? `?before=${before}&limit=50` : "?limit=50";
  const page = await api(`/api/rooms/${encodeURIComponent(state.room)}/messages${query}`);
  for (const message of page.messages) {
    render(message);
    remember(message.id);
  }
  if (page.messages.length) shown.oldest = page.messages[0].id;
  $("older").hidden = !page.more;
  return page.messages;
}

// Replies still being written when the connection dropped: the service
// may have restarted since and ended them (`interrupted`), which no event
// says, so the open room's latest page is read again for them.
async function refreshUnfinished() {
  const unfinished = [...shown.items.values()].some((item) => item.message && item.message.status === "streaming");
  if (!unfinished || !state.room) return;
  try {
    const page = await api(`/api/rooms/${encodeURIComponent(state.room)}/messages?limit=50`);
    for (const message of page.messages) {
      if (shown.items.has(message.id)) render(message);
    }
  } catch (error) {
    setStatus(error.message);
  }
}

async function openRoom(room) {
  state.room = room;
  shown.items.clear();
  shown.oldest = null;
  $("messages").replaceChildren();
  $("typing").textContent = "";
  $("title").textContent = label(room);
  closeResults();
  renderPending();
  renderMute();
  let messages = [];
  try {
    messages = await loadHistory();
  } catch (error) {
    setStatus(error.message);
  }
  scrollDown();
  markRoomRead(room);
  renderRooms();
  markRead(messages.length ? messages[messages.length - 1].id : 0);
  loadKept();
  document.body.classList.remove("menu-open");
  $("menu").setAttribute("aria-expanded", "false");
  $("text").focus();
}

// ---- the outbox: messages typed offline ------------------------------------

function newClientId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// The open room's messages still in the outbox, after its history.
function renderPending() {
  const list = $("messages");
  for (const old of list.querySelectorAll("li.pending")) old.remove();
  for (const entry of outbox().filter((entry) => entry.room === state.room)) {
    if (list.querySelector(`li[data-client="${CSS.escape(entry.client_id)}"]`)) continue;
    const item = document.createElement("li");
    item.className = "message mine pending";
    item.dataset.client = entry.client_id;
    const meta = document.createElement("div");
    meta.className = "meta";
    const who = document.createElement("strong");
    who.textContent = state.me.user;
    const note = document.createElement("span");
    note.className = "waiting";
    note.textContent = " \u00b7 " + (entry.failed ? t("notSent") + ": " + entry.failed : t("waiting"));
    meta.append(who, note);
    const body = document.createElement("div");
    body.className = "body";
    body.textContent = entry.body;
    item.append(meta, body);
    list.append(item);
  }
}

// Sends what waits in the outbox, in order, each once: a message the
// service refuses is kept, marked, for the writer to copy.
async function flush() {
  if (sending.flushing) return;
  sending.flushing = true;
  try {
    for (;;) {
      const entry = outbox().find((entry) => !entry.failed);
      if (!entry) break;
      let failed = null;
      try {
        await api(`/api/rooms/${encodeURIComponent(entry.room)}/messages`,
          {method: "POST", body: JSON.stringify({body: entry.body, client_id: entry.client_id})});
      } catch (error) {
        if (!error.status || error.status >= 500 || error.status === 429) {
          // Unreachable or busy: tried again in a while (and when the
          // live connection opens again).
          clearTimeout(sending.flushTimer);
          sending.flushTimer = setTimeout(flush, 3000);
          break;
        }
        failed = error.message;
      }
      saveOutbox(outbox().flatMap((kept) => kept.client_id !== entry.client_id ? [kept]
        : failed ? [{...kept, failed}] : []));
    }
  } finally {
    sending.flushing = false;
    renderPending();
  }
}

// ---- what the assistant keeps ----------------------------------------------

function keptItem(text, action, onAction) {
  const item = document.createElement("li");
  const words = document.createElement("span");
  words.textContent = text;
  item.append(words);
  if (action) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link";
    button.textContent = action;
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await onAction();
      } catch (error) {
        setStatus(error.message);
      }
      loadKept();
    });
    item.append(" ", button);
  }
  return item;
}

function fill(list, items, empty) {
  list.replaceChildren(...(items.length ? items : [keptItem(empty)]));
}

// Memory, reminders and documents of the open room (a DM with the
// assistant shows the member's own memory), fetched when the panel is open.
async function loadKept() {
  if (!$("keeps").open || !state.me) return;
  const room = encodeURIComponent(state.room);
  try {
    const memory = await api(`/api/assistant/memory?room=${room}`);
    fill($("memory"), memory.entries.map((entry) =>
      keptItem(`${entry.text} (${entry.file})`, t("forget"), () =>
        api(`/api/assistant/memory/${entry.id}?room=${room}`, {method: "DELETE"}))), t("nothingYet"));
    const reminders = await api("/api/assistant/reminders");
    fill($("reminders"), reminders.reminders.map((reminder) =>
      keptItem(`${reminder.text} \u2013 ${reminder.when}`, t("cancel"), () =>
        api(`/api/assistant/reminders/${reminder.id}`, {method: "DELETE"}))), t("none"));
    const documents = await api(`/api/assistant/documents?room=${room}`);
    fill($("documents"), [
      ...documents.documents.map((file) => keptItem(`${file.folder}/${file.path}`)),
      ...documents.refused.map((file) => keptItem(`${file.folder}/${file.path}: ${file.reason}`)),
    ], t("noneReadable"));
  } catch (error) {
    fill($("memory"), [keptItem(error.message)], "");
    $("reminders").replaceChildren();
    $("documents").replaceChildren();
  }
}

function markRead(id) {
  if (!id) return;
  send({type: "read", room: state.room, id}) ||
    api(`/api/rooms/${encodeURIComponent(state.room)}/read`, {method: "POST", body: JSON.stringify({id})}).catch(() => {});
}

function showTyping(user, active) {
  clearTimeout(live.typing.get(user));
  live.typing.delete(user);
  if (active) live.typing.set(user, setTimeout(() => showTyping(user, false), user === ASSISTANT ? 120000 : 4000));
  const names = [...live.typing.keys()];
  $("typing").textContent = names.length ? t("typing", names) : "";
}

// ---- search ------------------------------------------------------------------

function closeResults() {
  $("results").hidden = true;
  $("conversation").hidden = false;
}

$("search").addEventListener("submit", async (event) => {
  event.preventDefault();
  const query = $("search-text").value.trim();
  if (!query) return;
  try {
    const answer = await api(`/api/search?q=${encodeURIComponent(query)}`);
    const found = $("found");
    found.replaceChildren();
    for (const message of answer.messages) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "result";
      const where = document.createElement("strong");
      where.textContent = `${label(message.room)} \u00b7 ${message.sender} \u00b7 ${clock(message.created_at)}`;
      const text = document.createElement("span");
      text.textContent = message.body;
      button.append(where, text);
      button.addEventListener("click", () => openRoom(message.room));
      item.append(button);
      found.append(item);
    }
    if (!answer.messages.length) {
      const none = document.createElement("li");
      none.textContent = t("noResults");
      found.append(none);
    }
    $("conversation").hidden = true;
    $("results").hidden = false;
    document.body.classList.remove("menu-open");
    $("results-heading").focus();
  } catch (error) {
    setStatus(error.message);
  }
});
$("results-heading").tabIndex = -1;
$("close-results").addEventListener("click", () => {
  closeResults();
  $("text").focus();
});

// ---- notifications -----------------------------------------------------------

function renderMute() {
  const muted = isMuted(state.room);
  const button = $("mute");
  button.setAttribute("aria-pressed", String(muted));
  button.setAttribute("aria-label", muted ? t("unmute") : t("mute"));
  button.title = button.getAttribute("aria-label");
}

$("mute").addEventListener("click", () => {
  toggleMute(state.room);
  renderMute();
  renderRooms();
});

function renderNotify() {
  const supported = "Notification" in window && "serviceWorker" in navigator;
  const permission = supported ? Notification.permission : "denied";
  $("notify").hidden = permission === "granted" || !supported;
  $("notify-state").textContent = permission === "granted" ? t("notificationsAreOn")
    : permission === "denied" && supported ? t("notificationsBlocked") : "";
}

$("notify").addEventListener("click", async () => {
  await Notification.requestPermission();
  renderNotify();
});

// Whether `message` calls for a notification: a DM to me (the assistant's
// reminders come in mine), or my name mentioned; not my own, not in a muted
// room, not in the room I am looking at.
function notable(message) {
  if (message.sender === state.me.user || isMuted(message.room)) return false;
  if (message.room === state.room && document.visibilityState === "visible") return false;
  if (isDirect(message.room)) return true;
  const mention = new RegExp(`(^|[^\\w-])@${state.me.user.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?![\\w-])`, "i");
  return mention.test(message.body);
}

async function notify(message) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  const registration = await navigator.serviceWorker.ready;
  const fromAssistant = message.sender === ASSISTANT && isDirect(message.room);
  await registration.showNotification(fromAssistant ? t("reminder") : t("newMessage", message.sender, label(message.room)), {
    body: message.body.slice(0, 200),
    tag: `room:${message.room}`,
    renotify: true,
    icon: "/icons/icon-192.png",
    badge: "/icons/icon-192.png",
    data: {room: message.room, id: message.id},
  });
}

// ---- the live connection -----------------------------------------------------

function send(event) {
  if (live.socket && live.socket.readyState === WebSocket.OPEN) {
    live.socket.send(JSON.stringify(event));
    return true;
  }
  return false;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws?since=${state.lastId}`);
  live.socket = socket;
  socket.addEventListener("open", () => {
    // When the app became usable (the household app's benchmark reads it).
    if (!performance.getEntriesByName("hearth-connected").length) performance.mark("hearth-connected");
    live.retry = 1000;
    setStatus(null, "connected");
    flush();
    refreshUnfinished();
  });
  socket.addEventListener("message", (frame) => {
    const event = JSON.parse(frame.data);
    switch (event.type) {
      case "message": {
        const message = event.message;
        remember(message.id);
        if (message.client_id) {
          const pending = $("messages").querySelector(`li.pending[data-client="${CSS.escape(message.client_id)}"]`);
          if (pending) pending.remove();
        }
        if (message.room === state.room) {
          render(message);
          readIfTalking(message, null);
          scrollDown();
          if (document.visibilityState === "visible") markRead(message.id);
          if (message.sender !== ASSISTANT) showTyping(message.sender, false);
        } else {
          countUnread(message.room, message.sender);
          renderRooms();
        }
        // A room not listed yet (a new DM): the service says what it is first.
        const known = isKnown(message.room) ? Promise.resolve() : loadRooms();
        known.then(() => {
          if (notable(message) && message.status !== "streaming") return notify(message);
        }).catch(() => {});
        break;
      }
      case "update":
        if (event.room === state.room && shown.items.has(event.id)) {
          const previous = shown.items.get(event.id).message;
          const message = {...previous, body: event.body, status: event.status, edited_at: event.edited_at || previous.edited_at};
          render(message);
          readIfTalking(message, previous);
          scrollDown();
        }
        break;
      case "typing":
        if (event.room === state.room && event.user !== state.me.user) showTyping(event.user, event.active);
        break;
      case "error":
        setStatus(event.message);
        break;
      default:
        break;
    }
  });
  socket.addEventListener("close", () => {
    setStatus(null, "offline");
    setTimeout(connect, live.retry);
    live.retry = Math.min(live.retry * 2, 10000);
  });
}

// ---- speaking to the assistant, and hearing it --------------------------------
// The microphone records in the app (MediaRecorder); the hub hears it
// (POST /api/speech: the household's own speech recognition, never the
// browser's, which sends audio to its maker). Replies are read aloud by the
// device's own voices (Web Speech synthesis), on request or in talk mode.

const talk = {recorder: null, chunks: [], started: 0, ticker: null, held: false, swallowClick: false, stream: null};

function canTalk() {
  return window.isSecureContext && !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)
    && typeof MediaRecorder !== "undefined";
}

function talkState(text) {
  $("talk-state").textContent = text || "";
}

async function startTalking() {
  if (talk.recorder) return;
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({audio: {channelCount: 1, echoCancellation: true, noiseSuppression: true}});
  } catch (error) {
    talkState(t("noMicrophone"));
    return;
  }
  const type = recordingType((candidate) => MediaRecorder.isTypeSupported(candidate));
  const recorder = new MediaRecorder(stream, type ? {mimeType: type} : {});
  talk.recorder = recorder;
  talk.stream = stream;
  talk.chunks = [];
  talk.started = Date.now();
  recorder.addEventListener("dataavailable", (event) => {
    if (event.data && event.data.size) talk.chunks.push(event.data);
  });
  recorder.addEventListener("stop", () => hearRecording(recorder.mimeType || type));
  recorder.start();
  $("talk").setAttribute("aria-pressed", "true");
  $("talk").setAttribute("aria-label", t("talkStop"));
  $("talk").classList.add("recording");
  const tick = () => {
    const elapsed = Date.now() - talk.started;
    talkState(t("recording", Math.floor(elapsed / 1000)));
    if (elapsed >= LONGEST_RECORDING_MS) stopTalking();
  };
  tick();
  talk.ticker = setInterval(tick, 250);
}

function stopTalking() {
  if (!talk.recorder) return;
  clearInterval(talk.ticker);
  const recorder = talk.recorder;
  talk.recorder = null;
  if (recorder.state !== "inactive") recorder.stop();
  for (const track of talk.stream.getTracks()) track.stop();
  $("talk").setAttribute("aria-pressed", "false");
  $("talk").setAttribute("aria-label", t("talk"));
  $("talk").classList.remove("recording");
}

// Sends what was recorded to the hub; the words land in the message box
// for the member to check (or, with the setting, are sent at once).
async function hearRecording(type) {
  const audio = new Blob(talk.chunks, {type: type || "audio/webm"});
  talk.chunks = [];
  talkState(t("hearing"));
  $("talk").disabled = true;
  try {
    const response = await fetch(`/api/speech?language=${encodeURIComponent(state.lang)}`,
      {method: "POST", headers: {"content-type": audio.type}, body: audio});
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new Error(body && body.error ? body.error : response.statusText);
    const words = (body.text || "").trim();
    if (!words) {
      talkState(t("heardNothing"));
    } else if (setting(TALK_SENDS)) {
      talkState("");
      queue(words);
    } else {
      const box = $("text");
      box.value = box.value.trim() ? `${box.value.trim()} ${words}` : words;
      box.focus();
      talkState(t("heardCheck"));
    }
  } catch (error) {
    talkState(error.message);
  } finally {
    $("talk").disabled = false;
  }
}

// Hold to talk (let go to stop), or tap to start and tap again to stop;
// the keyboard's Enter and Space are taps. The button keeps the pointer
// while it is held: a finger that slides off it before letting go still
// stops the recording.
$("talk").addEventListener("pointerdown", (event) => {
  if (event.button !== 0 || talk.recorder) return;
  event.currentTarget.setPointerCapture(event.pointerId);
  talk.held = true;
  talk.swallowClick = true;
  startTalking();
});
function letGo() {
  if (!talk.held) return;
  talk.held = false;
  if (talk.recorder && Date.now() - talk.started >= HOLD_MS) stopTalking();
}
$("talk").addEventListener("pointerup", letGo);
$("talk").addEventListener("pointercancel", letGo);
$("talk").addEventListener("click", () => {
  if (talk.swallowClick) {
    talk.swallowClick = false;
    return;
  }
  if (talk.recorder) stopTalking();
  else startTalking();
});

// Reads `text` aloud in the member's language with a voice of the device.
function readAloud(text) {
  if (!("speechSynthesis" in window) || !text) return false;
  const {voice, remote} = chooseVoice(speechSynthesis.getVoices(), state.lang);
  if (remote) {
    $("voice-state").textContent = t("voiceRemote");
    return false;
  }
  const utterance = new SpeechSynthesisUtterance(text);
  utterance.lang = state.lang;
  if (voice) utterance.voice = voice;
  speechSynthesis.cancel();
  speechSynthesis.speak(utterance);
  return true;
}

function readButton(message) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "link";
  button.textContent = t("readThis");
  button.addEventListener("click", () => readAloud(message.body));
  const bar = document.createElement("div");
  bar.className = "actions";
  bar.append(button);
  return bar;
}

function renderVoice() {
  if (!("speechSynthesis" in window)) return;
  const {voice, remote} = chooseVoice(speechSynthesis.getVoices(), state.lang);
  $("voice-state").textContent = remote ? t("voiceRemote") : voice ? t("voiceLocal", voice.name) : t("voiceDefault");
}

// In talk mode, an answer of the assistant that has just finished in the
// open room is read aloud.
function readIfTalking(message, before) {
  if (!setting(READ_ALOUD) || message.sender !== ASSISTANT || message.room !== state.room) return;
  if (message.status === "done" && (!before || before.status === "streaming")) readAloud(message.body);
}

$("talk-sends").addEventListener("change", () => setSetting(TALK_SENDS, $("talk-sends").checked));
$("read-aloud").addEventListener("change", () => setSetting(READ_ALOUD, $("read-aloud").checked));
if ("speechSynthesis" in window) speechSynthesis.addEventListener("voiceschanged", renderVoice);

// ---- the page ------------------------------------------------------------------

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  $("text").value = "";
  queue(text);
});

// Sends `text` to the open room: kept in the outbox until the service has it.
function queue(text) {
  saveOutbox([...outbox(), {client_id: newClientId(), room: state.room, body: text, at: Date.now()}]);
  renderPending();
  scrollDown();
  flush();
}

$("attach").addEventListener("click", () => $("file").click());
$("file").addEventListener("change", async () => {
  const file = $("file").files[0];
  $("file").value = "";
  if (!file) return;
  try {
    await shareFile(state.room, file);
    scrollDown();
  } catch (error) {
    setStatus(error.message);
  }
});

$("text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});

$("text").addEventListener("input", () => {
  if (Date.now() - live.lastTypingSent > 3000) {
    live.lastTypingSent = Date.now();
    send({type: "typing", room: state.room});
  }
});

$("older").addEventListener("click", () => loadHistory(shown.oldest));
$("keeps").addEventListener("toggle", loadKept);

$("new-room").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("room-name").value.trim();
  if (!name) return;
  try {
    const made = await api("/api/rooms", {method: "POST", body: JSON.stringify({name})});
    $("room-name").value = "";
    addRoom(made.summary);
    openRoom(name);
  } catch (error) {
    setStatus(error.message);
  }
});

$("menu").addEventListener("click", () => {
  const open = document.body.classList.toggle("menu-open");
  $("menu").setAttribute("aria-expanded", String(open));
});

for (const [tag, name] of LANGUAGES) {
  const option = document.createElement("option");
  option.value = tag;
  option.lang = tag;
  option.textContent = name;
  $("language").append(option);
}
$("language").addEventListener("change", () => {
  applyLanguage($("language").value);
  api("/api/me/language", {method: "PUT", body: JSON.stringify({language: state.lang})}).catch(() => {});
});

window.addEventListener("online", flush);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && state.me) {
    const last = [...shown.items.keys()].pop();
    if (last) markRead(last);
  }
});

window.addEventListener("beforeinstallprompt", (event) => {
  event.preventDefault();
  shown.installPrompt = event;
  $("install").hidden = false;
});
$("install").addEventListener("click", async () => {
  if (!shown.installPrompt) return;
  shown.installPrompt.prompt();
  await shown.installPrompt.userChoice;
  shown.installPrompt = null;
  $("install").hidden = true;
});

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js").catch(() => {});
  // A notification tapped: the worker asks this page to open its room.
  navigator.serviceWorker.addEventListener("message", (event) => {
    if (event.data && event.data.open && state.me) openRoom(event.data.open);
  });
}

async function start() {
  applyLanguage(chooseLanguage(localStorage.getItem("hearth.lang"), navigator.languages));
  $("talk").hidden = !canTalk();
  $("voice-settings").hidden = !canTalk() && !("speechSynthesis" in window);
  $("talk-sends").checked = setting(TALK_SENDS);
  $("read-aloud").checked = setting(READ_ALOUD);
  const wanted = new URLSearchParams(location.search).get("room");
  if (wanted) state.room = wanted;
  try {
    state.me = await api("/api/me");
    localStorage.setItem("hearth.me", JSON.stringify(state.me));
  } catch (error) {
    const saved = JSON.parse(localStorage.getItem("hearth.me") || "null");
    if (!error.status && saved) {
      // Opened offline (from the installed app's cache): the outbox takes
      // messages, sent once the service answers again.
      state.me = saved;
      applyLanguage(state.lang);
      $("title").textContent = label(state.room);
      renderPending();
      setStatus(null, "offline");
      setTimeout(start, 3000);
      return;
    }
    setStatus(error.message);
    $("messages").textContent = t("onlyMesh") + error.message;
    if (!error.status) setTimeout(start, 3000);
    return;
  }
  applyLanguage(state.lang);
  api("/api/me/language", {method: "PUT", body: JSON.stringify({language: state.lang})}).catch(() => {});
  if (new URLSearchParams(location.search).has("shared")) {
    history.replaceState(null, "", `/?room=${encodeURIComponent(state.room)}`);
  }
  await loadRooms();
  await loadPeople();
  await openRoom(state.room);
  connect();
  // A share waits for the member's word, across reloads, until decided.
  await showShared().catch((error) => setStatus(error.message));
}

$("send-shared").addEventListener("click", () => {
  sendShared().catch((error) => setStatus(error.message));
});
$("discard-shared").addEventListener("click", () => {
  discardShared().catch((error) => setStatus(error.message));
});

start();
