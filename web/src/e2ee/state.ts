// Signed, hash-chained room state (docs/protocol.md §10.5): the rules every member
// applies to each event, as e2ee/state.py does on the server and in the SDK.
import { b64u, concat, equal, unb64u, utf8 } from "./bytes";
import { canonicalJson, expectInt, expectObject, expectStr, type JsonObject, parseCanonical } from "./canonical";
import { CryptoError } from "./errors";
import { type DeviceKind, verifyCertificate } from "./identity";
import { ROOM_STATE, ROOM_STATE_HASH } from "./labels";
import { sha256, type SigningKey, verify } from "./primitives";

export const ROLES = ["admin", "member"];
export const KINDS = ["direct", "care_team", "teleexpertise"];
export const ACTIONS = ["create", "add_member", "remove_member", "set_role", "add_device", "remove_device", "set_identity", "set_policy", "set_archiver", "set_profile"];
const MAX_MEMBERS = 500;
const MAX_DEVICES_PER_MEMBER = 20;
const MAX_EVENT_BYTES = 128 * 1024;
const MAX_PROFILE_BYTES = 16 * 1024;
const OPEN = 2 ** 52; // end of the span of a device still in the room

export interface Policy {
  archiver_required: boolean;
  rotate_after_messages: number;
  rotate_after_seconds: number;
  // Archives also go to each member's personal MSSanté addresses; written only when
  // true, so a policy without it keeps its bytes (docs/protocol.md §10.5).
  archive_to_members?: true;
}

export function defaultPolicy(kind: string): Policy {
  return { archiver_required: kind === "care_team" || kind === "teleexpertise", rotate_after_messages: 1000, rotate_after_seconds: 7 * 24 * 3600 };
}

function parsePolicy(value: unknown): Policy {
  const keys = ["archiver_required", "rotate_after_messages", "rotate_after_seconds"];
  if (typeof value === "object" && value !== null && !Array.isArray(value) && Object.hasOwn(value, "archive_to_members")) keys.push("archive_to_members");
  const body = expectObject(value, keys, "policy");
  if (typeof body.archiver_required !== "boolean") throw new CryptoError("bad_encoding", "archiver_required must be a bool");
  if (Object.hasOwn(body, "archive_to_members") && body.archive_to_members !== true) throw new CryptoError("bad_encoding", "archive_to_members must be true");
  const policy: Policy = {
    archiver_required: body.archiver_required,
    rotate_after_messages: expectInt(body.rotate_after_messages, "rotate_after_messages", 1, 100_000),
    rotate_after_seconds: expectInt(body.rotate_after_seconds, "rotate_after_seconds", 60, 30 * 24 * 3600),
  };
  if (body.archive_to_members === true) policy.archive_to_members = true;
  return policy;
}

export interface DeviceEntry {
  signKey: Uint8Array;
  crossSig: Uint8Array;
}

export interface RoomDevice extends DeviceEntry {
  nationalId: string;
  device: number;
  identityKey: Uint8Array;
}

export interface Member {
  nationalId: string;
  role: string;
  identityKey: Uint8Array;
  devices: Map<number, DeviceEntry>;
}

export interface Profile {
  version: number;
  keyId: Uint8Array;
  ciphertext: Uint8Array;
  epoch: number;
}

const ref = (nationalId: string, device: number): string => `${nationalId}/${device}`;

/** The verified state after the event of ``epoch`` (whose hash is ``head``). */
export interface RoomState {
  room: string;
  kind: string;
  epoch: number;
  head: Uint8Array;
  members: Map<string, Member>;
  policy: Policy;
  archiver: RoomDevice | null;
  profile: Profile | null;
  heads: Uint8Array[];
  timestamps: number[];
  removals: number[];
  // Every device ever in the room ("national id/device"): its signing key and spans.
  history: Map<string, { signKey: Uint8Array; spans: [number, number][] }>;
  archivers: Set<string>;
}

export interface StateEvent {
  room: string;
  epoch: number;
  action: string;
  author: [string, number];
  content: JsonObject;
  timestamp: number;
  hash: Uint8Array;
  raw: Uint8Array;
  log: JsonObject | null;
}

export function roomDevices(state: RoomState): RoomDevice[] {
  const found: RoomDevice[] = [];
  for (const member of [...state.members.values()].sort((a, b) => (a.nationalId < b.nationalId ? -1 : 1))) {
    for (const [device, entry] of [...member.devices.entries()].sort(([a], [b]) => a - b)) {
      found.push({ nationalId: member.nationalId, device, identityKey: member.identityKey, ...entry });
    }
  }
  if (state.archiver) found.push(state.archiver);
  return found;
}

