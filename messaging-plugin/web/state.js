// The household app's state, in one place: who I am, my language, the
// rooms as the service describes them (a named room, or a DM and with
// whom: the page never reads a room id itself), the open room, the last
// message seen, muted rooms and the outbox of messages typed offline. The
// views (app.js) read it through these functions and change it only here.
"use strict";

const ASSISTANT = "assistant";
const OUTBOX = "hearth.outbox";
const MUTED = "hearth.muted";
const ROOMS = "hearth.rooms";
// Where the worker keeps files shared to the app until the app sends them.
const SHARED = "hearth-shared";

const state = {
  me: null,                  // {user, node, assistant_room}
  lang: "en",
  room: "household",
  rooms: new Map(JSON.parse(localStorage.getItem(ROOMS) || "[]").map((room) => [room.id, room])),
  lastId: Number(localStorage.getItem("hearth.lastId") || 0),
  status: "connecting",
  muted: new Set(JSON.parse(localStorage.getItem(MUTED) || "[]")),
};

// A word of the app, in the chosen language.
function t(key, ...args) {
  const words = STRINGS[state.lang] || STRINGS.en;
  const value = key in words ? words[key] : STRINGS.en[key];
  return typeof value === "function" ? value(...args) : value;
}

// ---- rooms -------------------------------------------------------------------

// The rooms the service listed (kept for an offline start).
function setRooms(list) {
  state.rooms = new Map(list.map((room) => [room.id, room]));
  localStorage.setItem(ROOMS, JSON.stringify(list));
}

// A room the service just described (a DM opened, a room made).
function addRoom(summary) {
  if (!summary) return;
  const known = state.rooms.get(summary.id);
  state.rooms.set(summary.id, known ? {...summary, unread: known.unread, last_id: known.last_id} : summary);
  localStorage.setItem(ROOMS, JSON.stringify([...state.rooms.values()]));
}

function isKnown(room) {
  return state.rooms.has(room);
}

function isDirect(room) {
  const entry = state.rooms.get(room);
  return !!entry && entry.kind === "dm";
}

// How a room is named to me: `#kitchen`, or `@ben` for my DM with ben.
function label(room) {
  const entry = state.rooms.get(room);
  if (entry && entry.kind === "dm") return "@" + entry.with;
  return "#" + room;
}

// My conversation with the assistant, as the service named it.
function assistantRoom() {
  return state.me && state.me.assistant_room ? state.me.assistant_room.id : null;
}

function countUnread(room, from) {
  const entry = state.rooms.get(room);
  if (entry && from !== state.me.user) entry.unread += 1;
}

function markRoomRead(room) {
  const entry = state.rooms.get(room);
  if (entry) entry.unread = 0;
}

// ---- what was seen, muted, and waits to be sent -------------------------------

function remember(id) {
  if (id > state.lastId) {
    state.lastId = id;
    localStorage.setItem("hearth.lastId", String(id));
  }
}

function isMuted(room) {
  return state.muted.has(room);
}

function toggleMute(room) {
  if (state.muted.has(room)) state.muted.delete(room);
  else state.muted.add(room);
  localStorage.setItem(MUTED, JSON.stringify([...state.muted]));
}

function outbox() {
  return JSON.parse(localStorage.getItem(OUTBOX) || "[]");
}

function saveOutbox(items) {
  localStorage.setItem(OUTBOX, JSON.stringify(items));
}
