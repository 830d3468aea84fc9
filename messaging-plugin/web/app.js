// Hearth's web chat: plain JavaScript, no build step. Talks to the
// messaging service it was served by: JSON over HTTP for history and
// rooms, a WebSocket for everything live.
"use strict";

const ASSISTANT = "assistant";
const state = {
  me: null,
  room: "household",
  rooms: new Map(),          // id -> {id, unread, last_id}
  items: new Map(),          // message id -> <li>
  oldest: null,
  lastId: Number(localStorage.getItem("hearth.lastId") || 0),
  socket: null,
  retry: 1000,
  typing: new Map(),         // user -> timer
  lastTypingSent: 0,
};
const $ = (id) => document.getElementById(id);

async function api(path, options = {}) {
  const response = await fetch(path, {headers: {"content-type": "application/json"}, ...options});
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new Error(body && body.error ? body.error : response.statusText);
  return body;
}

function label(room) {
  if (!room.startsWith("dm:")) return "#" + room;
  const [first, second] = room.slice(3).split(",");
  return "@" + (first === state.me.user ? second : first);
}

function clock(millis) {
  return new Date(millis).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
}

function setStatus(text) {
  $("status").textContent = text;
}

function remember(id) {
  if (id > state.lastId) {
    state.lastId = id;
    localStorage.setItem("hearth.lastId", String(id));
  }
}

// ---- rooms and people ----------------------------------------------------

function renderRooms() {
  const list = $("rooms");
  list.replaceChildren();
  for (const room of state.rooms.values()) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label(room.id);
    button.dataset.room = room.id;
    if (room.id === state.room) button.setAttribute("aria-current", "true");
    if (room.unread > 0 && room.id !== state.room) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = String(room.unread);
      badge.setAttribute("aria-label", room.unread + " unread");
      button.append(" ", badge);
    }
    button.addEventListener("click", () => openRoom(room.id));
    item.append(button);
    list.append(item);
  }
}

async function loadRooms() {
  const answer = await api("/api/rooms");
  state.rooms = new Map(answer.rooms.map((room) => [room.id, room]));
  if (!state.rooms.has(state.room)) state.rooms.set(state.room, {id: state.room, unread: 0, last_id: 0});
  renderRooms();
}

async function loadPeople() {
  const answer = await api("/api/users");
  const list = $("people");
  list.replaceChildren();
  for (const user of answer.users.filter((user) => user !== state.me.user)) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = user === ASSISTANT ? "@assistant (AI)" : "@" + user;
    button.addEventListener("click", async () => {
      const dm = await api("/api/dm", {method: "POST", body: JSON.stringify({user})});
      if (!state.rooms.has(dm.room)) state.rooms.set(dm.room, {id: dm.room, unread: 0, last_id: 0});
      openRoom(dm.room);
    });
    item.append(button);
    list.append(item);
  }
}

// ---- messages --------------------------------------------------------------

function render(message) {
  let item = state.items.get(message.id);
  const fresh = !item;
  if (fresh) {
    item = document.createElement("li");
    state.items.set(message.id, item);
  }
  item.className = "message";
  if (message.sender === state.me.user) item.classList.add("mine");
  if (message.sender === ASSISTANT) item.classList.add("assistant");
  if (message.status === "error") item.classList.add("error");
  item.dataset.id = String(message.id);
  item.dataset.status = message.status;
  const meta = document.createElement("div");
  meta.className = "meta";
  const who = document.createElement("strong");
  who.textContent = message.sender;
  const when = document.createElement("time");
  when.dateTime = new Date(message.created_at).toISOString();
  when.textContent = clock(message.created_at);
  meta.append(who, " ", when);
  const body = document.createElement("div");
  body.className = "body";
  body.textContent = message.body || (message.status === "streaming" ? "\u2026" : "");
  item.replaceChildren(meta, body);
  if (message.status === "streaming") item.setAttribute("aria-busy", "true");
  else item.removeAttribute("aria-busy");
  if (fresh) place(item, message.id);
}

function place(item, id) {
  const list = $("messages");
  const later = [...list.children].find((other) => Number(other.dataset.id) > id);
  list.insertBefore(item, later || null);
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
  if (page.messages.length) state.oldest = page.messages[0].id;
  $("older").hidden = !page.more;
  return page.messages;
}

async function openRoom(room) {
  state.room = room;
  state.items.clear();
  state.oldest = null;
  $("messages").replaceChildren();
  $("typing").textContent = "";
  $("title").textContent = label(room);
  document.title = label(room) + " \u2013 Hearth";
  const messages = await loadHistory();
  scrollDown();
  const entry = state.rooms.get(room);
  if (entry) entry.unread = 0;
  renderRooms();
  markRead(messages.length ? messages[messages.length - 1].id : 0);
  loadKept();
  document.body.classList.remove("menu-open");
  $("menu").setAttribute("aria-expanded", "false");
  $("text").focus();
}