export function currentDevice(state: RoomState, nationalId: string, device: number): Uint8Array | null {
  if (state.archiver && state.archiver.nationalId === nationalId && state.archiver.device === device) return state.archiver.signKey;
  return state.members.get(nationalId)?.devices.get(device)?.signKey ?? null;
}

export function deviceAt(state: RoomState, nationalId: string, device: number, epoch: number): Uint8Array | null {
  const entry = state.history.get(ref(nationalId, device));
  if (!entry) return null;
  return entry.spans.some(([start, end]) => start <= epoch && epoch < end) ? entry.signKey : null;
}

export function isArchiverDevice(state: RoomState, nationalId: string, device: number): boolean {
  return state.archivers.has(ref(nationalId, device));
}

export function removedBetween(state: RoomState, afterEpoch: number, upToEpoch: number): boolean {
  return state.removals.some((epoch) => afterEpoch < epoch && epoch <= upToEpoch);
}

export function isAdminDevice(state: RoomState, nationalId: string, device: number): boolean {
  const member = state.members.get(nationalId);
  return member !== undefined && member.role === "admin" && member.devices.has(device);
}

export function eventHash(raw: Uint8Array): Promise<Uint8Array> {
  return sha256(concat(utf8(ROOM_STATE_HASH), new Uint8Array([0]), raw));
}

export async function signEvent(options: {
  state: RoomState | null;
  room: string;
  author: [string, number];
  key: SigningKey;
  action: string;
  content: JsonObject;
  timestamp: number;
  log?: JsonObject | null;
}): Promise<Uint8Array> {
  const { state } = options;
  const body = {
    v: 2,
    type: "room_state",
    room: options.room,
    epoch: state === null ? 0 : state.epoch + 1,
    prev: state === null ? "" : b64u(state.head),
    author: { national_id: options.author[0], device: options.author[1] },
    action: options.action,
    content: options.content,
    ts: options.timestamp,
    log: options.log ?? null,
  };
  return canonicalJson({ event: body, sig: b64u(await options.key.sign(ROOM_STATE, body)) });
}

function parseLog(value: unknown): JsonObject | null {
  if (value === null) return null;
  const body = expectObject(value, ["size", "root"], "log");
  expectInt(body.size, "log.size");
  unb64u(body.root, 32, "log.root");
  return body;
}

export function parseEvent(raw: Uint8Array): { body: JsonObject; signature: Uint8Array } {
  if (raw.length > MAX_EVENT_BYTES) throw new CryptoError("bad_encoding", "state event too large");
  const outer = expectObject(parseCanonical(raw, MAX_EVENT_BYTES), ["event", "sig"]);
  const body = expectObject(outer.event, ["v", "type", "room", "epoch", "prev", "author", "action", "content", "ts", "log"], "event");
  if (body.v !== 2 || body.type !== "room_state") throw new CryptoError("bad_encoding", "not a version 2 room-state event");
  unb64u(body.room, 16, "room");
  expectInt(body.epoch, "epoch");
  expectInt(body.ts, "ts");
  const author = expectObject(body.author, ["national_id", "device"], "author");
  expectStr(author.national_id, "author.national_id", 32);
  expectInt(author.device, "author.device", 1);
  if (typeof body.action !== "string" || !ACTIONS.includes(body.action)) throw new CryptoError("bad_encoding", "unknown action");
  if (body.content === null || typeof body.content !== "object" || Array.isArray(body.content)) throw new CryptoError("bad_encoding", "content must be an object");
  parseLog(body.log);
  return { body, signature: unb64u(outer.sig, 64, "sig") };
}

function copyState(state: RoomState): RoomState {
  return structuredClone(state);
}

/** Verify ``raw`` as the next event after ``state`` (null: the creation); the new state
 * (``state`` is not modified). Raises CryptoError on any violation. */
