// Imported first by every test script: gives an older Node what the client
// takes from the global scope. Node 18 (Debian bookworm's nodejs) has no
// global WebSocket and no global crypto (WebCrypto); Node 20 has crypto and
// a WebSocket only behind --experimental-websocket, which the Go side passes
// where the node binary accepts it (see node_test.go). Where a global is
// there already it is left alone.
import { webcrypto } from "node:crypto";
import { NodeWebSocket } from "./node-websocket.mjs";

if (globalThis.crypto === undefined) globalThis.crypto = webcrypto;
if (typeof globalThis.WebSocket !== "function") globalThis.WebSocket = NodeWebSocket;
