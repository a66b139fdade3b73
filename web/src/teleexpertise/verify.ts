// The receiver's checks of a téléexpertise (docs/protocol.md §12.5), as the SDK makes
// them (client/teleexpertise/contents.py parse_event, cases.py): a case is rebuilt on
// this device from the room's decrypted events, in order, and an event counts only when
// it is well formed (§12.2) and the verified room state and the lifecycle table say its
// sender could take that step then:
//
// * the request comes from a member of a `teleexpertise` room of exactly two members,
//   naming itself as requérant and the other member as requis; a room has one request;
// * every later step is allowed for the sender's role (requérant or requis, from the
//   request) in the case's state; a clarification answer answers an open question, and
//   a question id is not used twice.
//
// A refused event changes nothing; it is listed with its reason so the screen can
// warn. The server stores what it is sent: these checks are what stops a dishonest
// server or member from making a device show a step that did not happen.
import { checkDescriptor, type Descriptor } from "../attachments";
import type { JsonObject } from "../e2ee/canonical";
import { type State, StepError, MAX_ANSWER, MAX_ATTACHMENTS, MAX_CLINICAL_DATA, MAX_NOTE, MAX_QUESTION, MAX_REASON } from "./cases";
import { type IdentityStatus, patientIdentity } from "./patient";

export type Role = "requerant" | "requis";
const PREFIX = "teleexpertise.";
const MAX_NAME = 200;

interface Rule {
  roles: Role[];
  sources: (State | null)[];
  target: State | null;
}

const ACTIVE: State[] = ["requested", "accepted"];

/** teleexpertise/workflow.py RULES, for the actions a member's device takes. */
export const RULES: Record<string, Rule> = {
  request: { roles: ["requerant"], sources: [null], target: "requested" },
  accept: { roles: ["requis"], sources: ["requested"], target: "accepted" },
  decline: { roles: ["requis"], sources: ["requested"], target: "declined" },
  clarification_request: { roles: ["requis"], sources: ACTIVE, target: null },
  clarification_answer: { roles: ["requerant"], sources: ACTIVE, target: null },
  report: { roles: ["requis"], sources: ["accepted"], target: "answered" },
  close: { roles: ["requerant", "requis"], sources: ["answered"], target: "closed" },
  cancel: { roles: ["requerant"], sources: ACTIVE, target: "cancelled" },
};

const FIELDS: Record<string, [string[], string[]]> = {
  request: [["requerant", "requis", "patient", "reason", "question", "clinical_data", "consent", "urgency", "deadline", "requested_at", "attachments", "documents"], []],
  accept: [["note"], ["deadline"]],
  decline: [["reason"], []],
  clarification_request: [["question_id", "question", "asked_at"], []],
  clarification_answer: [["question_id", "answer", "answered_at", "attachments"], []],
  report: [["answer", "reported_at", "documents"], []],
  close: [["note"], []],
  cancel: [["reason"], []],
};

export interface Verified {
  seq: number;
  sender: string;
  action: string;
  content: JsonObject;
}

export interface Refused {
  seq: number;
  sender: string;
  type: string;
  code: string;
  english: string;
  french: string;
}

/** What this device believes of a case: its verified events and the state after them. */
export interface VerifiedCase {
  room: number;
  request: JsonObject | null;
  state: State | null;
  events: Verified[];
  refused: Refused[];
  openQuestions: Map<string, string>; // question id → question
}

export interface RoomFacts {
  kind: string;
  members: string[];
}

export interface RoomEvent {
  seq: number | null;
  sender: string;
  event?: JsonObject;
}

function bad(code: string, english: string, french: string): StepError {
  return new StepError(code, english, french);
}

const malformed = (detail: string) => bad("bad_event", `A téléexpertise event was malformed and is not shown (${detail}).`, "Un événement de téléexpertise mal formé n'est pas affiché.");

function text(value: unknown, name: string, limit: number, required = true): string {
  if (typeof value !== "string" || (required && !value.trim()) || [...value].length > limit) throw malformed(`${name}: a text of at most ${limit} characters`);
  return value;
}

function time(value: unknown, name: string): string {
  // An ISO 8601 date and time with its offset, as Python's fromisoformat reads it.
  if (typeof value !== "string" || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(value) || Number.isNaN(Date.parse(value))) {
    throw malformed(`${name}: a date and time with its offset`);
  }
  return value;
}

function files(value: unknown, name: string): Descriptor[] {
  if (!Array.isArray(value) || value.length > MAX_ATTACHMENTS) throw malformed(`${name}: at most ${MAX_ATTACHMENTS} files`);
  try {
    return value.map((item) => checkDescriptor(item, true));
  } catch {
    throw malformed(`${name}: a file description is malformed`);
  }
}

function professionalOf(value: unknown, name: string): void {
  const keys = ["national_id", "family_name", "given_name", "profession_code", "profession_label", "specialty_code"];
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw malformed(name);
  const object = value as JsonObject;
  if (Object.keys(object).sort().join() !== [...keys].sort().join()) throw malformed(`${name}: a professional's fields`);
  for (const key of keys) text(object[key], `${name}.${key}`, MAX_NAME, key === "national_id");
}

