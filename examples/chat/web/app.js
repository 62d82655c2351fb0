// Browser client of examples/chat: demo login, one WebSocket, rooms, chat.
// Plain ES modules, no build step. Every piece of user data is written with
// textContent, never parsed as HTML.
//
// The connection goes through IgnisSocket, the browser client of
// server/encryption, which the app serves at /ignis-ws-client.js. When the
// server requires encryption (GET /api/config), the socket sends a public
// key with the token, derives the AES-GCM key from the "connected" frame,
// decrypts "encrypted" frames and encrypts what the page sends; otherwise it
// is a plain client. Either way it sends the heartbeats.

import { IgnisSocket } from '/ignis-ws-client.js';

const HEARTBEAT_MS = 25_000; // the server closes silent clients after 90 s
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30_000;
const CLOSE_NORMAL = 1000;
const CLOSE_AUTH_FAILED = 4003; // bad or expired token: log in again
const ROOM_PATTERN = /^[a-z0-9-]{1,32}$/; // the server's rule; "ws-…" is reserved
const MAX_LOG_ENTRIES = 500;

const $ = (id) => document.getElementById(id);
const ui = {
  status: $('status'),
  secure: $('secure'),
  error: $('error'),
  login: $('login'),
  loginForm: $('login-form'),
  name: $('name'),
  chat: $('chat'),
  joinForm: $('join-form'),
  room: $('room'),
  rooms: $('rooms'),
  logout: $('logout'),
  log: $('log'),
  messageForm: $('message-form'),
  textLabel: $('text-label'),
  text: $('text'),
};

// The session lives in sessionStorage: a reload keeps it, and two tabs
// can be two different users.
const store = {
  load() {
    return {
      token: sessionStorage.getItem('chat.token'),
      name: sessionStorage.getItem('chat.name'),
      rooms: JSON.parse(sessionStorage.getItem('chat.rooms') || '[]'),
    };
  },
  save() {
    sessionStorage.setItem('chat.token', state.token);
    sessionStorage.setItem('chat.name', state.name);
    sessionStorage.setItem('chat.rooms', JSON.stringify([...state.rooms]));
  },
  clear() {
    sessionStorage.removeItem('chat.token');
    sessionStorage.removeItem('chat.name');
    sessionStorage.removeItem('chat.rooms');
  },
};

const saved = store.load();
const state = {
  token: saved.token,
  name: saved.name,
  rooms: new Set(saved.rooms),
  selected: saved.rooms[0] ?? null,
  socket: null, // the current IgnisSocket, from the first attempt to its close
  connected: false, // it has received "connected"
  generation: 0, // bumped by every connect and disconnect; stale work checks it
  attempt: 0, // reconnect attempts since the last "connected"
  reconnect: 0,
};

function setStatus(text) {
  ui.status.textContent = text;
}

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = false;
}

function clearError() {
  ui.error.hidden = true;
  ui.error.textContent = '';
}

// --- login ---------------------------------------------------------------

async function login(name) {
  clearError();
  let res;
  try {
    res = await fetch('/api/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name }),
    });
  } catch {
    showError('The server is not reachable.');
    return;
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    showError(body.message || `Login failed (${res.status})`);
    return;
  }
  state.token = body.token;
  state.name = name;
  state.rooms = new Set();
  state.selected = null;
  store.save();
  showChat();
  connect();
}

function showLogin(message) {
  disconnect();
  store.clear();
  state.token = null;
  state.rooms = new Set();
  state.selected = null;
  ui.log.replaceChildren(); // the next user of this tab does not see them
  renderRooms();
  ui.chat.hidden = true;
  ui.login.hidden = false;
  setStatus('Not connected');
  if (message) showError(message);
  ui.name.focus();
}

function showChat() {
  ui.login.hidden = true;
  ui.chat.hidden = false;
  renderRooms();
}

// --- connection ----------------------------------------------------------

function socketURL() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

// loadConfig asks the server how to connect. It is asked before every
// attempt, so the page follows a server restarted in the other mode.
async function loadConfig() {
  const res = await fetch('/api/config', { cache: 'no-store' });
  if (!res.ok) throw new Error(`config: ${res.status}`);
  const body = await res.json();
  return { encrypted: body.encrypted === true };
}

function connect() {
  clearTimeout(state.reconnect);
  const generation = ++state.generation;
  setStatus('Connecting…');
  loadConfig().then(
    (config) => {
      if (generation === state.generation) open(config);
    },
    () => {
      if (generation === state.generation) retry('server not reachable');
    },
  );
}

function open(config) {
  const socket = new IgnisSocket(socketURL(), {
    token: state.token,
    encrypt: config.encrypted, // adds publicKey to the authenticate payload
    heartbeatInterval: HEARTBEAT_MS,
    // Callbacks of a replaced socket must not touch the state of the new one.
    onConnected: (data) => {
      if (state.socket === socket) connected(socket, data);
      else socket.close(CLOSE_NORMAL, 'Bye'); // logged out while it connected
    },
    onMessage: (msg, meta) => {
      if (state.socket === socket) receive(socket, msg, meta);
    },
    onError: (err) => {
      if (state.socket === socket) failed(err);
    },
    onClose: (ev) => {
      if (state.socket === socket) closed(ev);
    },
  });
  state.socket = socket;
  // Failures arrive through onError and onClose too: open()'s rejection
  // adds nothing.
  socket.open().catch(() => {});
}