export async function applyEvent(state: RoomState | null, raw: Uint8Array): Promise<{ state: RoomState; event: StateEvent }> {
  const { body, signature } = parseEvent(raw);
  const authorBody = body.author as JsonObject;
  const author: [string, number] = [authorBody.national_id as string, authorBody.device as number];
  const action = body.action as string;
  const content = body.content as JsonObject;
  let next: RoomState;
  let authorKey: Uint8Array;
  if (state === null) {
    if (action !== "create" || body.epoch !== 0 || body.prev !== "") throw new CryptoError("bad_chain", "a chain starts with a create event");
    next = await create(body.room as string, content);
    const key = currentDevice(next, ...author);
    if (key === null || !isAdminDevice(next, ...author)) throw new CryptoError("not_authorised", "the creator must be an admin");
    authorKey = key;
  } else {
    if (body.room !== state.room) throw new CryptoError("bad_chain", "event of another room");
    if (body.epoch !== state.epoch + 1 || body.prev !== b64u(state.head)) throw new CryptoError("bad_chain", "event does not follow the head");
    if (action === "create") throw new CryptoError("bad_chain", "a room is created once");
    next = copyState(state);
    next.epoch = body.epoch as number;
    authorKey = authorKeyOf(state, action, content, author);
    await APPLY[action]!(next, content, author);
  }
  await verify(authorKey, signature, ROOM_STATE, body);
  const digest = await eventHash(raw);
  next.head = digest;
  next.heads.push(digest);
  next.timestamps.push(body.ts as number);
  return {
    state: next,
    event: { room: body.room as string, epoch: body.epoch as number, action, author, content, timestamp: body.ts as number, hash: digest, raw, log: parseLog(body.log) },
  };
}

function authorKeyOf(state: RoomState, action: string, content: JsonObject, author: [string, number]): Uint8Array {
  const key = currentDevice(state, ...author);
  if (key !== null && state.members.has(author[0])) return key;
  if (action === "add_device") {
    const body = expectObject(content, ["national_id", "device"], "add_device");
    const [number, entry] = deviceEntry(body.device);
    if (body.national_id === author[0] && number === author[1]) return entry.signKey;
  }
  throw new CryptoError("not_authorised", "author is not a member device");
}

export async function replayChain(events: Uint8Array[]): Promise<RoomState> {
  let state: RoomState | null = null;
  for (const raw of events) state = (await applyEvent(state, raw)).state;
  if (state === null) throw new CryptoError("bad_chain", "empty chain");
  return state;
}

// Content of each action ----------------------------------------------------------------

function role(value: unknown): string {
  if (typeof value !== "string" || !ROLES.includes(value)) throw new CryptoError("bad_encoding", "unknown role");
  return value;
}

const nationalIdOf = (value: unknown): string => expectStr(value, "national_id", 32);
const keyOf = (value: unknown, field: string): Uint8Array => unb64u(value, 32, field);

function deviceEntry(value: unknown, field = "device"): [number, DeviceEntry] {
  const body = expectObject(value, ["device", "sign_key", "cross_sig"], field);
  return [expectInt(body.device, "device", 1), { signKey: keyOf(body.sign_key, "sign_key"), crossSig: unb64u(body.cross_sig, 64, "cross_sig") }];
}

async function checkVouched(nationalId: string, identityKey: Uint8Array, number: number, entry: DeviceEntry, kind: DeviceKind): Promise<void> {
  try {
    await verifyCertificate(nationalId, number, kind, entry.signKey, identityKey, entry.crossSig);
  } catch {
    throw new CryptoError("bad_signature", `device ${number} of ${nationalId} is not vouched for by their identity key`);
  }
}

async function devicesOf(nationalId: string, identityKey: Uint8Array, value: unknown): Promise<Map<number, DeviceEntry>> {
  if (!Array.isArray(value) || value.length > MAX_DEVICES_PER_MEMBER) throw new CryptoError("bad_encoding", "devices must be a short list");
  const devices = new Map<number, DeviceEntry>();
  for (const item of value) {
    const [number, entry] = deviceEntry(item);
    if (devices.has(number)) throw new CryptoError("bad_encoding", "a device is listed twice");
    await checkVouched(nationalId, identityKey, number, entry, "device");
    devices.set(number, entry);
  }
  return devices;
}

async function memberOf(value: unknown): Promise<Member> {
  const body = expectObject(value, ["national_id", "role", "identity_key", "devices"], "member");
  const nationalId = nationalIdOf(body.national_id);
  const identityKey = keyOf(body.identity_key, "identity_key");
  return { nationalId, role: role(body.role), identityKey, devices: await devicesOf(nationalId, identityKey, body.devices) };
}

async function archiverOf(value: unknown): Promise<RoomDevice | null> {
  if (value === null) return null;
  const body = expectObject(value, ["national_id", "identity_key", "device", "sign_key", "cross_sig"], "archiver");
  const nationalId = nationalIdOf(body.national_id);
  const identityKey = keyOf(body.identity_key, "identity_key");
  const [number, entry] = deviceEntry({ device: body.device, sign_key: body.sign_key, cross_sig: body.cross_sig }, "archiver");
  await checkVouched(nationalId, identityKey, number, entry, "archiver");
  return { nationalId, device: number, identityKey, ...entry };
}