function patientOf(value: unknown): void {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw malformed("patient");
  const p = value as JsonObject;
  const known = ["v", "type", "status", "birth_family_name", "birth_given_names", "birth_date", "sex", "birthplace", "used_family_name", "used_given_name", "matricule", "oid"];
  if (p.v !== 1 || p.type !== "patient_identity" || Object.keys(p).some((k) => !known.includes(k)) || !Array.isArray(p.birth_given_names)) throw malformed("patient");
  const optional = (key: string) => (p[key] === undefined ? {} : { [key]: String(p[key]) });
  try {
    patientIdentity({
      status: String(p.status) as IdentityStatus,
      birthFamilyName: String(p.birth_family_name),
      birthGivenNames: p.birth_given_names.map(String),
      birthDate: String(p.birth_date),
      sex: String(p.sex) as "F" | "M" | "U",
      ...(p.birthplace === undefined ? {} : { birthplace: String(p.birthplace) }),
      ...(p.used_family_name === undefined ? {} : { usedFamilyName: String(p.used_family_name) }),
      ...(p.used_given_name === undefined ? {} : { usedGivenName: String(p.used_given_name) }),
      ...optional("matricule"),
      ...optional("oid"),
    });
  } catch {
    throw malformed("patient: the identity does not follow the INS rules");
  }
}

function consentOf(value: unknown): void {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw malformed("consent");
  const c = value as JsonObject;
  const keys = Object.keys(c);
  if (keys.some((k) => !["decision", "obtained_on", "method", "given_by", "representative"].includes(k)) || c.decision !== "given" || !/^\d{4}-\d{2}-\d{2}$/.test(String(c.obtained_on)) || !["oral", "written", "electronic"].includes(String(c.method)) || !["patient", "legal_representative"].includes(String(c.given_by))) {
    throw malformed("consent");
  }
}

/** The event's action when it follows §12.2 (the SDK's parse_event); StepError otherwise. */
export function checkEvent(content: JsonObject): string {
  const action = String(content.type ?? "").slice(PREFIX.length);
  const fields = FIELDS[action];
  if (!String(content.type ?? "").startsWith(PREFIX) || !fields) throw malformed("unknown event");
  const [required, optional] = fields;
  const keys = Object.keys(content).filter((k) => !["type", "v", "pad"].includes(k));
  if (content.v !== 1 || required.some((k) => !keys.includes(k)) || keys.some((k) => !required.includes(k) && !optional.includes(k))) throw malformed("unknown version, or unknown or missing fields");
  switch (action) {
    case "request":
      professionalOf(content.requerant, "requerant");
      professionalOf(content.requis, "requis");
      patientOf(content.patient);
      text(content.reason, "reason", MAX_REASON);
      text(content.question, "question", MAX_QUESTION);
      text(content.clinical_data, "clinical_data", MAX_CLINICAL_DATA, false);
      consentOf(content.consent);
      if (content.urgency !== "routine" && content.urgency !== "urgent") throw malformed("urgency");
      time(content.deadline, "deadline");
      time(content.requested_at, "requested_at");
      files(content.attachments, "attachments");
      files(content.documents, "documents");
      break;
    case "accept":
      text(content.note, "note", MAX_NOTE, false);
      if (content.deadline !== undefined) time(content.deadline, "deadline");
      break;
    case "decline":
      text(content.reason, "reason", MAX_NOTE);
      break;
    case "clarification_request":
      text(content.question_id, "question_id", 64);
      text(content.question, "question", MAX_QUESTION);
      time(content.asked_at, "asked_at");
      break;
    case "clarification_answer":
      text(content.question_id, "question_id", 64);
      text(content.answer, "answer", MAX_ANSWER);
      time(content.answered_at, "answered_at");
      files(content.attachments, "attachments");
      break;
    case "report":
      text(content.answer, "answer", MAX_ANSWER);
      time(content.reported_at, "reported_at");
      files(content.documents, "documents");
      break;
    case "close":
      text(content.note, "note", MAX_NOTE, false);
      break;
    case "cancel":
      text(content.reason, "reason", MAX_NOTE, false);
      break;
  }
  return action;
}

const ROLE_NAMES: Record<Role, [string, string]> = { requerant: ["The requérant", "Le requérant"], requis: ["The requis", "Le requis"] };
// teleexpertise/workflow.py _ACTION_NAMES and _STATE_NAMES.
const ACTION_NAMES: Record<string, [string, string]> = {
  request: ["send the request", "envoyer la demande"],
  accept: ["accept", "accepter"],
  decline: ["decline", "refuser"],
  clarification_request: ["ask for a clarification", "demander une précision"],
  clarification_answer: ["answer a clarification", "répondre à une précision"],
  report: ["send the report", "envoyer le compte rendu"],
  close: ["close", "clore"],
  cancel: ["cancel", "annuler"],
};
const STATE_NAMES: Record<string, [string, string]> = {
  none: ["does not exist yet", "n'existe pas encore"],
  requested: ["is waiting for an answer", "attend une réponse"],
  accepted: ["was accepted", "a été acceptée"],
  declined: ["was declined", "a été refusée"],
  answered: ["was answered", "a reçu sa réponse"],
  closed: ["is closed", "est close"],
  cancelled: ["was cancelled", "a été annulée"],
  expired: ["has expired", "a expiré"],
};