function disconnect() {
  clearTimeout(state.reconnect);
  state.generation++;
  const socket = state.socket;
  state.socket = null; // first, so its close handler does nothing
  state.connected = false;
  ui.secure.hidden = true;
  if (socket) socket.close(CLOSE_NORMAL, 'Bye');
}

function connected(socket, data) {
  state.connected = true;
  state.attempt = 0;
  clearError();
  setStatus(`Connected as ${state.name} (client ${data.id})`);
  ui.secure.hidden = !socket.encrypted;
  // The server forgets rooms with the connection: join them again.
  if (state.rooms.size > 0) send('join', { rooms: [...state.rooms] });
}

function closed(ev) {
  state.socket = null;
  state.connected = false;
  ui.secure.hidden = true;
  if (ev.code === CLOSE_AUTH_FAILED) {
    showLogin('Your session was refused. Please log in again.');
    return;
  }
  retry(ev.reason ? `${ev.code} ${ev.reason}` : `${ev.code}`);
}

// retry schedules the next attempt. Full jitter over the upper half of an
// exponential window, so that a restarted server is not hit by every tab at
// the same moment.
function retry(why) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(state.attempt, 16));
  const delay = ceiling / 2 + Math.random() * (ceiling / 2);
  state.attempt++;
  setStatus(`Disconnected (${why}); reconnecting in ${(delay / 1000).toFixed(1)} s`);
  state.reconnect = setTimeout(connect, delay);
}

// send hands {event, data} to the socket, which encrypts it when the
// connection is encrypted. It returns false when there is no connection.
function send(event, data) {
  const socket = state.socket;
  if (!socket || !state.connected) return false;
  socket.send(event, data).catch((err) => {
    if (state.socket === socket) showError(`Not sent: ${err.message}`);
  });
  return true;
}

// failed shows server "error" frames (IgnisServerError) and local failures,
// such as a frame that does not decrypt.
function failed(err) {
  showError(err.name === 'IgnisServerError' ? err.message : `Connection problem: ${err.message}`);
}

function receive(socket, msg, meta) {
  // On an encrypted connection the server seals every application frame;
  // a plaintext one did not come from it.
  if (socket.encrypted && !meta.encrypted) return;
  const data = msg.data ?? {};
  switch (msg.event) {
    case 'chat':
      appendMessage(data);
      break;
    case 'error': // the app's own errors, which are encrypted like the rest
      showError(String(data.message ?? 'Unknown error'));
      break;
  }
}

// --- rooms and messages --------------------------------------------------

function join(room) {
  if (!ROOM_PATTERN.test(room) || room.startsWith('ws-')) {
    showError('Room names are 1–32 of a–z, 0–9 and "-", not starting with "ws-".');
    return;
  }
  clearError();
  state.rooms.add(room);
  send('join', { rooms: [room] }); // else sent on "connected"
  select(room);
}

function leave(room) {
  state.rooms.delete(room);
  send('leave', { rooms: [room] });
  if (state.selected === room) state.selected = state.rooms.values().next().value ?? null;
  select(state.selected);
}

function select(room) {
  state.selected = room;
  store.save();
  renderRooms();
}

function renderRooms() {
  const items = [...state.rooms].map((room) => {
    const li = document.createElement('li');
    li.classList.toggle('selected', room === state.selected);
    const pick = document.createElement('button');
    pick.type = 'button';
    pick.className = 'select';
    pick.textContent = `#${room}`;
    pick.addEventListener('click', () => select(room));
    const out = document.createElement('button');
    out.type = 'button';
    out.textContent = '×';
    out.title = `Leave ${room}`;
    out.setAttribute('aria-label', `Leave ${room}`);
    out.addEventListener('click', () => leave(room));
    li.append(pick, out);
    return li;
  });
  ui.rooms.replaceChildren(...items);

  const on = state.selected !== null;
  ui.textLabel.textContent = on ? `Message #${state.selected}` : 'Join a room to chat';
  ui.text.disabled = !on;
  ui.messageForm.querySelector('button').disabled = !on;
}

function appendMessage({ room, from, text, at }) {
  const li = document.createElement('li');
  const meta = document.createElement('span');
  meta.className = 'meta';
  const time = at ? new Date(at).toLocaleTimeString() : '';
  meta.textContent = `#${room} ${time}`;
  const who = document.createElement('span');
  who.className = 'from';
  who.textContent = String(from ?? '');
  const body = document.createElement('span');
  body.textContent = String(text ?? '');
  li.append(meta, who, body);

  const atBottom = ui.log.scrollTop + ui.log.clientHeight >= ui.log.scrollHeight - 8;
  ui.log.append(li);
  while (ui.log.childElementCount > MAX_LOG_ENTRIES) ui.log.firstElementChild.remove();
  if (atBottom) li.scrollIntoView({ block: 'end' });
}

// --- wiring --------------------------------------------------------------

ui.loginForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const name = ui.name.value.trim();
  if (name) login(name);
});

ui.joinForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  join(ui.room.value.trim());
  ui.room.value = '';
});

ui.messageForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = ui.text.value.trim();
  if (!text || !state.selected) return;
  if (send('chat', { room: state.selected, text })) {
    ui.text.value = '';
  } else {
    showError('Not connected; try again in a moment.');
  }
});

ui.logout.addEventListener('click', () => showLogin());

if (state.token) {
  showChat();
  connect();
} else {
  showLogin();
}