function startSpan(state: RoomState, nationalId: string, device: number, signKey: Uint8Array): void {
  const key = ref(nationalId, device);
  const known = state.history.get(key);
  if (known && !equal(known.signKey, signKey)) throw new CryptoError("bad_chain", "a device number cannot change its keys");
  const spans = known ? known.spans : [];
  spans.push([state.epoch, OPEN]);
  state.history.set(key, { signKey, spans });
}

function markRemoval(state: RoomState): void {
  if (!state.removals.length || state.removals[state.removals.length - 1] !== state.epoch) state.removals.push(state.epoch);
}

function endSpan(state: RoomState, nationalId: string, device: number): void {
  const entry = state.history.get(ref(nationalId, device));
  const last = entry?.spans[entry.spans.length - 1];
  if (last && last[1] === OPEN) last[1] = state.epoch;
  markRemoval(state);
}

function nameArchiver(state: RoomState, archiver: RoomDevice): void {
  if (state.members.has(archiver.nationalId)) throw new CryptoError("not_authorised", "the archiver cannot be a member");
  startSpan(state, archiver.nationalId, archiver.device, archiver.signKey);
  state.archivers.add(ref(archiver.nationalId, archiver.device));
}

function isArchiverIdentity(state: RoomState, nationalId: string): boolean {
  return [...state.archivers].some((r) => r.slice(0, r.lastIndexOf("/")) === nationalId);
}

async function create(room: string, content: JsonObject): Promise<RoomState> {
  const body = expectObject(content, ["kind", "members", "policy", "archiver"], "create");
  if (typeof body.kind !== "string" || !KINDS.includes(body.kind)) throw new CryptoError("bad_encoding", "unknown room kind");
  if (!Array.isArray(body.members) || body.members.length < 1 || body.members.length > MAX_MEMBERS) throw new CryptoError("bad_encoding", `1 to ${MAX_MEMBERS} members`);
  const members = new Map<string, Member>();
  for (const item of body.members) {
    const member = await memberOf(item);
    if (members.has(member.nationalId)) throw new CryptoError("bad_encoding", "a member is listed twice");
    members.set(member.nationalId, member);
  }
  if (body.kind === "direct" && members.size !== 2) throw new CryptoError("not_authorised", "a direct room has exactly two people");
  const state: RoomState = {
    room,
    kind: body.kind,
    epoch: 0,
    head: new Uint8Array(0),
    members,
    policy: parsePolicy(body.policy),
    archiver: await archiverOf(body.archiver),
    profile: null,
    heads: [],
    timestamps: [],
    removals: [],
    history: new Map(),
    archivers: new Set(),
  };
  for (const member of members.values()) for (const [number, entry] of member.devices) startSpan(state, member.nationalId, number, entry.signKey);
  if (state.archiver) nameArchiver(state, state.archiver);
  return state;
}

function requireAdmin(state: RoomState, author: [string, number]): void {
  if (!isAdminDevice(state, ...author)) throw new CryptoError("not_authorised", "only an admin device may do this");
}

function target(state: RoomState, nationalId: string): Member {
  const member = state.members.get(nationalId);
  if (!member) throw new CryptoError("not_authorised", "not a member");
  return member;
}

function checkAdminsRemain(state: RoomState): void {
  if (state.members.size && ![...state.members.values()].some((m) => m.role === "admin")) throw new CryptoError("not_authorised", "the room would have no admin");
}

type Apply = (state: RoomState, content: JsonObject, author: [string, number]) => Promise<void> | void;