/** The state after ``role`` takes ``action`` in ``state``; StepError ``role_refused``
 * or ``transition_refused`` (teleexpertise/workflow.py next_state). */
export function nextState(state: State | null, action: string, role: Role): State | null {
  const rule = RULES[action];
  const names = ACTION_NAMES[action];
  if (!rule || !names) throw malformed("unknown event");
  if (!rule.roles.includes(role)) {
    throw bad("role_refused", `${ROLE_NAMES[role][0]} cannot ${names[0]}.`, `${ROLE_NAMES[role][1]} ne peut pas ${names[1]}.`);
  }
  if (!rule.sources.includes(state)) {
    const [english, french] = STATE_NAMES[state ?? "none"]!;
    const de = /^[aeéiou]/.test(names[1]) ? `d'${names[1]}` : `de ${names[1]}`;
    throw bad("transition_refused", `Cannot ${names[0]}: the téléexpertise ${english}.`, `Impossible ${de} : la téléexpertise ${french}.`);
  }
  return rule.target ?? state;
}

/** The role of ``nationalId`` in the case, from its request; ``not_member`` otherwise. */
export function roleOf(request: JsonObject, nationalId: string): Role {
  if (nationalId === (request.requerant as JsonObject).national_id) return "requerant";
  if (nationalId === (request.requis as JsonObject).national_id) return "requis";
  throw bad("not_member", "The sender is not part of this téléexpertise.", "L'expéditeur ne fait pas partie de cette téléexpertise.");
}

function apply(found: VerifiedCase, room: RoomFacts, seq: number, sender: string, content: JsonObject): void {
  const action = checkEvent(content);
  if (action === "request") {
    if (found.request) throw bad("transition_refused", "This room already has its request.", "Cette étape n'est pas possible dans l'état actuel.");
    const members = [...room.members].sort();
    const named = [String((content.requerant as JsonObject).national_id), String((content.requis as JsonObject).national_id)].sort();
    if (room.kind !== "teleexpertise" || (content.requerant as JsonObject).national_id !== sender || members.join() !== named.join() || named[0] === named[1]) {
      throw bad("bad_request_event", "The request does not match the room (kind, members, or sender).", "Cette demande ne correspond pas au salon.");
    }
    found.request = content;
    found.state = "requested";
  } else {
    if (!found.request) throw bad("transition_refused", "An event came before its request.", "Cette étape n'est pas possible dans l'état actuel.");
    const role = roleOf(found.request, sender);
    const target = nextState(found.state, action, role);
    const question = String(content.question_id ?? "");
    if (action === "clarification_answer" && !found.openQuestions.has(question)) throw bad("transition_refused", "This clarification question is not open.", "Cette étape n'est pas possible dans l'état actuel.");
    if (action === "clarification_request" && found.openQuestions.has(question)) {
      throw bad("transition_refused", "This question id is already used.", "Cette étape n'est pas possible dans l'état actuel.");
    }
    if (action === "clarification_request") found.openQuestions.set(question, String(content.question));
    if (action === "clarification_answer") found.openQuestions.delete(question);
    found.state = target;
  }
  found.events.push({ seq, sender, action, content });
}

/** Rebuild a case from the room's messages (any order; those with a téléexpertise
 * event and a place in the room count, in the order of their place). */
export function verifyCase(roomId: number, room: RoomFacts, messages: RoomEvent[]): VerifiedCase {
  const found: VerifiedCase = { room: roomId, request: null, state: null, events: [], refused: [], openQuestions: new Map() };
  const steps = messages.filter((m): m is RoomEvent & { seq: number; event: JsonObject } => m.event !== undefined && m.seq !== null).sort((a, b) => a.seq - b.seq);
  const seen = new Set<number>();
  for (const message of steps) {
    if (seen.has(message.seq)) continue;
    seen.add(message.seq);
    try {
      apply(found, room, message.seq, message.sender, message.event);
    } catch (error) {
      const refusal = error instanceof StepError ? error : malformed(String(error));
      found.refused.push({ seq: message.seq, sender: message.sender, type: String(message.event.type ?? ""), code: refusal.code, english: refusal.english, french: refusal.french });
    }
  }
  return found;
}

/** The first verified event of ``action`` in the case. */
export function eventOf(found: VerifiedCase, action: string): JsonObject | null {
  return found.events.find((e) => e.action === action)?.content ?? null;
}