// ---- what the assistant keeps ---------------------------------------------

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
      keptItem(`${entry.text} (${entry.file})`, "Forget", () =>
        api(`/api/assistant/memory/${entry.id}?room=${room}`, {method: "DELETE"}))), "Nothing yet.");
    const reminders = await api("/api/assistant/reminders");
    fill($("reminders"), reminders.reminders.map((reminder) =>
      keptItem(`${reminder.text} \u2013 ${reminder.when}`, "Cancel", () =>
        api(`/api/assistant/reminders/${reminder.id}`, {method: "DELETE"}))), "None.");
    const documents = await api(`/api/assistant/documents?room=${room}`);
    fill($("documents"), [
      ...documents.documents.map((file) => keptItem(`${file.folder}/${file.path}`)),
      ...documents.refused.map((file) => keptItem(`${file.folder}/${file.path}: not read (${file.reason})`)),
    ], "None readable here.");
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
  clearTimeout(state.typing.get(user));
  state.typing.delete(user);
  if (active) state.typing.set(user, setTimeout(() => showTyping(user, false), user === ASSISTANT ? 120000 : 4000));
  const names = [...state.typing.keys()];
  $("typing").textContent = names.length ? names.join(", ") + (names.length > 1 ? " are" : " is") + " typing\u2026" : "";
}

// ---- the live connection ---------------------------------------------------

function send(event) {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) {
    state.socket.send(JSON.stringify(event));
    return true;
  }
  return false;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws?since=${state.lastId}`);
  state.socket = socket;
  socket.addEventListener("open", () => {
    state.retry = 1000;
    setStatus("connected");
  });
  socket.addEventListener("message", (frame) => {
    const event = JSON.parse(frame.data);
    switch (event.type) {
      case "message": {
        const message = event.message;
        remember(message.id);
        if (message.room === state.room) {
          render(message);
          scrollDown();
          if (document.visibilityState === "visible") markRead(message.id);
          if (message.sender !== ASSISTANT) showTyping(message.sender, false);
        } else {
          const room = state.rooms.get(message.room) || {id: message.room, unread: 0, last_id: 0};
          if (message.sender !== state.me.user) room.unread += 1;
          state.rooms.set(message.room, room);
          renderRooms();
        }
        break;
      }
      case "update":
        if (event.room === state.room && state.items.has(event.id)) {
          const item = state.items.get(event.id);
          render({
            id: event.id, room: event.room, sender: ASSISTANT, body: event.body, status: event.status,
            created_at: Date.parse(item.querySelector("time").dateTime),
          });
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
    setStatus("offline, reconnecting\u2026");
    setTimeout(connect, state.retry);
    state.retry = Math.min(state.retry * 2, 10000);
  });
}

// ---- the page --------------------------------------------------------------

$("composer").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  $("text").value = "";
  const client_id = Math.random().toString(36).slice(2);
  if (!send({type: "send", room: state.room, body: text, client_id})) {
    try {
      await api(`/api/rooms/${encodeURIComponent(state.room)}/messages`, {method: "POST", body: JSON.stringify({body: text, client_id})});
    } catch (error) {
      setStatus("not sent: " + error.message);
      $("text").value = text;
    }
  }
});

$("text").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});

$("text").addEventListener("input", () => {
  if (Date.now() - state.lastTypingSent > 3000) {
    state.lastTypingSent = Date.now();
    send({type: "typing", room: state.room});
  }
});

$("older").addEventListener("click", () => loadHistory(state.oldest));
$("keeps").addEventListener("toggle", loadKept);

$("new-room").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("room-name").value.trim();
  if (!name) return;
  try {
    await api("/api/rooms", {method: "POST", body: JSON.stringify({name})});
    $("room-name").value = "";
    state.rooms.set(name, {id: name, unread: 0, last_id: 0});
    openRoom(name);
  } catch (error) {
    setStatus(error.message);
  }
});

$("menu").addEventListener("click", () => {
  const open = document.body.classList.toggle("menu-open");
  $("menu").setAttribute("aria-expanded", String(open));
});

async function start() {
  try {
    state.me = await api("/api/me");
  } catch (error) {
    setStatus(error.message);
    $("messages").textContent = "This page only works from a device of the household's network: " + error.message;
    return;
  }
  $("me").textContent = `${state.me.user} on ${state.me.node}`;
  await loadRooms();
  await loadPeople();
  await openRoom(state.room);
  connect();
}

start();