const APPLY: Record<string, Apply> = {
  async add_member(state, content, author) {
    requireAdmin(state, author);
    const member = await memberOf(content);
    if (state.kind === "direct") throw new CryptoError("not_authorised", "a direct room keeps its two people");
    if (state.members.has(member.nationalId)) throw new CryptoError("not_authorised", "already a member");
    if (isArchiverIdentity(state, member.nationalId)) throw new CryptoError("not_authorised", "the archiver cannot be a member");
    if (state.members.size >= MAX_MEMBERS) throw new CryptoError("not_authorised", "the room is full");
    state.members.set(member.nationalId, member);
    for (const [number, entry] of member.devices) startSpan(state, member.nationalId, number, entry.signKey);
  },
  remove_member(state, content, author) {
    const body = expectObject(content, ["national_id"], "remove_member");
    const nationalId = nationalIdOf(body.national_id);
    if (author[0] !== nationalId) requireAdmin(state, author);
    const member = target(state, nationalId);
    state.members.delete(nationalId);
    checkAdminsRemain(state);
    for (const number of member.devices.keys()) endSpan(state, nationalId, number);
    markRemoval(state);
  },
  set_role(state, content, author) {
    requireAdmin(state, author);
    const body = expectObject(content, ["national_id", "role"], "set_role");
    target(state, nationalIdOf(body.national_id)).role = role(body.role);
    checkAdminsRemain(state);
  },
  async add_device(state, content, author) {
    const body = expectObject(content, ["national_id", "device"], "add_device");
    const nationalId = nationalIdOf(body.national_id);
    if (author[0] !== nationalId) requireAdmin(state, author);
    const member = target(state, nationalId);
    const [number, entry] = deviceEntry(body.device);
    if (member.devices.has(number)) throw new CryptoError("not_authorised", "device already in the room");
    if (member.devices.size >= MAX_DEVICES_PER_MEMBER) throw new CryptoError("not_authorised", "too many devices");
    await checkVouched(nationalId, member.identityKey, number, entry, "device");
    member.devices.set(number, entry);
    startSpan(state, nationalId, number, entry.signKey);
  },
  remove_device(state, content, author) {
    const body = expectObject(content, ["national_id", "device"], "remove_device");
    const nationalId = nationalIdOf(body.national_id);
    if (author[0] !== nationalId) requireAdmin(state, author);
    const member = target(state, nationalId);
    const number = expectInt(body.device, "device", 1);
    if (!member.devices.has(number)) throw new CryptoError("not_authorised", "device not in the room");
    member.devices.delete(number);
    endSpan(state, nationalId, number);
  },
  async set_identity(state, content, author) {
    const body = expectObject(content, ["national_id", "identity_key", "devices"], "set_identity");
    const nationalId = nationalIdOf(body.national_id);
    if (author[0] === nationalId) throw new CryptoError("not_authorised", "another admin signs a new identity key");
    requireAdmin(state, author);
    const member = target(state, nationalId);
    const identityKey = keyOf(body.identity_key, "identity_key");
    if (equal(identityKey, member.identityKey)) throw new CryptoError("not_authorised", "the identity key did not change");
    const devices = await devicesOf(nationalId, identityKey, body.devices);
    for (const number of member.devices.keys()) endSpan(state, nationalId, number);
    markRemoval(state);
    member.identityKey = identityKey;
    member.devices = devices;
    for (const [number, entry] of devices) startSpan(state, nationalId, number, entry.signKey);
  },
  set_policy(state, content, author) {
    requireAdmin(state, author);
    state.policy = parsePolicy(expectObject(content, ["policy"]).policy);
  },
  async set_archiver(state, content, author) {
    requireAdmin(state, author);
    const archiver = await archiverOf(expectObject(content, ["archiver"]).archiver);
    const same = (a: RoomDevice | null, b: RoomDevice | null): boolean => a !== null && b !== null && a.nationalId === b.nationalId && a.device === b.device;
    if (state.archiver && (archiver === null || !same(archiver, state.archiver))) endSpan(state, state.archiver.nationalId, state.archiver.device);
    if (archiver && (state.archiver === null || !same(archiver, state.archiver))) nameArchiver(state, archiver);
    state.archiver = archiver;
  },
  set_profile(state, content, author) {
    requireAdmin(state, author);
    const body = expectObject(content, ["version", "key_id", "ct"], "set_profile");
    const version = expectInt(body.version, "version", 1);
    const expected = state.profile === null ? 1 : state.profile.version + 1;
    if (version !== expected) throw new CryptoError("bad_chain", `profile version ${expected} expected`);
    const ciphertext = unb64u(body.ct, undefined, "ct");
    if (ciphertext.length > MAX_PROFILE_BYTES) throw new CryptoError("bad_encoding", "profile too large");
    state.profile = { version, keyId: unb64u(body.key_id, 16, "key_id"), ciphertext, epoch: state.epoch };
  },
};

// Helpers to write content ----------------------------------------------------------------

export function deviceJson(device: { device: number; signKey: Uint8Array; crossSig: Uint8Array }): JsonObject {
  return { device: device.device, sign_key: b64u(device.signKey), cross_sig: b64u(device.crossSig) };
}

export function memberContent(nationalId: string, memberRole: string, identityKey: Uint8Array, devices: { device: number; signKey: Uint8Array; crossSig: Uint8Array }[]): JsonObject {
  return { national_id: nationalId, role: memberRole, identity_key: b64u(identityKey), devices: devices.map(deviceJson) };
}

export function createContent(kind: string, members: JsonObject[], policy: Policy, archiver: RoomDevice | null = null): JsonObject {
  return {
    kind,
    members,
    policy: { ...policy },
    archiver: archiver ? { national_id: archiver.nationalId, identity_key: b64u(archiver.identityKey), ...deviceJson(archiver) } : null,
  };
}
