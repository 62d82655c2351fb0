// Browser client of examples/chat: demo login, one WebSocket, rooms, chat.
// Plain ES modules, no build step. Every piece of user data is written with
// textContent, never parsed as HTML.
//
// The connection is a WSClient from clients/js (served at /wscomponent.js):
// it authenticates, sends heartbeats, reconnects with backoff and jitter,
// joins the rooms again after a reconnect, and runs the encryption handshake
// when the server requires it (asked from GET /api/config before every
// attempt, so the page follows a server restarted in the other mode). This
// file is UI code.

import { WSClient, CloseCode } from '/wscomponent.js';

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
  client: null, // the current WSClient, from login to logout
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

// encrypted asks the server whether it requires encryption; the client
// asks before every attempt.
async function encrypted() {
  const res = await fetch('/api/config', { cache: 'no-store' });
  if (!res.ok) throw new Error(`config: ${res.status}`);
  return (await res.json()).encrypted === true;
}

function connect() {
  disconnect();
  const client = new WSClient(socketURL(), {
    token: () => state.token,
    encrypt: encrypted,
  });
  state.client = client;
  // Handlers of a replaced client must not touch the page.
  const mine = (fn) => (...args) => {
    if (state.client === client) fn(...args);
  };
  client.on('connected', mine((info) => {
    clearError();
    setStatus(`Connected as ${state.name} (client ${info.id})`);
    ui.secure.hidden = !info.encrypted;
    // The rooms of this tab (a reload keeps them); after a reconnect the
    // client joins them again by itself.
    const missing = [...state.rooms].filter((r) => !client.rooms.includes(r));
    if (missing.length > 0) joinRooms(client, missing);
  }));
  client.on('rejoined', mine((result) => {
    // No history here: messages sent while we were away are gone.
    if (Object.values(result.recovered).some((ok) => !ok)) notice('Reconnected; messages sent meanwhile are not shown.');
  }));
  client.on('disconnected', mine((d) => {
    ui.secure.hidden = true;
    if (d.byClient) return;
    if (d.code === CloseCode.AUTH_FAILED) {
      showLogin('Your session was refused. Please log in again.');
      return;
    }
    const why = d.reason ? `${d.code} ${d.reason}` : `${d.code}`;
    setStatus(d.willReconnect
      ? `Disconnected (${why}); reconnecting in ${(d.delay / 1000).toFixed(1)} s`
      : `Disconnected (${why}). Reload the page to connect again.`);
  }));
  client.on('error', mine((err) => showError(err.name === 'ServerError' ? err.message : `Connection problem: ${err.message}`)));
  client.on('chat', mine((data) => appendMessage(data ?? {})));
  setStatus('Connecting…');
  client.connect().catch(() => {}); // failures arrive through "disconnected"
}

function disconnect() {
  const client = state.client;
  state.client = null; // first, so its handlers do nothing
  ui.secure.hidden = true;
  if (client) client.close(CloseCode.NORMAL, 'Bye');
}

async function joinRooms(client, rooms) {
  try {
    const ack = await client.join(rooms);
    for (const { room, reason } of ack.refused) {
      state.rooms.delete(room);
      showError(`Cannot join #${room}: ${reason}`);
    }
    if (ack.refused.length > 0) select(state.rooms.has(state.selected) ? state.selected : null);
  } catch (err) {
    if (state.client === client) showError(`Join failed: ${err.message}`);
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
  select(room);
  // Made while disconnected, the join waits for the connection.
  if (state.client) joinRooms(state.client, [room]);
}

function leave(room) {
  state.rooms.delete(room);
  if (state.client) state.client.leave([room]).catch(() => {}); // not rejoined either way
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

// notice writes a line of the page's own into the log.
function notice(text) {
  const li = document.createElement('li');
  li.className = 'system';
  li.textContent = text;
  appendEntry(li);
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
  appendEntry(li);
}

function appendEntry(li) {
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
  const client = state.client;
  if (!client) return;
  client.send('chat', { room: state.selected, text }).then(
    () => { ui.text.value = ''; },
    () => showError('Not connected; try again in a moment.'),
  );
});

ui.logout.addEventListener('click', () => showLogin());

if (state.token) {
  showChat();
  connect();
} else {
  showLogin();
}
