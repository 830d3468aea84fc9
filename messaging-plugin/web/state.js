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

// ---- speaking and listening ---------------------------------------------------

const TALK_SENDS = "hearth.talkSends";
const READ_ALOUD = "hearth.readAloud";
// The longest recording the app makes (the hub may allow less).
const LONGEST_RECORDING_MS = 120000;
// Held at least this long, the microphone button records while held;
// shorter, it was a tap: recording goes on until the next tap.
const HOLD_MS = 600;

// The first recording format `supported` (MediaRecorder.isTypeSupported)
// takes, as the hub decodes them all; "" lets the browser choose.
function recordingType(supported) {
  for (const type of ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/mp4", "audio/webm"]) {
    if (supported(type)) return type;
  }
  return "";
}

// The voice replies are read with in `lang`, from the device's `voices`:
// one on the device (a voice's `localService`), never an online one
// (which would send the words to the browser's maker). `{voice}` when
// there is one; `{voice: null, remote: true}` when only online voices
// speak the language; `{voice: null, remote: false}` when the browser
// names none (its own engine then reads, on the device).
function chooseVoice(voices, lang) {
  const base = String(lang).toLowerCase().split("-")[0];
  const speaking = voices.filter((voice) => String(voice.lang).toLowerCase().replace("_", "-").split("-")[0] === base);
  const local = speaking.filter((voice) => voice.localService);
  if (local.length) return {voice: local.find((voice) => voice.default) || local[0], remote: false};
  return {voice: null, remote: speaking.length > 0};
}

function setting(key) {
  return localStorage.getItem(key) === "true";
}

function setSetting(key, on) {
  localStorage.setItem(key, String(on));
}
