// Type declarations of wscomponent.js (the JavaScript client of
// github.com/ignis-go/wscomponent). See README.md next to this file.

/** HKDF info string of the encryption; the server's helpers/ecdh Info. */
export const HKDF_INFO: "ignis-ecdh-p256-aes-256-gcm-v1";

/** Close codes the server uses. */
export const CloseCode: Readonly<{
  NORMAL: 1000;
  GOING_AWAY: 1001;
  ABNORMAL: 1006;
  INVALID_PAYLOAD: 1007;
  POLICY_VIOLATION: 1008;
  MESSAGE_TOO_BIG: 1009;
  INTERNAL_ERROR: 1011;
  AUTH_TIMEOUT: 4001;
  HEARTBEAT_TIMEOUT: 4002;
  AUTH_FAILED: 4003;
  ENCRYPTION_REQUIRED: 4004;
  DISCONNECTED: 4005;
  SESSION_EXPIRED: 4006;
}>;

/** Defaults of the options (durations in milliseconds). */
export const DEFAULTS: Readonly<{
  heartbeatInterval: 25000;
  requestTimeout: 10000;
  connectTimeout: 15000;
  minReconnectDelay: 500;
  maxReconnectDelay: 30000;
  maxReconnectAttempts: number;
  maxRoomsPerRequest: 100;
}>;

/** The authenticate (and refresh) payload: whatever your server's
 * authenticate handler reads. */
export type Credentials = Record<string, unknown>;

type MaybePromise<T> = T | Promise<T>;

/** What the reconnect policy is told about a closed socket. */
export interface ReconnectContext {
  reason: string;
  /** The last "error" message before the close, e.g. "Authentication failed". */
  serverMessage?: string;
  /** Whether the socket had received "connected". */
  wasConnected: boolean;
  /** Reconnect attempts since the last "connected". */
  attempt: number;
  /** Whether credentials come from a callback (a fresh token is possible). */
  refreshable: boolean;
  /** Whether the encrypt option is a function. */
  encryptDynamic: boolean;
}

export interface ClientOptions {
  /** Sent as {"token": …}; a function is called on every (re)connect. */
  token?: string | (() => MaybePromise<string>);
  /** The whole authenticate payload (instead of token); a function is
   * called on every (re)connect. */
  credentials?: Credentials | (() => MaybePromise<Credentials>);
  /** Credentials for "refresh" on "session-expiring" (default: credentials
   * or token, when they are functions). */
  refresh?: () => MaybePromise<Credentials>;
  /** Milliseconds between heartbeats; 0 turns them off. Default 25000. */
  heartbeatInterval?: number;
  /** Default timeout of request/join/leave/presence/refresh. Default 10000. */
  requestTimeout?: number;
  /** From opening the socket to "connected"; 0: none. Default 15000. */
  connectTimeout?: number;
  /** false: never reconnect. Default: reconnect per shouldReconnect. */
  reconnect?: boolean;
  /** Backoff: the n-th retry waits random(0, min(max, min·2ⁿ)). Defaults 500 / 30000. */
  minReconnectDelay?: number;
  maxReconnectDelay?: number;
  /** Retries after a close before giving up; reset by "connected". Default Infinity. */
  maxReconnectAttempts?: number;
  /** Replaces defaultShouldReconnect. */
  shouldReconnect?: (code: number, ctx: ReconnectContext) => boolean;
  /** Run the encryption handshake (server RequireEncryption). A function is
   * asked before every attempt. Default false. */
  encrypt?: boolean | (() => MaybePromise<boolean>);
  /** Pin: the expected server public key (standard base64). */
  serverPublicKey?: string;
  /** AES-GCM additional data, the same bytes as the server's Options.AAD. */
  additionalData?: (clientId: string | null) => Uint8Array | undefined;
  /** Rooms per rejoin request. Default 100 (the server's MaxRoomsPerRequest). */
  maxRoomsPerRequest?: number;
  /** A WebSocket constructor (default globalThis.WebSocket). */
  WebSocket?: new (url: string) => WebSocket;
  /** Handlers registered before the first connection. */
  on?: Partial<{ [K in keyof ClientEvents]: ClientEvents[K] }> & Record<string, (...args: any[]) => void>;
}

/** A frame from the server as the client hands it over. */
export interface Frame<T = unknown> {
  event: string;
  data: T;
  /** The request id it answers. */
  id?: string;
  /** History rooms (SPEC §9.5): the room and the offset of the message. */
  room?: string;
  offset?: string;
  /** Whether it arrived in the encrypted envelope. */
  encrypted: boolean;
}

