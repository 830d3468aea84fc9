// The household app's service worker: the app's shell (its page, script,
// styles, words and icons) kept so the installed app opens at once and
// offline; a notification tapped opens its conversation; files shared to
// the installed app from another (the share sheet: a POST to /share) are
// kept for the page, which shows them and sends them to the assistant only
// when the member says so (any web page can make a browser POST to /share,
// so a share is never sent by itself). Messages and
// everything under /api/ always come from the service, never from here.
// The service fills in VERSION (a hash of the shell), so a new version of
// the app replaces the old shell.
"use strict";

const VERSION = "@VERSION@";
const SHARED = "hearth-shared";
const SHELL = [
  "/",
  "/app.js",
  "/state.js",
  "/i18n.js",
  "/style.css",
  "/manifest.webmanifest",
  "/icons/icon-192.png",
  "/icons/icon-512.png",
  "/icons/maskable-512.png",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(VERSION).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((name) => name !== VERSION && name !== SHARED).map((name) => caches.delete(name))))
      .then(() => self.clients.claim()),
  );
});

// Most files one share keeps (the service takes each up to 10 MiB).
const SHARED_FILES = 8;

// A share: its files (and any title, text or link) kept in a cache of
// their own, in place of any share not yet decided on, then the page
// opened to show them; it sends nothing by itself.
async function keepShared(request) {
  const form = await request.formData();
  await caches.delete(SHARED);
  const cache = await caches.open(SHARED);
  const list = {files: [], text: ""};
  for (const file of form.getAll("file")) {
    if (!(file instanceof File) || !file.size || list.files.length >= SHARED_FILES) continue;
    const key = `/shared/${Date.now()}-${list.files.length}`;
    await cache.put(key, new Response(file, {headers: {"content-type": file.type || "application/octet-stream"}}));
    list.files.push({key, name: file.name, size: file.size});
  }
  const words = ["title", "text", "url"].map((name) => form.get(name)).filter((value) => typeof value === "string" && value.trim());
  if (words.length) list.text = words.join("\n").slice(0, 8000);
  await cache.put("/shared/list", new Response(JSON.stringify(list), {headers: {"content-type": "application/json"}}));
  return Response.redirect("/?shared=1", 303);
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method === "POST" && url.origin === self.location.origin && url.pathname === "/share") {
    event.respondWith(keepShared(event.request));
    return;
  }
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (event.request.mode === "navigate") {
    // The page: from the service when it answers, else the kept shell.
    event.respondWith(fetch(event.request).catch(() => caches.match("/", {cacheName: VERSION})));
    return;
  }
  if (!SHELL.includes(url.pathname)) return; // the API, the socket: the service's
  // The shell: from the cache (this version's), else the service.
  event.respondWith(
    caches.match(event.request, {cacheName: VERSION}).then((kept) => kept || fetch(event.request)),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const room = event.notification.data && event.notification.data.room;
  event.waitUntil(
    self.clients.matchAll({type: "window", includeUncontrolled: true}).then((windows) => {
      for (const client of windows) {
        if ("focus" in client) {
          if (room) client.postMessage({open: room});
          return client.focus();
        }
      }
      return self.clients.openWindow(room ? `/?room=${encodeURIComponent(room)}` : "/");
    }),
  );
});