export interface ConnectedInfo {
  id: string;
  userId?: string;
  time: string;
  serverPublicKey?: string;
  salt?: string;
  /** Whether this is a reconnection. */
  reconnected: boolean;
  encrypted: boolean;
}

export interface DisconnectedInfo {
  code: number;
  reason: string;
  serverMessage?: string;
  wasConnected: boolean;
  willReconnect: boolean;
  /** With willReconnect: the wait before the next attempt and its number. */
  delay?: number;
  attempt?: number;
  /** close() was called. */
  byClient?: boolean;
  /** The client refused the handshake (pinned key mismatch, …). */
  refused?: string;
}

export interface RefusedRoom {
  room: string;
  reason: "invalid name" | "not allowed" | "too many rooms" | "not a member" | string;
}

export interface Ack {
  event: "join" | "leave" | "presence";
  rooms: string[];
  refused: RefusedRoom[];
  /** Per room of a join with "since": whether the missed messages were replayed. */
  recovered?: Record<string, boolean>;
}

export interface RejoinResult {
  rooms: string[];
  refused: RefusedRoom[];
  /** Per rejoined room: true only when the server replayed everything
   * missed; false means reload that room's state. */
  recovered: Record<string, boolean>;
}

export interface PresenceEntry {
  clientId: string;
  userId: string;
  serverId: string;
  joinedAt: string;
}

export interface PresenceResult {
  event: "presence";
  room?: string;
  clients?: PresenceEntry[];
  users?: number;
  /** Set when the room is not a presence room or the client is not in it. */
  rooms?: string[];
  refused?: RefusedRoom[];
}

export interface PresenceEvent {
  room: string;
  action: "join" | "leave";
  clientId: string;
  userId: string;
}

export interface ClientEvents {
  connected: (info: ConnectedInfo) => void;
  disconnected: (info: DisconnectedInfo) => void;
  rejoined: (result: RejoinResult) => void;
  error: (err: Error | ServerError) => void;
  "session-expiring": (data: { expiresAt: string }) => void;
  refreshed: (data: { expiresAt?: string }) => void;
  /** SPEC issue 14: the server's subscription had a gap; refetch state. */
  gap: (data: { from: string; to: string }) => void;
  presence: (data: PresenceEvent, frame: Frame<PresenceEvent>) => void;
  /** Every application frame. */
  "*": (frame: Frame) => void;
}

export interface RequestOptions {
  timeout?: number;
}

export type ClientState = "idle" | "connecting" | "connected" | "waiting" | "closed";

export class WSClient {
  constructor(url: string | URL, options?: ClientOptions);
  readonly url: string;
  readonly options: ClientOptions;
  readonly state: ClientState;
  readonly clientId: string | null;
  readonly userId: string | null;
  readonly encrypted: boolean;
  /** Joined (acknowledged) and not left; joined again after a reconnect. */
  readonly rooms: string[];
  /** Last offset per history room. */
  readonly offsets: Record<string, string>;

  on<K extends keyof ClientEvents>(event: K, handler: ClientEvents[K]): () => void;
  on<T = unknown>(event: string, handler: (data: T, frame: Frame<T>) => void): () => void;
  off(event: string, handler: (...args: any[]) => void): void;

  connect(): Promise<ConnectedInfo>;
  close(code?: number, reason?: string): void;
  send(event: string, data?: unknown): Promise<void>;
  request<T = unknown>(event: string, data?: unknown, opts?: RequestOptions): Promise<Frame<T>>;
  join(rooms: string | string[], opts?: RequestOptions & { since?: Record<string, string> }): Promise<Ack>;
  leave(rooms: string | string[], opts?: RequestOptions): Promise<Ack>;
  presence(room: string, opts?: RequestOptions): Promise<PresenceResult>;
  refresh(opts?: RequestOptions): Promise<{ expiresAt?: string }>;
}

export function connect(url: string | URL, options?: ClientOptions): Promise<WSClient>;

export function defaultShouldReconnect(code: number, ctx?: Partial<ReconnectContext>): boolean;

export class ServerError extends Error {
  readonly name: "ServerError";
  readonly id?: string;
}
export class TimeoutError extends Error {
  readonly name: "TimeoutError";
}
export class CloseError extends Error {
  readonly name: "CloseError";
  readonly code: number;
  readonly reason: string;
  readonly serverMessage?: string;
}

export function deriveMessageKey(privateKey: CryptoKey, serverPublicKeyB64: string, saltB64: string): Promise<CryptoKey>;
export function toBase64(bytes: Uint8Array): string;
export function fromBase64(b64: string): Uint8Array;
